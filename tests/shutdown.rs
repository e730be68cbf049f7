//! Shutdown stops input and joins every background thread, also while an
//! update runs. (One test in this file: it counts the process's threads.)

mod common;

use std::time::Duration;

use common::{example, small_config, wait_until};
use onthefly::{Config, Coordinator, Error, Priority};

/// Threads of this process whose name starts with "onthefly".
fn library_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("Linux /proc")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("onthefly"))
        .count()
}

#[test]
fn shutdown_joins_every_thread_and_refuses_new_input() {
    assert_eq!(library_threads(), 0);
    let c = Coordinator::new(Config {
        max_concurrent_updates: 3,
        check_interval_ms: 5,
        ..small_config()
    })
    .unwrap();
    // A thread names itself when it starts, so give them a moment.
    assert!(
        wait_until(Duration::from_secs(10), || library_threads() == 5),
        "three update workers, the periodic check and the store writer, found {}",
        library_threads()
    );

    // Shut down while an update is queued or running.
    for i in 0..20 {
        c.add_training_example(example("scout", i, "bbc").with_priority(Priority::High))
            .unwrap();
    }
    c.shutdown();
    assert_eq!(library_threads(), 0, "every thread was joined");
    assert!(c.is_shut_down());
    assert!(matches!(
        c.add_training_example(example("scout", 99, "bbc")),
        Err(Error::ShutDown)
    ));
    assert!(matches!(c.force_update_agent("scout"), Err(Error::ShutDown)));
    assert!(
        c.wait_for_idle(Duration::from_secs(1)),
        "nothing stays in flight after shutdown"
    );
    c.shutdown(); // A second call does nothing.

    // Dropping a running coordinator shuts it down too.
    let dropped = Coordinator::new(small_config()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || library_threads() == 4));
    drop(dropped);
    assert_eq!(library_threads(), 0);
}
