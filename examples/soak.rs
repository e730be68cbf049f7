//! The worker and the checker of `scripts/soak.sh` (not a demo).
//!
//! `soak work DATA_DIR ACK_FILE`: one library instance on the PostgreSQL
//! database `DATABASE_URL` names, under load until it is killed: 8
//! producers add news articles (each text made unique by this process's
//! start time), a predictor asks the scout, a corrector hands in
//! corrections, and updates are forced every 5 s. Every second the main
//! thread flushes; once `flush` returns, the ids added before it are
//! durable by the library's promise and are appended to ACK_FILE.
//!
//! `soak check ACK_FILE`: every acknowledged id is in `training_examples`,
//! and no text is stored twice; exits 1 otherwise.

#[path = "../tests/common/news.rs"]
#[allow(dead_code)]
mod news;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use onthefly::{Config, Coordinator, NewExample, Target, UserCorrection};
use parking_lot::Mutex;

const PRODUCERS: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("work") if args.len() == 4 => work(&args[2], &args[3]),
        Some("check") if args.len() == 3 => std::process::exit(check(&args[2])),
        _ => {
            eprintln!("usage: soak work DATA_DIR ACK_FILE | soak check ACK_FILE (DATABASE_URL set)");
            std::process::exit(2);
        }
    }
}

fn work(data_dir: &str, ack_file: &str) {
    let config = Config {
        data_dir: data_dir.into(),
        ..Config::from_env().expect("a configuration from the environment")
    };
    assert!(config.database.is_some(), "DATABASE_URL is not set");
    let c = Arc::new(Coordinator::new(config).expect("the coordinator starts"));
    let articles = Arc::new(news::load_articles());
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let added: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for p in 0..PRODUCERS {
        let (c, articles, added, stop) = (c.clone(), articles.clone(), added.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            for i in (p..).step_by(PRODUCERS) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let a = &articles[i % articles.len()];
                let text = format!("{} [{nonce}/{p}/{i}]", a.text);
                match c.add_training_example(NewExample::new("scout", "news", text, Target::Label(a.outlet.clone()))) {
                    Ok(receipt) => added.lock().push(receipt.id.0),
                    Err(e) => panic!("add refused: {e}"),
                }
                std::thread::sleep(Duration::from_millis(4));
            }
        }));
    }
    {
        let (c, articles) = (c.clone(), articles.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0.. {
                let a = &articles[(i * 7) % articles.len()];
                // Before the first accepted update there is no model yet.
                let _ = c.predict("scout", "news", &a.text);
                if i % 20 == 0 {
                    let wrong = Target::Label("nobody".into());
                    let correction = UserCorrection::new(
                        "scout",
                        "news",
                        format!("{} [{nonce}/correction/{i}]", a.text),
                        wrong,
                        Target::Label(a.outlet.clone()),
                    );
                    c.add_user_correction(correction).expect("a correction is accepted");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }));
    }
    let mut ack = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ack_file)
        .expect("the acknowledgement file opens");
    let mut last_update = Instant::now();
    println!("WORKING");
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if last_update.elapsed() > Duration::from_secs(5) {
            let _ = c.force_update_agent("scout");
            last_update = Instant::now();
        }
        let before: Vec<u64> = std::mem::take(&mut *added.lock());
        match c.flush(Duration::from_secs(60)) {
            Ok(()) => {
                let lines: String = before.iter().map(|id| format!("{id}\n")).collect();
                ack.write_all(lines.as_bytes())
                    .expect("the acknowledgement file is written");
            }
            Err(e) => {
                eprintln!("flush: {e}");
                added.lock().extend(before);
            }
        }
    }
}

fn check(ack_file: &str) -> i32 {
    let text = std::fs::read_to_string(ack_file).expect("the acknowledgement file");
    // A kill may cut the last line short: only whole lines count.
    let acknowledged: Vec<i64> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("the database answers");
    let found: i64 = client
        .query_one(
            // A join, not `id = ANY($1)`: a million ids against a million
            // rows must not be compared pairwise.
            "SELECT count(*) FROM unnest($1::bigint[]) AS acknowledged(id) JOIN training_examples USING (id)",
            &[&acknowledged],
        )
        .unwrap()
        .get(0);
    // The rows this tool added (examples and corrections, each text marked
    // with its run and number); the library's own review rows repeat the
    // predicted texts by design.
    let (rows, texts): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*), count(DISTINCT mark) FROM (SELECT substring(right(input_text, 48) \
                 FROM ' \\[([0-9]+/[a-z0-9]+/[0-9]+)\\]$') AS mark FROM training_examples) marks \
                 WHERE mark IS NOT NULL",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    for row in client
        .query(
            "SELECT mark, array_agg(state) FROM (SELECT substring(right(input_text, 48) \
             FROM ' \\[([0-9]+/[a-z0-9]+/[0-9]+)\\]$') AS mark, state FROM training_examples) marks \
             WHERE mark IS NOT NULL GROUP BY mark HAVING count(*) > 1 LIMIT 5",
            &[],
        )
        .unwrap()
    {
        println!(
            "twice: {:?} {:?}",
            row.get::<_, String>(0),
            row.get::<_, Vec<String>>(1)
        );
    }
    let states = client
        .query(
            "SELECT state, count(*) FROM training_examples GROUP BY state ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect::<Vec<_>>()
        .join(", ");
    let missing = acknowledged.len() as i64 - found;
    println!(
        "acknowledged {} ids, {found} of them stored, {missing} missing; {rows} rows added, {} of them stored twice; states: {states}",
        acknowledged.len(),
        rows - texts
    );
    i32::from(missing != 0 || rows != texts)
}
