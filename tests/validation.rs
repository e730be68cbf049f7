//! Every bad input gets its own typed error, and nothing of it is stored.

mod common;

use common::{example, label, small_config};
use onthefly::{
    Config, Coordinator, Error, NewExample, PredictionFeedback, Priority, Target, TargetKind, UserCorrection,
    ValidationError,
};

fn coordinator() -> Coordinator {
    Coordinator::new(Config {
        max_input_bytes: 1000,
        max_name_bytes: 16,
        ..small_config()
    })
    .unwrap()
}

fn invalid(result: onthefly::Result<impl std::fmt::Debug>) -> ValidationError {
    match result {
        Err(Error::Invalid(e)) => e,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn each_bad_field_has_its_own_error() {
    let c = coordinator();
    let base = || example("scout", 1, "bbc");

    let e = invalid(c.add_training_example(NewExample {
        agent_name: " ".into(),
        ..base()
    }));
    assert_eq!(e, ValidationError::EmptyName { field: "agent_name" });
    let e = invalid(c.add_training_example(NewExample {
        task_type: String::new(),
        ..base()
    }));
    assert_eq!(e, ValidationError::EmptyName { field: "task_type" });
    let e = invalid(c.add_training_example(NewExample {
        agent_name: "a".repeat(17),
        ..base()
    }));
    assert_eq!(
        e,
        ValidationError::NameTooLong {
            field: "agent_name",
            len: 17,
            max: 16
        }
    );
    let e = invalid(c.add_training_example(NewExample {
        agent_name: "scout; DROP".into(),
        ..base()
    }));
    assert!(matches!(
        e,
        ValidationError::InvalidName {
            field: "agent_name",
            ..
        }
    ));
    let e = invalid(c.add_training_example(NewExample {
        input_text: "  \n".into(),
        ..base()
    }));
    assert_eq!(e, ValidationError::EmptyInput);
    let e = invalid(c.add_training_example(NewExample {
        input_text: "x".repeat(1001),
        ..base()
    }));
    assert_eq!(e, ValidationError::InputTooLong { len: 1001, max: 1000 });
    // Targets are held to the inputs' limit too: a label, tags, JSON.
    let e = invalid(c.add_training_example(NewExample {
        expected_output: label(&"y".repeat(1001)),
        ..base()
    }));
    let too_long = |field, len| ValidationError::TargetTooLong { field, len, max: 1000 };
    assert_eq!(e, too_long("expected_output", 1001));
    let e = invalid(c.add_training_example(NewExample {
        expected_output: Target::Json(serde_json::json!({ "summary": "z".repeat(1000) })),
        ..base()
    }));
    assert_eq!(e, too_long("expected_output", 1014)); // {"summary":"…"}
    let e = invalid(c.add_user_correction(UserCorrection::new(
        "scout",
        "news",
        "text",
        label("bbc"),
        label(&"c".repeat(1001)),
    )));
    assert_eq!(e, too_long("correct_output", 1001));
    let e = invalid(c.add_training_example(base().with_uncertainty(1.7)));
    assert_eq!(
        e,
        ValidationError::OutOfUnitRange {
            field: "uncertainty_score",
            value: 1.7
        }
    );
    assert_eq!(
        e.to_string(),
        "uncertainty_score must be a finite number in 0..=1, got 1.7"
    );
    let e = invalid(c.add_training_example(base().with_importance(f64::NAN)));
    assert!(matches!(e, ValidationError::OutOfUnitRange { field: "importance_score", value } if value.is_nan()));
    let e = invalid(c.add_training_example(base().with_importance(f64::INFINITY)));
    assert!(matches!(
        e,
        ValidationError::OutOfUnitRange {
            field: "importance_score",
            ..
        }
    ));
    let e = invalid(c.add_training_example(NewExample {
        expected_output: label(""),
        ..base()
    }));
    assert_eq!(e, ValidationError::EmptyLabel);
    let e = invalid(c.add_training_example(NewExample::new("scout", "quality", "good text", Target::Score(-0.1))));
    assert_eq!(
        e,
        ValidationError::OutOfUnitRange {
            field: "expected_output",
            value: -0.1
        }
    );
    let tags = Target::Tags(vec!["B-person".into(), "O".into()]);
    let e = invalid(c.add_training_example(NewExample::new("analyst", "ner", "Obama visited Paris", tags)));
    assert_eq!(e, ValidationError::TagCountMismatch { tokens: 3, tags: 2 });
    // Tags the judge could not read (entity F1 finds no entity in them, so
    // no update of such a task could be rolled back): refused, named.
    for (bad, position) in [
        (["PER", "O", "LOC"], 0),
        (["B-per", "i-per", "O"], 1),
        (["S-PER", "O", "O"], 0),
        (["B-PER", "O", "B- LOC"], 2),
    ] {
        let tags = Target::Tags(bad.iter().map(|t| t.to_string()).collect());
        let e = invalid(c.add_training_example(NewExample::new("analyst", "ner", "Obama visited Paris", tags)));
        assert_eq!(
            e,
            ValidationError::NotBioTag {
                position,
                tag: bad[position].to_string()
            }
        );
    }
    // A label with white space around it would be a class of its own.
    let e = invalid(c.add_training_example(NewExample {
        expected_output: label("bbc "),
        ..base()
    }));
    assert_eq!(e, ValidationError::UntrimmedLabel("bbc ".into()));
    let e = invalid(c.add_training_example(NewExample {
        source_url: "u".repeat(1001),
        ..base()
    }));
    assert!(matches!(
        e,
        ValidationError::NameTooLong {
            field: "source_url",
            ..
        }
    ));
    // Neither PostgreSQL text nor JSON columns can hold a NUL: refused up front.
    for (example, field) in [
        (
            NewExample {
                input_text: "nul \0 inside".into(),
                ..base()
            },
            "input_text",
        ),
        (base().with_feedback("a\0b"), "user_feedback"),
        (base().with_source("http://x/\0"), "source_url"),
        (
            NewExample {
                expected_output: label("bb\0c"),
                ..base()
            },
            "expected_output",
        ),
        (
            NewExample {
                expected_output: Target::Json(serde_json::json!({"deep": ["ok", "n\0ul"]})),
                task_type: "summary".into(),
                ..base()
            },
            "expected_output",
        ),
    ] {
        assert_eq!(
            invalid(c.add_training_example(example)),
            ValidationError::NulCharacter { field }
        );
    }

    // Nothing of any refused input was stored: no agent even exists.
    let status = c.get_training_status();
    assert!(status.agents.is_empty(), "{:?}", status.agents);
    assert_eq!(status.total_examples, 0);
}

#[test]
fn priority_out_of_range_is_refused() {
    assert_eq!(Priority::try_from(3u8), Ok(Priority::Critical));
    assert_eq!(Priority::try_from(7u8), Err(ValidationError::PriorityOutOfRange(7)));
    assert_eq!(Priority::try_from(-1i64), Err(ValidationError::PriorityOutOfRange(-1)));
    let e: Result<Priority, _> = serde_json::from_str("4");
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("correction_priority must be in 0..=3, got 4"));
}

#[test]
fn a_task_keeps_the_target_kind_of_its_first_example() {
    let c = coordinator();
    c.add_training_example(example("scout", 1, "bbc")).unwrap();
    let e = invalid(c.add_training_example(NewExample::new("scout", "news", "some text", Target::Score(0.5))));
    assert_eq!(
        e,
        ValidationError::TargetKindMismatch {
            agent: "scout".into(),
            task: "news".into(),
            expected: TargetKind::Label,
            got: TargetKind::Score,
        }
    );
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.buffer_size, 1);
    assert_eq!(scout.examples_received, 1);
}

