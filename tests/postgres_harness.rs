//! The throwaway PostgreSQL that `make test` starts is reachable and usable.
//! Run outside `make test`, this fails (it does not skip).

mod common;

#[test]
fn the_test_cluster_accepts_connections_and_round_trips_rows() {
    let url = common::database_url();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test cluster");
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert!(version >= 150_000, "PostgreSQL 15 or newer, got {version}");
    client
        .batch_execute("CREATE TEMP TABLE harness_probe (id bigint PRIMARY KEY, body text NOT NULL)")
        .unwrap();
    for i in 0..3i64 {
        client
            .execute("INSERT INTO harness_probe VALUES ($1, $2)", &[&i, &format!("row {i}")])
            .unwrap();
    }
    let rows: Vec<(i64, String)> = client
        .query("SELECT id, body FROM harness_probe ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [(0, "row 0".to_string()), (1, "row 1".into()), (2, "row 2".into())]
    );
}
