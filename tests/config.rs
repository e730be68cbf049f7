//! Configuration: the original's defaults, the environment, and clear errors.

mod common;

use onthefly::{Config, ConfigError, DeviceChoice};

#[test]
fn defaults_are_the_originals() {
    let c = Config::default();
    assert_eq!(c.update_threshold, 50);
    assert_eq!(c.max_buffer_size, 1000);
    assert_eq!(c.performance_window, 100);
    assert_eq!(c.rollback_threshold, 0.05);
    assert_eq!(c.check_interval_ms, 60_000);
    assert_eq!(c.immediate_update_priority, 2);
    assert_eq!(c.feedback_uncertainty_threshold, 0.6);
    assert_eq!(c.feedback_importance_threshold, 0.7);
    assert_eq!(c.device, DeviceChoice::Auto);
    assert!(c.database.is_none());
    c.validate().expect("the defaults are valid");
}

#[test]
fn environment_sets_every_documented_knob() {
    let c = Config::from_vars([
        ("TRAINING_UPDATE_THRESHOLD", "100"),
        ("TRAINING_MAX_BUFFER_SIZE", "2000"),
        ("TRAINING_PERFORMANCE_WINDOW", "200"),
        ("TRAINING_ROLLBACK_THRESHOLD", "0.03"),
        ("TRAINING_CHECK_INTERVAL_SECS", "2.5"),
        ("TRAINING_HELD_OUT_FRACTION", "0.1"),
        ("TRAINING_MAX_CONCURRENT_UPDATES", "3"),
        ("TRAINING_DEVICE", "CPU"),
        ("TRAINING_CHECKPOINT_FULL_EVERY", "4"),
        ("SCOUT_MODEL_PATH", "/models/scout-v2"),
        ("FACT_CHECKER_MODEL_PATH", "/models/fact-checker-v2"),
        ("UNRELATED", "ignored"),
    ])
    .expect("valid environment");
    assert_eq!(c.update_threshold, 100);
    assert_eq!(c.max_buffer_size, 2000);
    assert_eq!(c.performance_window, 200);
    assert_eq!(c.rollback_threshold, 0.03);
    assert_eq!(c.check_interval_ms, 2500);
    assert_eq!(c.held_out_fraction, 0.1);
    assert_eq!(c.max_concurrent_updates, 3);
    assert_eq!(c.device, DeviceChoice::Cpu);
    assert_eq!(c.checkpoint_full_every, 4);
    assert_eq!(c.model_paths["scout"].to_str(), Some("/models/scout-v2"));
    assert_eq!(c.model_paths["fact_checker"].to_str(), Some("/models/fact-checker-v2"));
}

#[test]
fn a_bad_value_names_the_variable_and_the_value() {
    let cases = [
        ("TRAINING_UPDATE_THRESHOLD", "fifty"),
        ("TRAINING_UPDATE_THRESHOLD", "0"),
        ("TRAINING_UPDATE_THRESHOLD", "5000"), // above the buffer size
        ("TRAINING_MAX_BUFFER_SIZE", "-1"),
        ("TRAINING_ROLLBACK_THRESHOLD", "1.5"),
        ("TRAINING_ROLLBACK_THRESHOLD", "NaN"),
        ("TRAINING_HELD_OUT_FRACTION", "1"),
        ("TRAINING_CHECK_INTERVAL_SECS", "0"),
        ("TRAINING_DEVICE", "tpu"),
        ("TRAINING_CHECKPOINT_FULL_EVERY", "0"),
        ("TRAINING_MODEL_KINDS", "critic/sentiment=gpt"),
        ("TRAINING_MODEL_KINDS", "critic/sentiment"),
        ("POSTGRES_PORT", "99999"),
    ];
    for (variable, value) in cases {
        let mut vars = vec![(variable, value)];
        if variable == "POSTGRES_PORT" {
            vars.push(("POSTGRES_HOST", "db"));
        }
        match Config::from_vars(vars) {
            Err(ConfigError::InvalidEnv {
                variable: v,
                value: got,
                ..
            }) => {
                assert_eq!((v.as_str(), got.as_str()), (variable, value));
            }
            other => panic!("{variable}={value}: expected InvalidEnv, got {other:?}"),
        }
        let message = Config::from_vars([(variable, value), ("POSTGRES_HOST", "db")])
            .unwrap_err()
            .to_string();
        assert!(message.contains(variable) && message.contains(value), "{message}");
    }
}

