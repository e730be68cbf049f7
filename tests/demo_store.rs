//! `make demo` takes its store from the environment as the library does:
//! with `DATABASE_URL` its examples land in that PostgreSQL database, not in
//! the SQLite file of its folder. Runs the demo binary that `cargo test
//! --all-targets` builds, on 300 articles, in a folder of its own.

mod common;

use std::process::Command;

#[test]
fn the_demo_stores_in_the_database_that_database_url_names() {
    let binary = common::newsroom_binary();
    let url = common::db::fresh_database();
    let cwd = common::fresh_data_dir();
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(&binary)
        .args(["--limit", "300", "--rate", "3000"])
        .current_dir(&cwd)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("store postgres"), "{stdout}");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM training_examples", &[])
        .unwrap()
        .get(0);
    // Every article is handed in once (as feedback, a correction or an
    // example); a few feedback items the demo's own rules skip.
    assert!((270..=300).contains(&rows), "{rows} rows for 300 articles");
    assert!(
        !cwd.join("target/demo-data").join(onthefly::store::SQLITE_FILE).exists(),
        "no SQLite store beside PostgreSQL"
    );
}
