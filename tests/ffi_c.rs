//! The C ABI from real C and Python: the header compiles on its own as C99
//! and C++; the C programs in `tests/c/` (every error path; the whole flow
//! from 8 threads) and the example agents in C and Python run against the
//! shared library, the C ones built with `-Wall -Wextra -Werror` and the
//! address and undefined-behaviour sanitizers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::small_config;
use onthefly::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of the shared library cargo built for this test run: beside
/// the test binary (`target/<profile>/deps`), which `cargo test` keeps
/// current (the copy one folder up only `cargo build` refreshes).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    assert!(
        dir.join("libonthefly.so").exists(),
        "{} has no libonthefly.so: the library's cdylib was not built",
        dir.display()
    );
    dir
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Compiles one C file against the header and the shared library, with the sanitizers.
fn compile(source: &str, name: &str) -> PathBuf {
    let out_dir = root().join("target/c-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let binary = out_dir.join(name);
    let lib = lib_dir();
    run(Command::new("cc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-fsanitize=address,undefined",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join(source))
        .arg("-o")
        .arg(&binary)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lonthefly", "-lpthread", "-lm"]));
    binary
}

/// Runs a compiled C program; a sanitizer finding fails it.
fn run_c(binary: &Path, args: &[&str]) -> String {
    let output = run(Command::new(binary)
        .args(args)
        // cargo's own search path for test runs also names target/debug,
        // whose copy of the library only `cargo build` refreshes: the
        // binary's runpath (this run's library) must win.
        .env_remove("LD_LIBRARY_PATH")
        // A NULL configuration reads the environment: the caller's database
        // settings must not leak into these programs.
        .env_remove("DATABASE_URL")
        .env_remove("POSTGRES_HOST")
        .env_remove("POSTGRES_DB")
        // libtorch keeps allocations in its global caches until exit; leaks
        // of ours show up in the Rust tests, not here.
        .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"));
    String::from_utf8(output.stdout).unwrap()
}

fn config_json(config: &Config) -> String {
    serde_json::to_string(config).unwrap()
}

fn line_after<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{output}"))
}

#[test]
fn the_header_compiles_on_its_own_as_c99_and_as_cpp() {
    let header = root().join("include/onthefly.h");
    run(Command::new("cc")
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
            "-x",
            "c",
        ])
        .arg(&header));
    run(Command::new("c++")
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-x",
            "c++",
        ])
        .arg(&header));
}

#[test]
fn every_error_path_returns_its_code_and_a_message() {
    let binary = compile("tests/c/errors.c", "errors");
    let config = config_json(&small_config());
    let other = config_json(&Config {
        update_threshold: 7,
        ..small_config()
    });
    let out = run_c(&binary, &[&config, &other]);
    assert!(out.contains(", 0 failures"), "{out}");
}

#[test]
fn eight_c_threads_stream_at_once_and_every_example_is_counted() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 500;
    let binary = compile("tests/c/flow.c", "flow");
    let config = Config {
        held_out_fraction: 0.2,
        ..small_config()
    };
    let out = run_c(
        &binary,
        &[&config_json(&config), &THREADS.to_string(), &PER_THREAD.to_string()],
    );
    // A wrong prediction with confidence 0.3 is learned (outcome 0); an
    // unsure one without an answer waits for a label (1), which is given.
    assert_eq!(line_after(&out, "FEEDBACK "), "0");
    assert_eq!(line_after(&out, "AWAITING "), "1");
    let review: serde_json::Value = serde_json::from_str(line_after(&out, "REVIEW ")).unwrap();
    assert_eq!(review[0]["input_text"], "a story no one has tagged", "{review}");
    let prediction: serde_json::Value = serde_json::from_str(line_after(&out, "PREDICTION ")).unwrap();
    assert!(
        ["bbc", "cnn", "reuters"].contains(&prediction["output"].as_str().unwrap()),
        "{prediction}"
    );
    assert!(prediction["model_version"].as_u64().unwrap() >= 1);

    let status: serde_json::Value = serde_json::from_str(line_after(&out, "STATUS ")).unwrap();
    let scout = &status["agents"]["scout"];
    let count = |field: &str| scout[field].as_u64().unwrap();
    let received = THREADS * PER_THREAD + 3; // + the correction, the learned feedback and the label
    assert_eq!(count("examples_received"), received, "{scout}");
    assert_eq!(line_after(&out, "METRICS_RECEIVED "), received.to_string());
    assert_eq!(
        count("buffer_size")
            + count("examples_held_out")
            + count("examples_trained")
            + count("examples_evicted")
            + count("examples_discarded")
            + count("examples_quarantined")
            + count("examples_failed"),
        received,
        "every example is in exactly one place: {scout}"
    );
    assert!(count("examples_held_out") > 0 && count("updates_accepted") >= 1);
    assert_eq!(scout["reviews"]["news"]["labelled"], 1, "{scout}");
    let store = &status["store"];
    assert_eq!(store["backlog"], 0, "flushed before the status: {store}");
    assert_eq!(store["durable"], store["received"]);
}

