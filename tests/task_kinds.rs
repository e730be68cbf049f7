//! What a task learns, declared with `register_task` or fixed by its first
//! JSON label, holds after a restart on both stores: a declared regressor
//! with no example yet still reads `1` as a score, and a task labelled with
//! booleans still answers `true`, not `"true"`. The PostgreSQL half runs
//! against the cluster `make test` starts (and fails without it).

mod common;

use common::db::{fresh_database, postgres_config};
use common::small_config;
use onthefly::{Config, Coordinator, Error, NewExample, Target, TargetKind, ValidationError};
use serde_json::json;

fn declarations_survive_a_restart(config: Config) {
    let c = Coordinator::new(config.clone()).unwrap();
    c.register_task("critic", "quality", TargetKind::Score).unwrap();
    c.register_task("critic", "quality", TargetKind::Score).unwrap();
    let (verdict, form) = c
        .read_json_target("fact_checker", "verification", "expected_output", json!(true))
        .unwrap();
    assert_eq!(verdict, Target::Label("true".into()));
    c.add_training_example(NewExample::new(
        "fact_checker",
        "verification",
        "the claim is documented",
        verdict,
    ))
    .unwrap();
    c.fix_label_form("fact_checker", "verification", form);
    c.shutdown();
    drop(c);

    let c = Coordinator::new(config).unwrap();
    // No example of the regressor was ever given: only the declaration says so.
    let (score, _) = c
        .read_json_target("critic", "quality", "expected_output", json!(1))
        .unwrap();
    assert_eq!(score, Target::Score(1.0));
    assert_eq!(
        c.target_json("fact_checker", "verification", &Target::Label("false".into())),
        json!(false)
    );
    let refused = c
        .read_json_target("fact_checker", "verification", "expected_output", json!("false"))
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Invalid(ValidationError::UnlearnableTarget {
                learner: "classifier",
                ..
            })
        ),
        "{refused}"
    );
    let other_kind = c.register_task("critic", "quality", TargetKind::Label).unwrap_err();
    assert!(other_kind.to_string().contains("is a regressor"), "{other_kind}");
    c.shutdown();
}

#[test]
fn declarations_and_label_forms_survive_a_restart_on_sqlite() {
    declarations_survive_a_restart(small_config());
}

#[test]
fn declarations_and_label_forms_survive_a_restart_on_postgres() {
    declarations_survive_a_restart(postgres_config(&fresh_database()));
}
