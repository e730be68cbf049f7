//! Every knob of the library in one struct, with the original system's defaults,
//! read from the environment in exactly one place ([`Config::from_env`]).
//!
//! The defaults follow the original coordinator: update threshold 50, buffer of
//! 1000 examples per agent, performance window 100, rollback threshold 0.05 and a
//! background check every 60 s. Everything else is documented on its field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ewc::EwcConfig;
pub use crate::models::TextModelConfig;

/// A configuration value that is missing, malformed or out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable holds a value that cannot be parsed.
    #[error("environment variable {variable} has invalid value {value:?}: expected {expected}")]
    InvalidEnv {
        /// The variable's name.
        variable: String,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A field of the configuration is out of its valid range.
    #[error("configuration field {field} is invalid: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A JSON configuration could not be parsed.
    #[error("configuration JSON is invalid: {0}")]
    Json(String),
}

/// Where tensors live and models train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when a GPU is visible, otherwise the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA device; falls back to the CPU with a warning when none is visible.
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device this choice resolves to on this machine.
    pub fn resolve(self) -> tch::Device {
        match self {
            DeviceChoice::Cpu => tch::Device::Cpu,
            DeviceChoice::Auto => tch::Device::cuda_if_available(),
            DeviceChoice::Cuda => {
                if tch::Cuda::is_available() {
                    tch::Device::Cuda(0)
                } else {
                    tracing::warn!("device \"cuda\" requested but no CUDA device is visible; using the CPU");
                    tch::Device::Cpu
                }
            }
        }
    }
}

/// How to reach PostgreSQL. The URL may carry a password, so `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// A `postgresql://user:password@host:port/db` URL or a libpq key=value string.
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

fn default_pool_size() -> u32 {
    4
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Where and how the library persists what it receives (see [`crate::store`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Persist at all. Off, nothing is written or recovered (examples live in
    /// memory only); for throwaway experiments, not for production.
    pub enabled: bool,
    /// Most operations the writer sends to the database in one batch.
    pub batch_size: usize,
    /// Most operations held in memory while the database is unreachable;
    /// beyond it they go to the spool file.
    pub memory_backlog: usize,
    /// Longest wait between reconnection attempts, in milliseconds (the wait
    /// doubles from 50 ms up to this).
    pub retry_max_ms: u64,
    /// How long getting a PostgreSQL connection may take, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            batch_size: 1000,
            memory_backlog: 10_000,
            retry_max_ms: 2_000,
            connect_timeout_ms: 5_000,
        }
    }
}

/// Several instances sharing one PostgreSQL database (see [`crate::cluster`]).
/// Every instance that shares the database must run with a `ClusterConfig`:
/// ids then come from blocks the database hands out, training of an
/// (agent, task) is serialised by an advisory lock, and accepted versions are
/// published in `model_checkpoints` and announced with `NOTIFY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's name, unique among the instances running at once
    /// (1 to 40 characters: letters, digits, `_`, `-`, `.`). It is shown in
    /// the status and in PostgreSQL's `application_name`.
    pub instance_id: String,
    /// Where published checkpoints live: `None` puts their bytes in the
    /// database (works everywhere, costs the checkpoint's size per accepted
    /// update in the database); a folder every instance mounts (shared
    /// storage) keeps only the path in the database.
    pub shared_checkpoint_dir: Option<PathBuf>,
    /// How often, in milliseconds, an instance checks for a newer published
    /// version even without a notification, refreshes its heartbeat and the
    /// cluster part of the status. A lost notification delays a new version
    /// by at most this long.
    pub poll_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            instance_id: String::new(),
            shared_checkpoint_dir: None,
            poll_interval_ms: 2_000,
        }
    }
}