#[test]
fn the_c_example_agent_runs() {
    let binary = compile("examples/c/agent.c", "agent");
    let out = run_c(&binary, &[&config_json(&small_config())]);
    let status: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(status["agents"]["scout"]["examples_received"], 4, "{status}");
    assert!(status["agents"]["scout"]["models"]["news"]["version"].as_u64().unwrap() >= 1);
}

#[test]
fn the_python_example_agent_runs_through_ctypes() {
    let lib = lib_dir().join("libonthefly.so");
    let output = run(Command::new("python3")
        .arg(root().join("examples/python/agent.py"))
        .arg(config_json(&small_config()))
        .env("ONTHEFLY_LIB", &lib));
    let out = String::from_utf8(output.stdout).unwrap();
    let last = out.lines().last().unwrap();
    let (models, received) = last.rsplit_once(' ').unwrap();
    assert_eq!(received, "3", "{out}");
    let models: serde_json::Value = serde_json::from_str(models).unwrap();
    assert!(models["news"]["version"].as_u64().unwrap() >= 1, "{models}");
    assert_eq!(models["news"]["labels"].as_array().unwrap().len(), 2, "{models}");
}

#[test]
fn the_docs_show_the_tested_examples_verbatim() {
    for (doc, example) in [
        ("docs/c.md", "examples/c/agent.c"),
        ("docs/python.md", "examples/python/agent.py"),
        ("README.md", "python/examples/quickstart.py"),
        ("docs/python.md", "python/examples/quickstart.py"),
        ("docs/rust.md", "examples/downstream/build.rs"),
    ] {
        let shown = std::fs::read_to_string(root().join(doc)).unwrap();
        let code = std::fs::read_to_string(root().join(example)).unwrap();
        assert!(shown.contains(&code), "{doc} does not show {example} as it is");
    }
}

/// Runs of each exit program: a crash at exit came in 5 of 9 runs before
/// the exit handler, so 20 clean runs say it is gone.
const EXIT_RUNS: usize = 20;

/// Examples each exit program adds (updates of 50 of the default
/// classifier run while it adds; the writer is still behind when it
/// returns).
const EXIT_EXAMPLES: usize = 20_000;

/// The configuration of the exit programs: the default classifier.
fn exit_config() -> Config {
    Config {
        text_model: onthefly::TextModelConfig::default(),
        ..small_config()
    }
}

/// Runs a program that returns without `otf_shutdown` in a fresh data
/// folder; asserts a clean exit with no panic and every accepted example in
/// the SQLite store.
fn exits_cleanly_with_every_row_stored(program: &str, mut command: Command, data_dir: &Path) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "{program}: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{program}:\n{stderr}");
    let accepted: i64 = line_after(&stdout, "ACCEPTED ").parse().unwrap();
    assert_eq!(accepted, EXIT_EXAMPLES as i64, "every example was accepted: {stderr}");
    let conn = rusqlite::Connection::open(data_dir.join(onthefly::store::SQLITE_FILE)).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM training_examples", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, accepted,
        "{program}: accepted rows missing from the store\n{stderr}"
    );
}

