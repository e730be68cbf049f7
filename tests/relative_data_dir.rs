//! A relative `data_dir` (the Python package's default,
//! `onthefly-data/<program>`, is one) names one folder for the instance's
//! whole life: the working directory when it was opened. A program that
//! changed directory later wrote its checkpoints under the new directory
//! while its store stayed in the first, and a restart found no model for
//! examples marked trained. The only test in its binary: it changes the
//! process's working directory.

mod common;

use common::{example, fresh_data_dir, small_config, update_now};
use onthefly::{Config, Coordinator};

#[test]
fn a_relative_data_dir_is_the_folder_it_named_when_opened() {
    let (first, later) = (fresh_data_dir(), fresh_data_dir());
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&later).unwrap();
    let config = Config {
        data_dir: "agent-data".into(),
        ..small_config()
    };
    std::env::set_current_dir(&first).unwrap();
    let c = Coordinator::new(config.clone()).unwrap();
    for i in 0..40 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    std::env::set_current_dir(&later).unwrap();
    update_now(&c, "scout");
    let versions = c.list_checkpoints("scout", "news").unwrap().len();
    c.shutdown();
    drop(c);
    assert!(versions > 0, "no version was written");
    assert!(
        !later.join("agent-data").exists(),
        "files went to the later working directory"
    );

    std::env::set_current_dir(&first).unwrap();
    let c = Coordinator::new(config).unwrap();
    assert_eq!(c.list_checkpoints("scout", "news").unwrap().len(), versions);
    assert!(
        c.predict("scout", "news", "a story about the news").is_ok(),
        "no model after a restart"
    );
    c.shutdown();

    // The global instance compares a configuration given again with the one
    // it resolved: the same relative folder is the same configuration.
    let global = Config {
        data_dir: "global-data".into(),
        ..small_config()
    };
    let first = onthefly::initialize_online_training(global.clone()).unwrap();
    let again = onthefly::initialize_online_training(global).unwrap();
    assert!(
        std::ptr::eq(first, again),
        "the same relative data_dir was another configuration"
    );
    assert!(first.config().data_dir.is_absolute());
    onthefly::shutdown().unwrap();
}