/// The whole configuration. Build it with `Config::default()` and struct update
/// syntax, from JSON (`serde`), or from the environment with [`Config::from_env`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Buffered examples of an agent that trigger an update (original: 50).
    pub update_threshold: usize,
    /// Most examples buffered per agent; the least valuable leave first (original: 1000).
    pub max_buffer_size: usize,
    /// Most recent held-out examples per (agent, task) used to judge an update (original: 100).
    pub performance_window: usize,
    /// Largest tolerated drop of the held-out metric; a larger one rolls the update back (original: 0.05).
    pub rollback_threshold: f64,
    /// Period of the background check, in milliseconds (original: 60 s).
    pub check_interval_ms: u64,
    /// At a background check, an agent whose oldest buffered example has waited
    /// this long is updated even below the threshold, so quiet agents still learn.
    pub stale_after_ms: u64,
    /// How an update is judged against the live model (see [`crate::judge`]):
    /// by default a paired test on the same held-out examples; with
    /// `test: "threshold"` the original's rule on `rollback_threshold`.
    pub acceptance: crate::judge::AcceptanceConfig,
    /// The memory of learned examples mixed into every update (see [`crate::replay`]).
    pub replay: crate::replay::ReplayConfig,
    /// Correction priority from which an example triggers an immediate update (original: 2).
    pub immediate_update_priority: u8,
    /// Share of labelled, non-correction examples that judge updates before
    /// they are trained on (while they are in their task's window).
    pub held_out_fraction: f64,
    /// Most examples one update trains on, the most valuable first.
    pub max_examples_per_update: usize,
    /// Most agents updating at the same time (worker threads).
    pub max_concurrent_updates: usize,
    /// Longest accepted input text, in bytes; also the longest target (a
    /// label, the tags together, a JSON target as text).
    pub max_input_bytes: usize,
    /// Longest accepted agent or task name, in bytes.
    pub max_name_bytes: usize,
    /// A prediction whose uncertainty (1 − confidence) exceeds this becomes an example (original: 0.6).
    pub feedback_uncertainty_threshold: f64,
    /// A prediction whose importance exceeds this becomes an example (original: 0.7).
    pub feedback_importance_threshold: f64,
    /// Most predictions without a known answer kept per (agent, task) while they wait for a label.
    pub max_pending_review: usize,
    /// A prediction served by `predict` with a confidence below this goes to
    /// the feedback path by itself (original's integration example: 0.7).
    pub predict_feedback_threshold: f64,
    /// How the review queue ranks what waits for a label.
    pub query_strategy: crate::review::QueryStrategy,
    /// Items handed out together overlap in at most this share of their
    /// words (Jaccard); `None` turns the diversity rule off.
    pub review_diversity: Option<f64>,
    /// Where tensors live.
    pub device: DeviceChoice,
    /// PostgreSQL; `None` means the embedded SQLite store in `data_dir`.
    pub database: Option<DatabaseConfig>,
    /// How examples, updates and checkpoints are persisted.
    pub store: StoreConfig,
    /// Per-agent model folders (`SCOUT_MODEL_PATH` and the like), by agent
    /// name; an agent without one keeps its checkpoints in `data_dir/models/<agent>`.
    pub model_paths: BTreeMap<String, PathBuf>,
    /// The library's folder: checkpoints, the embedded store, the outage spool.
    pub data_dir: PathBuf,
    /// Checkpoints kept per (agent, task): the newest ones. 0 writes none.
    pub checkpoints_kept: usize,
    /// A full checkpoint at least every this many versions; the versions
    /// between are deltas of the one before where an update changed only
    /// some rows ([`crate::checkpoint`]). 1 writes every version in full.
    /// 10: on the news stream a version then costs 2.4 MB on average
    /// instead of 8.9 MB (a packed delta 0.94 MB); a restart after a clean
    /// shutdown reads one full file (the serving version is written in full
    /// then), one after a crash a full file and at most 9 deltas (61 ms
    /// instead of 15 ms; `cargo bench --bench checkpoint`).
    pub checkpoint_full_every: usize,
    /// The built-in text models' hyper-parameters.
    pub text_model: TextModelConfig,
    /// Elastic Weight Consolidation of every model.
    pub ewc: EwcConfig,
    /// Per-model EWC settings that replace `ewc`, keyed by `"agent/task"`.
    pub ewc_per_task: BTreeMap<String, EwcConfig>,
    /// Users' TorchScript models, keyed by `"agent/task"`: such a task trains
    /// the module instead of a built-in model (see
    /// [`crate::models::TorchScriptSpec`] for the contract).
    pub torchscript: BTreeMap<String, crate::models::TorchScriptSpec>,
    /// The model kind of an (agent, task), keyed `"agent/task"`, where the
    /// target kind's default (labels: `text_classifier`, scores:
    /// `text_regressor`, tags: `token_tagger`) is not wanted, for example
    /// `minilm_head`. A configured TorchScript model wins over both.
    pub model_kinds: BTreeMap<String, crate::models::ModelKind>,
    /// The folder of the pretrained MiniLM encoder (`data/minilm` after
    /// `make data`); needed by `minilm_head` models.
    pub minilm_dir: Option<PathBuf>,
    /// Several instances sharing the PostgreSQL database; `None` for one
    /// instance (the default). Needs `database` and checkpoints.
    pub cluster: Option<ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            update_threshold: 50,
            max_buffer_size: 1000,
            performance_window: 100,
            rollback_threshold: 0.05,
            check_interval_ms: 60_000,
            stale_after_ms: 600_000,
            acceptance: crate::judge::AcceptanceConfig::default(),
            replay: crate::replay::ReplayConfig::default(),
            immediate_update_priority: 2,
            held_out_fraction: 0.2,
            max_examples_per_update: 256,
            max_concurrent_updates: 2,
            max_input_bytes: 1 << 20,
            max_name_bytes: 128,
            feedback_uncertainty_threshold: 0.6,
            feedback_importance_threshold: 0.7,
            max_pending_review: 1000,
            predict_feedback_threshold: 0.7,
            query_strategy: crate::review::QueryStrategy::LeastConfidence,
            review_diversity: Some(0.8),
            device: DeviceChoice::Auto,
            database: None,
            store: StoreConfig::default(),
            model_paths: BTreeMap::new(),
            data_dir: PathBuf::from("onthefly-data"),
            checkpoints_kept: 5,
            checkpoint_full_every: 10,
            text_model: TextModelConfig::default(),
            ewc: EwcConfig::default(),
            ewc_per_task: BTreeMap::new(),
            torchscript: BTreeMap::new(),
            model_kinds: BTreeMap::new(),
            minilm_dir: None,
            cluster: None,
        }
    }
}