#[test]
fn feedback_and_corrections_are_validated_too() {
    let c = coordinator();
    let feedback = PredictionFeedback {
        agent_name: "scout".into(),
        task_type: "news".into(),
        input_text: "text".into(),
        predicted_output: label("bbc"),
        actual_output: Some(label("cnn")),
        confidence_score: 1.2,
        source_url: String::new(),
    };
    let e = invalid(c.add_prediction_feedback(feedback.clone()));
    assert_eq!(
        e,
        ValidationError::OutOfUnitRange {
            field: "confidence_score",
            value: 1.2
        }
    );
    let e = invalid(c.add_prediction_feedback(PredictionFeedback {
        confidence_score: 0.5,
        actual_output: Some(Target::Score(0.3)),
        ..feedback.clone()
    }));
    assert!(matches!(e, ValidationError::TargetKindMismatch { .. }));
    let e = invalid(c.add_user_correction(UserCorrection::new("scout", "news", "text", label("bbc"), label(" "))));
    assert_eq!(e, ValidationError::EmptyLabel);
    // Each argument is named as the caller wrote it (every one was
    // `expected_output`).
    let scores = PredictionFeedback {
        confidence_score: 0.5,
        predicted_output: Target::Score(1.5),
        actual_output: None,
        ..feedback.clone()
    };
    let field_of = |e: ValidationError| match e {
        ValidationError::OutOfUnitRange { field, .. } | ValidationError::NulCharacter { field } => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field_of(invalid(c.add_prediction_feedback(scores.clone()))),
        "predicted_output"
    );
    let actual = PredictionFeedback {
        predicted_output: Target::Score(0.5),
        actual_output: Some(Target::Score(1.5)),
        ..scores
    };
    assert_eq!(field_of(invalid(c.add_prediction_feedback(actual))), "actual_output");
    let nul = |s: &str| label(&format!("a{s}\0b"));
    let correction = UserCorrection::new("scout", "news", "text", nul(""), label("bbc"));
    assert_eq!(field_of(invalid(c.add_user_correction(correction))), "incorrect_output");
    let correction = UserCorrection::new("scout", "news", "text", label("bbc"), nul(""));
    assert_eq!(field_of(invalid(c.add_user_correction(correction))), "correct_output");
    assert!(c.get_training_status().agents.is_empty());
}

