//! The configuration read from the environment: the one place the library
//! reads environment variables ([`Config::from_env`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::store::default_pool_size;

use super::{ClusterConfig, Config, ConfigError, DatabaseConfig, DeviceChoice};

impl Config {
    /// Reads the configuration from the process environment (see [`Config::from_vars`]).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Reads the configuration from `(name, value)` pairs, as [`Config::from_env`]
    /// does from the environment. Recognised variables:
    ///
    /// - `TRAINING_UPDATE_THRESHOLD`, `TRAINING_MAX_BUFFER_SIZE`,
    ///   `TRAINING_PERFORMANCE_WINDOW`, `TRAINING_ROLLBACK_THRESHOLD`,
    ///   `TRAINING_CHECK_INTERVAL_SECS`, `TRAINING_HELD_OUT_FRACTION`,
    ///   `TRAINING_MAX_CONCURRENT_UPDATES`, `TRAINING_DEVICE` (`auto`, `cpu`, `cuda`),
    ///   `TRAINING_DATA_DIR`, `TRAINING_CHECKPOINTS_KEPT`,
    ///   `TRAINING_CHECKPOINT_FULL_EVERY`, `TRAINING_MINILM_DIR`,
    ///   `TRAINING_MODEL_KINDS` (`agent/task=kind,...`);
    /// - `TRAINING_CLUSTER_INSTANCE` (this instance's name: turns on sharing
    ///   the database with other instances), `TRAINING_CLUSTER_CHECKPOINT_DIR`,
    ///   `TRAINING_CLUSTER_POLL_MS`;
    /// - `DATABASE_URL`, or `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_DB`,
    ///   `POSTGRES_USER`, `POSTGRES_PASSWORD` (`DATABASE_URL` wins when both are set);
    /// - `<AGENT>_MODEL_PATH`, for example `SCOUT_MODEL_PATH` or
    ///   `FACT_CHECKER_MODEL_PATH` (agent `fact_checker`).
    ///
    /// Other variables are ignored. A bad value is an error naming the variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let c = Config::read_vars(&vars)?;
        c.validate().map_err(|e| match e {
            // Name the variable, not the field, when the value came from the environment.
            ConfigError::InvalidField { field, reason } => match env_name_of(field) {
                Some(variable) => ConfigError::InvalidEnv {
                    variable: variable.to_string(),
                    value: vars.get(variable).cloned().unwrap_or_default(),
                    expected: expected_of(field),
                },
                None => ConfigError::InvalidField { field, reason },
            },
            other => other,
        })?;
        Ok(c)
    }

    /// The environment's configuration, each value parsed (a malformed one
    /// is an error naming its variable) but the whole not checked: for a
    /// caller that puts settings of its own on top and checks the result
    /// (the C ABI's `otf_config_from_environment`, the Python package). An
    /// environment's combination a caller's setting makes valid is then not
    /// refused, nor blamed on a variable the caller never set.
    pub(crate) fn from_env_unchecked() -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Config::read_vars(&vars)
    }

    /// The environment's configuration with `overrides` (a JSON object, its
    /// nested objects merged field by field) on top, checked as a whole: what
    /// the Python package's keyword arguments give. A value out of range is
    /// named by its variable when the environment set it and `overrides`
    /// did not; `POSTGRES_*` without `POSTGRES_HOST` is an error only when
    /// `overrides` sets no `database` either.
    pub fn from_env_with(overrides: &str) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Config::from_vars_with(&vars, overrides)
    }

    /// [`Config::from_env_with`] on `(name, value)` pairs.
    pub fn from_vars_with(vars: &BTreeMap<String, String>, overrides: &str) -> Result<Config, ConfigError> {
        let overrides: serde_json::Value =
            serde_json::from_str(overrides).map_err(|e| ConfigError::Json(e.to_string()))?;
        let serde_json::Value::Object(overrides) = overrides else {
            return Err(ConfigError::Json(format!(
                "the settings must be a JSON object, got {overrides}"
            )));
        };
        let given_database = overrides
            .iter()
            .any(|(key, value)| key == "database" && !value.is_null());
        let mut lenient = vars.clone();
        if given_database {
            for name in ["POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"] {
                lenient.remove(name);
            }
        }
        let base = Config::read_vars(&lenient)?;
        let mut merged = serde_json::to_value(&base).map_err(|e| ConfigError::Json(e.to_string()))?;
        merge_json(&mut merged, serde_json::Value::Object(overrides.clone()));
        Config::from_json(&merged.to_string()).map_err(|e| match e {
            ConfigError::InvalidField { field, reason } => match env_name_of(field) {
                Some(variable) if lookup(vars, variable).is_some() && !overrides.contains_key(field) => {
                    ConfigError::InvalidEnv {
                        variable: variable.to_string(),
                        value: vars.get(variable).cloned().unwrap_or_default(),
                        expected: expected_of(field),
                    }
                }
                _ => ConfigError::InvalidField { field, reason },
            },
            other => other,
        })
    }

    /// Every recognised variable of `vars` parsed into the defaults.
    fn read_vars(vars: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let get = |name: &str| lookup(vars, name);

        if let Some(v) = get("TRAINING_UPDATE_THRESHOLD") {
            c.update_threshold = parse_env("TRAINING_UPDATE_THRESHOLD", v, "a positive integer")?;
        }
        if let Some(v) = get("TRAINING_MAX_BUFFER_SIZE") {
            c.max_buffer_size = parse_env("TRAINING_MAX_BUFFER_SIZE", v, "a positive integer")?;
        }
        if let Some(v) = get("TRAINING_PERFORMANCE_WINDOW") {
            c.performance_window = parse_env("TRAINING_PERFORMANCE_WINDOW", v, "a positive integer")?;
        }
        if let Some(v) = get("TRAINING_ROLLBACK_THRESHOLD") {
            c.rollback_threshold = parse_env("TRAINING_ROLLBACK_THRESHOLD", v, "a number in 0..=1")?;
        }
        if let Some(v) = get("TRAINING_CHECK_INTERVAL_SECS") {
            let secs: f64 = parse_env("TRAINING_CHECK_INTERVAL_SECS", v, "a positive number of seconds")?;
            if !(secs.is_finite() && secs > 0.0) {
                return Err(invalid_env(
                    "TRAINING_CHECK_INTERVAL_SECS",
                    v,
                    "a positive number of seconds",
                ));
            }
            c.check_interval_ms = (secs * 1000.0).round().max(1.0) as u64;
        }
        if let Some(v) = get("TRAINING_HELD_OUT_FRACTION") {
            c.held_out_fraction = parse_env("TRAINING_HELD_OUT_FRACTION", v, "a number in 0..1")?;
        }
        if let Some(v) = get("TRAINING_MAX_CONCURRENT_UPDATES") {
            c.max_concurrent_updates = parse_env("TRAINING_MAX_CONCURRENT_UPDATES", v, "a positive integer")?;
        }
        if let Some(v) = get("TRAINING_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("TRAINING_CHECKPOINTS_KEPT") {
            c.checkpoints_kept = parse_env("TRAINING_CHECKPOINTS_KEPT", v, "a number of checkpoints (0 for none)")?;
        }
        if let Some(v) = get("TRAINING_CHECKPOINT_FULL_EVERY") {
            c.checkpoint_full_every = parse_env(
                "TRAINING_CHECKPOINT_FULL_EVERY",
                v,
                "a number of versions (1 for full checkpoints only)",
            )?;
        }
        if let Some(v) = get("TRAINING_MINILM_DIR") {
            c.minilm_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("TRAINING_MODEL_KINDS") {
            c.model_kinds.extend(model_kinds_from(v)?);
        }
        if let Some(v) = get("TRAINING_DEVICE") {
            c.device = device_from(v)?;
        }
        c.database = database_from_vars(vars)?;
        if let Some(v) = get("TRAINING_CLUSTER_INSTANCE") {
            c.cluster = Some(cluster_from(
                v,
                get("TRAINING_CLUSTER_CHECKPOINT_DIR"),
                get("TRAINING_CLUSTER_POLL_MS"),
            )?);
        }
        c.model_paths.extend(model_paths_from(vars));
        Ok(c)
    }
}