impl Config {
    /// The folder of an agent's checkpoints.
    pub fn model_dir(&self, agent: &str) -> PathBuf {
        self.model_paths
            .get(agent)
            .cloned()
            .unwrap_or_else(|| self.data_dir.join("models").join(agent))
    }

    /// The EWC settings of one (agent, task).
    pub fn ewc_for(&self, agent: &str, task: &str) -> &EwcConfig {
        self.ewc_per_task.get(&format!("{agent}/{task}")).unwrap_or(&self.ewc)
    }

    /// The background check's period.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    /// How long an example may wait before a background check trains it anyway.
    pub fn stale_after(&self) -> Duration {
        Duration::from_millis(self.stale_after_ms)
    }

    /// Parses a JSON object; missing fields keep their defaults, unknown fields are an error.
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        // serde reads a struct from an array too (its fields in order), so
        // `[]` was a valid configuration of defaults; no field is a list.
        if !value.is_object() {
            return Err(ConfigError::Json(format!(
                "the configuration must be a JSON object, got {value}"
            )));
        }
        reject_lists(&value, "configuration")?;
        let config: Config = serde_json::from_value(value).map_err(|e| ConfigError::Json(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

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
        let mut c = Config::default();
        let get = |name: &str| lookup(&vars, name);

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
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry.split_once('=').and_then(|(key, kind)| {
                    serde_json::from_value::<crate::models::ModelKind>(serde_json::Value::String(kind.trim().into()))
                        .ok()
                        .map(|kind| (key.trim().to_string(), kind))
                });
                let Some((key, kind)) = parsed else {
                    return Err(invalid_env(
                        "TRAINING_MODEL_KINDS",
                        v,
                        "agent/task=kind pairs separated by commas (kinds: text_classifier, text_regressor, token_tagger, minilm_head, torchscript)",
                    ));
                };
                c.model_kinds.insert(key, kind);
            }
        }
        if let Some(v) = get("TRAINING_DEVICE") {
            c.device = match v.to_ascii_lowercase().as_str() {
                "auto" => DeviceChoice::Auto,
                "cpu" => DeviceChoice::Cpu,
                "cuda" | "gpu" => DeviceChoice::Cuda,
                _ => return Err(invalid_env("TRAINING_DEVICE", v, "one of auto, cpu, cuda")),
            };
        }

        c.database = database_from_vars(&vars)?;

        if let Some(v) = get("TRAINING_CLUSTER_INSTANCE") {
            let mut cluster = ClusterConfig {
                instance_id: v.to_string(),
                ..ClusterConfig::default()
            };
            if let Some(dir) = get("TRAINING_CLUSTER_CHECKPOINT_DIR") {
                cluster.shared_checkpoint_dir = Some(PathBuf::from(dir));
            }
            if let Some(ms) = get("TRAINING_CLUSTER_POLL_MS") {
                cluster.poll_interval_ms =
                    parse_env("TRAINING_CLUSTER_POLL_MS", ms, "a positive number of milliseconds")?;
            }
            c.cluster = Some(cluster);
        }