#[test]
fn unknown_agents_and_missing_models_are_clear_errors() {
    let c = coordinator();
    assert!(matches!(c.force_update_agent("nobody"), Err(Error::UnknownAgent(a)) if a == "nobody"));
    assert!(matches!(
        c.predict("nobody", "news", "text"),
        Err(Error::UnknownAgent(_))
    ));
    c.add_training_example(example("scout", 1, "bbc")).unwrap();
    assert!(matches!(c.predict("scout", "news", "text"), Err(Error::NoModel { .. })));
    assert!(matches!(
        c.predict("scout", "other", "text"),
        Err(Error::NoModel { .. })
    ));
}

/// Names that would leave the model folder are refused where they become a
/// path: `list_checkpoints("analyst", "../scout/news")` listed the scout's
/// versions as the analyst's.
#[test]
fn checkpoint_listings_refuse_names_that_are_paths() {
    let c = coordinator();
    c.add_training_example(example("scout", 1, "bbc")).unwrap();
    c.add_training_example(example("analyst", 1, "bbc")).unwrap();
    for (agent, task) in [("analyst", "../scout/news"), ("scout", "/tmp"), ("../scout", "news")] {
        assert!(
            matches!(
                invalid(c.list_checkpoints(agent, task)),
                ValidationError::InvalidName { .. }
            ),
            "{agent}/{task}"
        );
    }
    assert!(c.list_checkpoints("scout", "news").unwrap().is_empty());
}

/// A target the model the configuration names for its task cannot learn is
/// refused at the call: accepted, it failed every update, and its examples,
/// buffered for good, held the agent's other tasks back.
#[test]
fn targets_the_configured_model_cannot_learn_are_refused() {
    let c = Coordinator::new(Config {
        model_kinds: [("critic/claims".to_string(), onthefly::models::ModelKind::TextClassifier)].into(),
        torchscript: common::broken_torchscript_classifier("scout/news"),
        ..small_config()
    })
    .unwrap();
    let refused = |e: NewExample| match invalid(c.add_training_example(e)) {
        ValidationError::NotForConfiguredModel { .. } => {}
        other => panic!("{other:?}"),
    };
    refused(NewExample::new("critic", "claims", "a claim", Target::Score(0.4)));
    refused(NewExample::new("scout", "news", "a story", label("fox")));
    refused(NewExample::new("scout", "news", "a story", Target::Score(0.4)));
    c.add_training_example(NewExample::new("critic", "claims", "a claim", label("true")))
        .unwrap();
    c.add_training_example(NewExample::new("scout", "news", "a story", label("cnn")))
        .unwrap();
    let message =
        invalid(c.add_training_example(NewExample::new("scout", "news", "a story", label("fox")))).to_string();
    assert!(message.contains("\"bbc\"") && message.contains("fox"), "{message}");
    let status = c.get_training_status();
    assert_eq!(
        status.agents["critic"].examples_received + status.agents["scout"].examples_received,
        2
    );
}

/// After shutdown every call says so, the same way: `predict` served a
/// prediction unless it was to be queued for review, and `flush` and
/// `export_dataset` answered with a store error.
#[test]
fn every_call_after_shutdown_is_shut_down() {
    let c = Coordinator::new(Config {
        predict_feedback_threshold: 0.0,
        ..small_config()
    })
    .unwrap();
    for i in 0..20 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(std::time::Duration::from_secs(60)));
    assert!(c.predict("scout", "news", "a story").is_ok());
    c.shutdown();
    let export = c.config().data_dir.join("export.jsonl");
    assert!(matches!(c.predict("scout", "news", "a story"), Err(Error::ShutDown)));
    assert!(matches!(
        c.flush(std::time::Duration::from_secs(1)),
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        c.export_dataset("scout", "news", &export),
        Err(Error::ShutDown)
    ));
    assert!(matches!(c.list_checkpoints("scout", "news"), Err(Error::ShutDown)));
}

/// A misspelt agent is an error with a store as without one, not an empty
/// file and a count of 0.
#[test]
fn exporting_an_unknown_agent_is_an_error() {
    let c = coordinator();
    c.add_training_example(example("scout", 1, "bbc")).unwrap();
    let export = c.config().data_dir.join("export.jsonl");
    assert!(matches!(
        c.export_dataset("scuot", "news", &export),
        Err(Error::UnknownAgent(_))
    ));
    assert_eq!(c.export_dataset("scout", "news", &export).unwrap(), 1);
}

#[test]
fn bio_and_iob1_tags_are_taken() {
    let c = Coordinator::new(small_config()).unwrap();
    // IOB1: a type's first word tagged I-.
    for good in [["B-person", "O", "B-geo-loc"], ["I-PER", "O", "I-LOC"]] {
        let tags = Target::Tags(good.iter().map(|t| t.to_string()).collect());
        c.add_training_example(NewExample::new("analyst", "ner", "Obama visited Paris", tags))
            .unwrap();
    }
    assert_eq!(c.get_training_status().agents["analyst"].examples_received, 2);
}