/// `TRAINING_MODEL_KINDS`: `agent/task=kind` pairs separated by commas.
fn model_kinds_from(v: &str) -> Result<Vec<(String, crate::models::ModelKind)>, ConfigError> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let parsed = entry.split_once('=').and_then(|(key, kind)| {
                serde_json::from_value::<crate::models::ModelKind>(serde_json::Value::String(kind.trim().into()))
                    .ok()
                    .map(|kind| (key.trim().to_string(), kind))
            });
            parsed.ok_or_else(|| {
                invalid_env(
                    "TRAINING_MODEL_KINDS",
                    v,
                    "agent/task=kind pairs separated by commas (kinds: text_classifier, text_regressor, token_tagger, minilm_head, torchscript)",
                )
            })
        })
        .collect()
}

/// `TRAINING_DEVICE`.
fn device_from(v: &str) -> Result<DeviceChoice, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
        _ => Err(invalid_env("TRAINING_DEVICE", v, "one of auto, cpu, cuda")),
    }
}

/// `TRAINING_CLUSTER_INSTANCE` with its checkpoint folder and poll interval.
fn cluster_from(instance: &str, dir: Option<&str>, poll_ms: Option<&str>) -> Result<ClusterConfig, ConfigError> {
    let mut cluster = ClusterConfig {
        instance_id: instance.to_string(),
        ..ClusterConfig::default()
    };
    if let Some(dir) = dir {
        cluster.shared_checkpoint_dir = Some(PathBuf::from(dir));
    }
    if let Some(ms) = poll_ms {
        cluster.poll_interval_ms = parse_env("TRAINING_CLUSTER_POLL_MS", ms, "a positive number of milliseconds")?;
    }
    Ok(cluster)
}