#[test]
fn database_comes_from_database_url_or_postgres_variables() {
    assert!(Config::from_vars(Vec::<(String, String)>::new())
        .unwrap()
        .database
        .is_none());

    let c = Config::from_vars([
        ("POSTGRES_HOST", "db.internal"),
        ("POSTGRES_DB", "justnews"),
        ("POSTGRES_USER", "justnews_user"),
        ("POSTGRES_PASSWORD", "s3cret'pw"),
    ])
    .unwrap();
    let db = c.database.expect("database configured");
    assert_eq!(
        db.url,
        "host='db.internal' port=5432 dbname='justnews' user='justnews_user' password='s3cret\\'pw'"
    );
    let debug = format!(
        "{db:?} {c:?}",
        c = Config {
            database: Some(db.clone()),
            ..Config::default()
        }
    );
    assert!(!debug.contains("s3cret"), "credentials leaked into Debug: {debug}");

    let c = Config::from_vars([("DATABASE_URL", "postgresql://u:p@h/d"), ("POSTGRES_HOST", "other")]).unwrap();
    assert_eq!(c.database.unwrap().url, "postgresql://u:p@h/d");

    // Without POSTGRES_HOST the others were ignored and the examples went
    // to a local SQLite file: refused, naming the variable missing.
    let err = Config::from_vars([("POSTGRES_DB", "justnews"), ("POSTGRES_USER", "u")]).unwrap_err();
    match &err {
        ConfigError::InvalidEnv { variable, expected, .. } => {
            assert_eq!(variable, "POSTGRES_HOST");
            assert!(expected.contains("POSTGRES_DB is set"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    // Settings on top (the Python package's keywords): a database given
    // there is taken; a value the environment set out of range is named by
    // its variable, one the settings fixed is not refused.
    let vars = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let partial = vars(&[("POSTGRES_USER", "u")]);
    let c = Config::from_vars_with(&partial, r#"{"database": {"url": "postgresql://h/d"}}"#).unwrap();
    assert_eq!(c.database.unwrap().url, "postgresql://h/d");
    assert!(Config::from_vars_with(&partial, "{}").is_err());
    let small = vars(&[("TRAINING_MAX_BUFFER_SIZE", "20")]);
    let c = Config::from_vars_with(&small, r#"{"update_threshold": 10, "text_model": {"seed": 7}}"#).unwrap();
    assert_eq!((c.update_threshold, c.max_buffer_size, c.text_model.seed), (10, 20, 7));
    assert_eq!(
        c.text_model.hash_buckets,
        Config::default().text_model.hash_buckets,
        "merged field by field"
    );
    let wide = vars(&[("TRAINING_UPDATE_THRESHOLD", "500")]);
    match Config::from_vars_with(&wide, r#"{"max_buffer_size": 100}"#) {
        Err(ConfigError::InvalidEnv { variable, .. }) => assert_eq!(variable, "TRAINING_UPDATE_THRESHOLD"),
        other => panic!("{other:?}"),
    }
    // Not a number to any setting, named by its variable, through both paths.
    for bad in ["nan", "inf", "-Infinity"] {
        let env = vars(&[("TRAINING_ROLLBACK_THRESHOLD", bad)]);
        for err in [
            Config::from_vars(env.clone()).unwrap_err(),
            Config::from_vars_with(&env, "{}").unwrap_err(),
        ] {
            assert!(
                matches!(&err, ConfigError::InvalidEnv { variable, .. } if variable == "TRAINING_ROLLBACK_THRESHOLD"),
                "{bad}: {err:?}"
            );
        }
    }
    let err = Config::from_vars([("POSTGRES_PORT", "abc")]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidEnv { variable, value, .. } if variable == "POSTGRES_PORT" && value == "abc"),
        "{err:?}"
    );
}

#[test]
fn a_list_where_an_object_belongs_is_refused_not_read_as_defaults() {
    // serde reads a struct from a sequence: `[]` was a configuration of defaults.
    for (json, named) in [
        ("[]", "configuration must be a JSON object"),
        (
            r#"{"text_model": []}"#,
            "configuration.text_model must be a JSON object",
        ),
        (
            r#"{"ewc": {"enabled": true}, "store": [true]}"#,
            "configuration.store must be",
        ),
        ("7", "configuration must be a JSON object"),
    ] {
        let err = Config::from_json(json).unwrap_err().to_string();
        assert!(err.contains(named), "{json}: {err}");
    }
}

#[test]
fn json_keeps_defaults_and_refuses_unknown_fields() {
    let c = Config::from_json(r#"{"update_threshold": 10, "device": "cpu"}"#).unwrap();
    assert_eq!(c.update_threshold, 10);
    assert_eq!(c.max_buffer_size, 1000);
    assert_eq!(c.device, DeviceChoice::Cpu);
    assert!(matches!(
        Config::from_json(r#"{"update_treshold": 10}"#),
        Err(ConfigError::Json(_))
    ));
    let err = Config::from_json(r#"{"rollback_threshold": -0.1}"#).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::InvalidField {
                field: "rollback_threshold",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("-0.1"));
    // 0 would make every example urgent: nothing held out, nothing judged.
    let err = Config::from_json(r#"{"immediate_update_priority": 0}"#).unwrap_err();
    assert!(err.to_string().contains("immediate_update_priority"), "{err}");
    // Inside `database` too: a misspelt pool size is not a pool of 4.
    let err = Config::from_json(r#"{"database": {"url": "postgresql://h/d", "pool_sise": 16}}"#).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Json(m) if m.contains("pool_sise")),
        "{err:?}"
    );
    // A TorchScript module's labels are the one list a configuration has.
    let c = Config::from_json(
        r#"{"torchscript": {"scout/news": {"path": "m.pt", "target_kind": "label", "hash_buckets": 64, "labels": ["a", "b"]}},
            "model_kinds": {"scout/news": "torchscript"}}"#,
    )
    .unwrap();
    assert_eq!(c.torchscript["scout/news"].labels, ["a", "b"]);
    // The unused embedding size does not bound the buckets.
    let c = Config::from_json(r#"{"text_model": {"hash_buckets": 33554432, "embedding_dim": 64}}"#).unwrap();
    assert_eq!(c.text_model.hash_buckets, 1 << 25);
    let err = Config::from_json(r#"{"text_model": {"hash_buckets": 33554433}}"#).unwrap_err();
    assert!(err.to_string().contains("hash_buckets must be at most 2^25"), "{err}");
    // A per-task key that names no task would be ignored for good.
    for (field, json) in [
        ("ewc_per_task", r#"{"ewc_per_task": {"scout": {"lambda": 1.0}}}"#),
        (
            "torchscript",
            r#"{"torchscript": {"scout/": {"path": "m.pt", "target_kind": "label", "hash_buckets": 64, "labels": ["a"]}}}"#,
        ),
    ] {
        match Config::from_json(json) {
            Err(ConfigError::InvalidField { field: f, reason }) => {
                assert_eq!(f, field);
                assert!(reason.contains("agent/task"), "{reason}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // A round trip through JSON gives the same configuration.
    let json = serde_json::to_string(&Config::default()).unwrap();
    assert_eq!(Config::from_json(&json).unwrap(), Config::default());
}

#[test]
fn model_kinds_and_the_encoder_folder_come_from_config_or_environment() {
    use onthefly::models::ModelKind;
    let c = Config::from_vars([
        ("TRAINING_MINILM_DIR", "/models/minilm"),
        (
            "TRAINING_MODEL_KINDS",
            "critic/sentiment=minilm_head, analyst/entity_extraction=token_tagger",
        ),
    ])
    .unwrap();
    assert_eq!(c.minilm_dir.as_deref().and_then(|p| p.to_str()), Some("/models/minilm"));
    assert_eq!(c.model_kinds["critic/sentiment"], ModelKind::MiniLmHead);
    assert_eq!(c.model_kinds["analyst/entity_extraction"], ModelKind::TokenTagger);

    // A MiniLM head needs the encoder's folder; a TorchScript kind its module.
    for (kind, needs) in [
        (ModelKind::MiniLmHead, "minilm_dir"),
        (ModelKind::TorchScript, "torchscript"),
    ] {
        let bad = Config {
            model_kinds: [("critic/sentiment".to_string(), kind)].into(),
            ..Config::default()
        };
        let message = bad.validate().unwrap_err().to_string();
        assert!(message.contains("model_kinds") && message.contains(needs), "{message}");
    }
    let json = Config::from_json(r#"{"model_kinds": {"scout/quality": "text_regressor"}}"#).unwrap();
    assert_eq!(json.model_kinds["scout/quality"], ModelKind::TextRegressor);
}

#[test]
fn several_instances_are_configured_by_name_and_need_a_database_and_checkpoints() {
    let c = Config::from_vars([
        ("DATABASE_URL", "postgresql://u:p@h/d"),
        ("TRAINING_CLUSTER_INSTANCE", "scout-eu-1"),
        ("TRAINING_CLUSTER_CHECKPOINT_DIR", "/mnt/models"),
        ("TRAINING_CLUSTER_POLL_MS", "500"),
    ])
    .unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.instance_id, "scout-eu-1");
    assert_eq!(
        cluster.shared_checkpoint_dir,
        Some(std::path::PathBuf::from("/mnt/models"))
    );
    assert_eq!(cluster.poll_interval_ms, 500);
    assert!(Config::from_vars([("DATABASE_URL", "postgresql://u:p@h/d")])
        .unwrap()
        .cluster
        .is_none());

    let refused = |vars: &[(&str, &str)]| match Config::from_vars(vars.iter().copied()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{vars:?} was accepted"),
    };
    // SQLite cannot be shared.
    assert!(refused(&[("TRAINING_CLUSTER_INSTANCE", "a")]).contains("PostgreSQL"));
    for bad in ["has space", "x/y", &"n".repeat(41)] {
        let message = refused(&[("DATABASE_URL", "postgresql://h/d"), ("TRAINING_CLUSTER_INSTANCE", bad)]);
        assert!(message.contains("instance_id"), "{message}");
    }
    let message = refused(&[
        ("DATABASE_URL", "postgresql://h/d"),
        ("TRAINING_CLUSTER_INSTANCE", "a"),
        ("TRAINING_CHECKPOINTS_KEPT", "0"),
    ]);
    assert!(message.contains("checkpoints_kept"), "{message}");
}

#[test]
fn cuda_without_a_cuda_device_is_refused_not_run_on_the_cpu() {
    let config = Config {
        device: DeviceChoice::Cuda,
        ..common::small_config()
    };
    let data_dir = config.data_dir.clone();
    match onthefly::Coordinator::new(config) {
        Ok(c) if tch::Cuda::is_available() => {
            assert_eq!(c.get_training_status().device, "cuda:0");
        }
        Ok(c) => panic!(
            "no CUDA device here, yet \"cuda\" started on {}",
            c.get_training_status().device
        ),
        Err(onthefly::Error::Config(ConfigError::InvalidField { field, reason })) => {
            assert!(!tch::Cuda::is_available());
            assert_eq!(field, "device");
            assert!(reason.contains("\"auto\""), "{reason}");
            // Refused before anything was opened: no store, no lock left.
            assert!(!data_dir.join(onthefly::store::SQLITE_FILE).exists());
        }
        Err(e) => panic!("refused with the wrong error: {e}"),
    }
    // `auto` is the choice that falls back.
    let c = onthefly::Coordinator::new(Config {
        device: DeviceChoice::Auto,
        ..common::small_config()
    })
    .unwrap();
    let expected = if tch::Cuda::is_available() { "cuda:0" } else { "cpu" };
    assert_eq!(c.get_training_status().device, expected);
}

#[test]
fn model_files_the_configuration_names_are_checked_at_start() {
    let spec = |path: &str| onthefly::models::TorchScriptSpec {
        path: path.into(),
        target_kind: onthefly::TargetKind::Label,
        labels: vec!["bbc".into()],
        hash_buckets: 64,
        max_tokens: 10,
        learning_rate: 0.05,
        minibatch_size: 4,
    };
    // A missing module: refused at start, not at the task's first update.
    let err = onthefly::Coordinator::new(Config {
        torchscript: [("scout/news".to_string(), spec("/nonexistent/module.pt"))].into(),
        ..common::small_config()
    })
    .unwrap_err();
    assert!(
        matches!(&err, onthefly::Error::Config(ConfigError::InvalidField { field: "torchscript", reason }) if reason.contains("/nonexistent/module.pt")),
        "{err:?}"
    );
    // A MiniLM folder without the encoder's files.
    let empty = common::fresh_data_dir();
    std::fs::create_dir_all(&empty).unwrap();
    let err = onthefly::Coordinator::new(Config {
        minilm_dir: Some(empty),
        model_kinds: [("analyst/topic".to_string(), onthefly::models::ModelKind::MiniLmHead)].into(),
        ..common::small_config()
    })
    .unwrap_err();
    assert!(
        matches!(
            &err,
            onthefly::Error::Config(ConfigError::InvalidField {
                field: "minilm_dir",
                ..
            })
        ),
        "{err:?}"
    );
    // A relative module path is read from where the program started, also
    // after it changed directory.
    let dir = common::fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("module.pt");
    std::fs::write(&file, b"bytes").unwrap();
    let relative = file.strip_prefix(std::env::current_dir().unwrap()).unwrap();
    let c = onthefly::Coordinator::new(Config {
        torchscript: [("scout/news".to_string(), spec(relative.to_str().unwrap()))].into(),
        ..common::small_config()
    })
    .unwrap();
    assert_eq!(c.config().torchscript["scout/news"].path, file);
}