#[test]
fn a_c_program_that_exits_without_shutdown_stores_every_row_and_exits_cleanly() {
    let binary = compile("tests/c/exit.c", "exit");
    for _ in 0..EXIT_RUNS {
        let config = exit_config();
        let mut command = Command::new(&binary);
        command
            .arg(config_json(&config))
            .arg(EXIT_EXAMPLES.to_string())
            .env_remove("LD_LIBRARY_PATH")
            .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
        exits_cleanly_with_every_row_stored("tests/c/exit.c", command, &config.data_dir);
    }
}

#[test]
fn a_python_program_that_exits_without_shutdown_stores_every_row_and_exits_cleanly() {
    let lib = lib_dir().join("libonthefly.so");
    for _ in 0..EXIT_RUNS {
        let config = exit_config();
        let mut command = Command::new("python3");
        command
            .arg(root().join("tests/python/exit_without_shutdown.py"))
            .arg(config_json(&config))
            .arg(EXIT_EXAMPLES.to_string())
            .env("ONTHEFLY_LIB", &lib);
        exits_cleanly_with_every_row_stored("tests/python/exit_without_shutdown.py", command, &config.data_dir);
    }
}

/// The adoption of the original JustNews database from C: its rows are
/// imported once, a second call imports none.
#[test]
fn a_c_program_adopts_the_original_database_once() {
    let url = common::db::database_with_original_table(40);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let binary = compile("tests/c/adopt.c", "adopt");
    let out = run_c(&binary, &[&url]);
    assert_eq!(line_after(&out, "IMPORTED "), "40", "{out}");
    assert_eq!(line_after(&out, "AGAIN "), "0", "{out}");
    let buffered: i64 = client
        .query_one("SELECT count(*) FROM training_examples WHERE state = 'buffered'", &[])
        .unwrap()
        .get(0);
    assert_eq!(buffered, 40);
}

/// `otf_shutdown` while 4 threads add: each add is accepted or refused as
/// shut down, and every accepted one is in the store (5 runs: the shutdown
/// lands at a different point of the adds each time).
#[test]
fn otf_shutdown_while_threads_add_loses_no_accepted_example() {
    let binary = compile("tests/c/shutdown_race.c", "shutdown_race");
    for _ in 0..5 {
        let config = small_config();
        let out = run_c(&binary, &[&config_json(&config)]);
        let accepted: i64 = line_after(&out, "ACCEPTED ").parse().unwrap();
        assert!(accepted >= 3_000, "{out}");
        let conn = rusqlite::Connection::open(config.data_dir.join(onthefly::store::SQLITE_FILE)).unwrap();
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM training_examples", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, accepted, "accepted examples missing from the store");
    }
}

#[test]
fn two_handles_in_one_process_learn_apart_and_a_reopened_one_finds_its_examples() {
    const PER_THREAD: u64 = 300;
    let binary = compile("tests/c/handles.c", "handles");
    let (a, b) = (small_config(), small_config());
    let export = b.data_dir.join("critic.jsonl");
    let args = [
        config_json(&a),
        config_json(&b),
        PER_THREAD.to_string(),
        export.display().to_string(),
    ];
    let out = run_c(&binary, &args.each_ref().map(String::as_str));
    assert_eq!(
        std::fs::read_to_string(&export).unwrap().lines().count() as u64,
        2 * PER_THREAD
    );
    // Two threads per system; the scout also got a correction, an unsure
    // prediction (awaiting its label, so not received yet) and its label.
    let scout = 2 * PER_THREAD + 2;
    assert_eq!(
        line_after(&out, "RECEIVED "),
        format!("{scout} {}", 2 * PER_THREAD),
        "{out}"
    );
    assert_eq!(line_after(&out, "REOPENED "), scout.to_string(), "{out}");
    let prediction: serde_json::Value = serde_json::from_str(line_after(&out, "PREDICTION ")).unwrap();
    assert!(prediction["model_version"].as_u64().unwrap() >= 1, "{prediction}");
    // Each system wrote only its own folder.
    assert!(a.model_dir("scout").exists() && !a.model_dir("critic").exists());
    assert!(!b.model_dir("scout").exists());
}