/// Every `<AGENT>_MODEL_PATH` with a value, by the agent's lower-cased name.
fn model_paths_from(vars: &BTreeMap<String, String>) -> Vec<(String, PathBuf)> {
    vars.iter()
        .filter_map(|(name, value)| {
            let agent = name.strip_suffix("_MODEL_PATH")?;
            (!agent.is_empty() && !value.trim().is_empty())
                .then(|| (agent.to_ascii_lowercase(), PathBuf::from(value.trim())))
        })
        .collect()
}

fn parse_env<T: std::str::FromStr>(variable: &str, value: &str, expected: &'static str) -> Result<T, ConfigError> {
    // Rust reads "nan" and "inf" as numbers; no setting is one, and JSON
    // would carry them as null.
    let lower = value.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(invalid_env(variable, value, expected));
    }
    value.parse().map_err(|_| invalid_env(variable, value, expected))
}

fn invalid_env(variable: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidEnv {
        variable: variable.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn env_name_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "update_threshold" => "TRAINING_UPDATE_THRESHOLD",
        "max_buffer_size" => "TRAINING_MAX_BUFFER_SIZE",
        "performance_window" => "TRAINING_PERFORMANCE_WINDOW",
        "rollback_threshold" => "TRAINING_ROLLBACK_THRESHOLD",
        "held_out_fraction" => "TRAINING_HELD_OUT_FRACTION",
        "max_concurrent_updates" => "TRAINING_MAX_CONCURRENT_UPDATES",
        "checkpoint_full_every" => "TRAINING_CHECKPOINT_FULL_EVERY",
        _ => return None,
    })
}

fn expected_of(field: &str) -> &'static str {
    match field {
        "update_threshold" => "a positive integer not above TRAINING_MAX_BUFFER_SIZE",
        "max_buffer_size" => "a positive integer not below TRAINING_UPDATE_THRESHOLD",
        "performance_window" | "max_concurrent_updates" | "checkpoint_full_every" => "a positive integer",
        "rollback_threshold" => "a number in 0..=1",
        "held_out_fraction" => "a number in 0..1",
        _ => "a valid value",
    }
}

/// A variable's trimmed value; empty counts as unset.
fn lookup<'a>(vars: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn database_from_vars(vars: &BTreeMap<String, String>) -> Result<Option<DatabaseConfig>, ConfigError> {
    let get = |name: &str| lookup(vars, name);
    if let Some(url) = get("DATABASE_URL") {
        return Ok(Some(DatabaseConfig {
            url: url.to_string(),
            pool_size: default_pool_size(),
        }));
    }
    let port: u16 = match get("POSTGRES_PORT") {
        Some(v) => parse_env("POSTGRES_PORT", v, "a TCP port number")?,
        None => 5432,
    };
    let Some(host) = get("POSTGRES_HOST") else {
        // The others alone would be ignored and the examples stored in a
        // local SQLite file, where nobody looks for them: said, not guessed.
        let others = ["POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"];
        return match others.into_iter().find(|name| get(name).is_some()) {
            Some(name) => Err(ConfigError::InvalidEnv {
                variable: "POSTGRES_HOST".into(),
                value: String::new(),
                expected: match name {
                    "POSTGRES_PORT" => "a host name, since POSTGRES_PORT is set (or unset the POSTGRES_* variables)",
                    "POSTGRES_DB" => "a host name, since POSTGRES_DB is set (or unset the POSTGRES_* variables)",
                    "POSTGRES_USER" => "a host name, since POSTGRES_USER is set (or unset the POSTGRES_* variables)",
                    _ => "a host name, since POSTGRES_PASSWORD is set (or unset the POSTGRES_* variables)",
                },
            }),
            None => Ok(None),
        };
    };
    let mut parts = vec![format!("host={}", libpq_quote(host)), format!("port={port}")];
    if let Some(db) = get("POSTGRES_DB") {
        parts.push(format!("dbname={}", libpq_quote(db)));
    }
    if let Some(user) = get("POSTGRES_USER") {
        parts.push(format!("user={}", libpq_quote(user)));
    }
    if let Some(password) = get("POSTGRES_PASSWORD") {
        parts.push(format!("password={}", libpq_quote(password)));
    }
    Ok(Some(DatabaseConfig {
        url: parts.join(" "),
        pool_size: default_pool_size(),
    }))
}

/// Quotes a value for a libpq key=value connection string.
fn libpq_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `overrides` on top of `base`, nested objects merged field by field.
fn merge_json(base: &mut serde_json::Value, overrides: serde_json::Value) {
    match (base, overrides) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge_json(slot, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overrides) => *base = overrides,
    }
}