        for (name, value) in &vars {
            if let Some(agent) = name.strip_suffix("_MODEL_PATH") {
                if agent.is_empty() || value.trim().is_empty() {
                    continue;
                }
                c.model_paths
                    .insert(agent.to_ascii_lowercase(), PathBuf::from(value.trim()));
            }
        }

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

    /// Checks every field's range; the error names the field and the valid range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = |field: &'static str, reason: String| Err(ConfigError::InvalidField { field, reason });
        if self.update_threshold == 0 {
            return field("update_threshold", "must be at least 1, got 0".into());
        }
        if self.max_buffer_size == 0 {
            return field("max_buffer_size", "must be at least 1, got 0".into());
        }
        if self.checkpoint_full_every == 0 {
            return field(
                "checkpoint_full_every",
                "must be at least 1 (every version full), got 0".into(),
            );
        }
        if self.update_threshold > self.max_buffer_size {
            return field(
                "update_threshold",
                format!(
                    "must not exceed max_buffer_size ({}), got {}: the buffer could never reach it",
                    self.max_buffer_size, self.update_threshold
                ),
            );
        }
        if self.performance_window == 0 {
            return field("performance_window", "must be at least 1, got 0".into());
        }
        if !(self.rollback_threshold.is_finite() && (0.0..=1.0).contains(&self.rollback_threshold)) {
            return field(
                "rollback_threshold",
                format!("must be in 0..=1, got {}", self.rollback_threshold),
            );
        }
        let acceptance = &self.acceptance;
        if !(acceptance.confidence.is_finite() && acceptance.confidence > 0.5 && acceptance.confidence < 1.0) {
            return field(
                "acceptance",
                format!("confidence must be in (0.5, 1), got {}", acceptance.confidence),
            );
        }
        if !(acceptance.margin.is_finite() && acceptance.margin >= 0.0) {
            return field(
                "acceptance",
                format!("margin must be a number ≥ 0, got {}", acceptance.margin),
            );
        }
        if !(acceptance.score_margin.is_finite() && acceptance.score_margin >= 0.0) {
            return field(
                "acceptance",
                format!("score_margin must be a number ≥ 0, got {}", acceptance.score_margin),
            );
        }
        if !(self.replay.ratio.is_finite() && (0.0..=16.0).contains(&self.replay.ratio)) {
            return field("replay", format!("ratio must be in 0..=16, got {}", self.replay.ratio));
        }
        if self.check_interval_ms == 0 {
            return field("check_interval_ms", "must be at least 1 ms, got 0".into());
        }
        if self.immediate_update_priority > 3 {
            return field(
                "immediate_update_priority",
                format!("must be in 0..=3, got {}", self.immediate_update_priority),
            );
        }
        if !(self.held_out_fraction.is_finite() && (0.0..1.0).contains(&self.held_out_fraction)) {
            return field(
                "held_out_fraction",
                format!("must be in 0..1, got {}", self.held_out_fraction),
            );
        }
        if self.max_examples_per_update == 0 {
            return field("max_examples_per_update", "must be at least 1, got 0".into());
        }
        if self.max_concurrent_updates == 0 {
            return field("max_concurrent_updates", "must be at least 1, got 0".into());
        }
        if self.max_input_bytes == 0 {
            return field("max_input_bytes", "must be at least 1, got 0".into());
        }
        if self.max_name_bytes == 0 {
            return field("max_name_bytes", "must be at least 1, got 0".into());
        }
        for (name, value) in [
            ("feedback_uncertainty_threshold", self.feedback_uncertainty_threshold),
            ("feedback_importance_threshold", self.feedback_importance_threshold),
            ("predict_feedback_threshold", self.predict_feedback_threshold),
            ("review_diversity", self.review_diversity.unwrap_or(0.0)),
        ] {
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return field(name, format!("must be in 0..=1, got {value}"));
            }
        }
        if let Some(db) = &self.database {
            if db.url.trim().is_empty() {
                return field("database", "url must not be empty".into());
            }
            if db.pool_size == 0 {
                return field("database", "pool_size must be at least 1, got 0".into());
            }
        }
        for (key, kind) in &self.model_kinds {
            use crate::models::ModelKind;
            match kind {
                ModelKind::MiniLmHead if self.minilm_dir.is_none() => {
                    return field("model_kinds", format!("{key} is minilm_head but minilm_dir is not set"))
                }
                ModelKind::TorchScript if !self.torchscript.contains_key(key) => {
                    return field(
                        "model_kinds",
                        format!("{key} is torchscript but torchscript has no entry for it"),
                    )
                }
                ModelKind::Custom => {
                    return field(
                        "model_kinds",
                        format!("{key}: a custom model is installed with register_model, not configured"),
                    )
                }
                _ => {}
            }
            if key.split('/').count() != 2 {
                return field("model_kinds", format!("keys are \"agent/task\", got {key:?}"));
            }
        }
        if let Some(cluster) = &self.cluster {
            let id = &cluster.instance_id;
            let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            if id.is_empty() || id.len() > 40 || !id.chars().all(valid_char) {
                return field(
                    "cluster",
                    format!("instance_id must be 1 to 40 letters, digits, '_', '-' or '.', got {id:?}"),
                );
            }
            if self.database.is_none() || !self.store.enabled {
                return field(
                    "cluster",
                    "several instances share a PostgreSQL database: set database and keep the store enabled".into(),
                );
            }
            if self.checkpoints_kept == 0 {
                return field(
                    "cluster",
                    "instances share models through checkpoints: checkpoints_kept must be at least 1".into(),
                );
            }
            if cluster.poll_interval_ms == 0 {
                return field("cluster", "poll_interval_ms must be at least 1, got 0".into());
            }
        }
        let store = &self.store;
        for (name, value) in [
            ("batch_size", store.batch_size as u64),
            ("memory_backlog", store.memory_backlog as u64),
            ("retry_max_ms", store.retry_max_ms),
            ("connect_timeout_ms", store.connect_timeout_ms),
        ] {
            if value == 0 {
                return field("store", format!("{name} must be at least 1, got 0"));
            }
        }
        for (key, ewc) in std::iter::once((&"default".to_string(), &self.ewc)).chain(&self.ewc_per_task) {
            if !(ewc.lambda.is_finite() && ewc.lambda >= 0.0) {
                return field(
                    "ewc",
                    format!("lambda of {key} must be a finite number ≥ 0, got {}", ewc.lambda),
                );
            }
            if !(ewc.gamma.is_finite() && (0.0..=1.0).contains(&ewc.gamma)) {
                return field("ewc", format!("gamma of {key} must be in 0..=1, got {}", ewc.gamma));
            }
            if ewc.fisher_samples == 0 {
                return field("ewc", format!("fisher_samples of {key} must be at least 1, got 0"));
            }
        }
        let t = &self.text_model;
        if t.hash_buckets < 16 {
            return field(
                "text_model",
                format!("hash_buckets must be at least 16, got {}", t.hash_buckets),
            );
        }
        if t.hash_buckets.checked_mul(t.embedding_dim).is_none_or(|n| n > 1 << 30) {
            return field(
                "text_model",
                format!(
                    "hash_buckets × embedding_dim must be at most 2^30 weights, got {} × {}",
                    t.hash_buckets, t.embedding_dim
                ),
            );
        }
        for (name, rate) in [
            ("linear_learning_rate", t.linear_learning_rate),
            ("regressor_learning_rate", t.regressor_learning_rate),
            ("tagger_learning_rate", t.tagger_learning_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return field("text_model", format!("{name} must be a positive number, got {rate}"));
            }
        }
        if t.embedding_dim == 0 || t.max_tokens == 0 || t.minibatch_size == 0 || t.linear_minibatch_size == 0 {
            return field(
                "text_model",
                "embedding_dim, max_tokens, minibatch_size and linear_minibatch_size must be at least 1".into(),
            );
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return field(
                "text_model",
                format!("learning_rate must be positive, got {}", t.learning_rate),
            );
        }
        Ok(())
    }
}

fn parse_env<T: std::str::FromStr>(variable: &str, value: &str, expected: &'static str) -> Result<T, ConfigError> {
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
    let Some(host) = get("POSTGRES_HOST") else {
        return Ok(None);
    };
    let port: u16 = match get("POSTGRES_PORT") {
        Some(v) => parse_env("POSTGRES_PORT", v, "a TCP port number")?,
        None => 5432,
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

/// No field of the configuration is a list: a JSON array anywhere is a
/// struct given as a list of its fields (which serde would accept), named
/// by its path.
fn reject_lists(value: &serde_json::Value, path: &str) -> Result<(), ConfigError> {
    match value {
        serde_json::Value::Array(_) => Err(ConfigError::Json(format!("{path} must be a JSON object, not an array"))),
        serde_json::Value::Object(fields) => fields
            .iter()
            .try_for_each(|(name, field)| reject_lists(field, &format!("{path}.{name}"))),
        _ => Ok(()),
    }
}
