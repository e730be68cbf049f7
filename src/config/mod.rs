//! Every knob of the library in one struct, with the original system's defaults,
//! read from the environment in exactly one place ([`Config::from_env`]).
//!
//! The defaults follow the original coordinator: update threshold 50, buffer of
//! 1000 examples per agent, performance window 100, rollback threshold 0.05 and a
//! background check every 60 s. Everything else is documented on its field.

mod env;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::cluster::ClusterConfig;
pub use crate::ewc::EwcConfig;
pub use crate::judge::AcceptanceConfig;
pub use crate::models::{ModelKind, TextModelConfig, TorchScriptSpec};
pub use crate::replay::ReplayConfig;
pub use crate::review::QueryStrategy;
pub use crate::store::{DatabaseConfig, RetentionConfig, StoreConfig};

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
    /// The first CUDA device; refused at start when none is visible (a
    /// model meant for a GPU would otherwise train, slowly, on the CPU).
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device this choice resolves to on this machine; `cuda`
    /// without a visible CUDA device is an error naming the field, not a
    /// quiet fall back to the CPU (`auto` is the choice that falls back).
    pub fn resolve(self) -> Result<tch::Device, ConfigError> {
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => Err(ConfigError::InvalidField {
                field: "device",
                reason: "\"cuda\" asks for a CUDA device and libtorch sees none on this machine; \
                         \"auto\" uses one when present and the CPU otherwise"
                    .into(),
            }),
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
    /// Most updates running at the same time, and the worker threads; a
    /// thread waiting in `wait_for_idle` runs a queued update itself only
    /// within this bound.
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
    /// This configuration with the folders it writes to (`data_dir`,
    /// `model_paths`) resolved against the working directory now. A
    /// coordinator resolves them once, when it opens: resolved at each use,
    /// a program that changed directory later wrote its checkpoints into
    /// another folder than its store, and a restart found none.
    pub fn with_absolute_paths(self) -> std::io::Result<Config> {
        let data_dir = std::path::absolute(&self.data_dir)?;
        let model_paths = self
            .model_paths
            .into_iter()
            .map(|(agent, path)| Ok((agent, std::path::absolute(path)?)))
            .collect::<std::io::Result<_>>()?;
        // The model files too: read at a task's first update, which may come
        // after the program changed directory.
        let torchscript = self
            .torchscript
            .into_iter()
            .map(|(key, spec)| {
                let path = std::path::absolute(&spec.path)?;
                Ok((key, TorchScriptSpec { path, ..spec }))
            })
            .collect::<std::io::Result<_>>()?;
        let minilm_dir = self.minilm_dir.map(std::path::absolute).transpose()?;
        Ok(Config {
            data_dir,
            model_paths,
            torchscript,
            minilm_dir,
            ..self
        })
    }

    /// The model files the configuration names, checked where they are:
    /// each TorchScript module's file, and the MiniLM folder's three files
    /// when a task is configured to use it. Found missing at a task's first
    /// update, its examples waited in the buffer with only `last_error`
    /// saying why.
    pub fn check_model_files(&self) -> Result<(), ConfigError> {
        for (key, spec) in &self.torchscript {
            if !spec.path.is_file() {
                return Err(ConfigError::InvalidField {
                    field: "torchscript",
                    reason: format!("{key}: no TorchScript module at {}", spec.path.display()),
                });
            }
        }
        let uses_minilm = self.model_kinds.values().any(|k| *k == ModelKind::MiniLmHead);
        if let (true, Some(dir)) = (uses_minilm, &self.minilm_dir) {
            for file in ["config.json", "tokenizer.json", "model.safetensors"] {
                if !dir.join(file).is_file() {
                    return Err(ConfigError::InvalidField {
                        field: "minilm_dir",
                        reason: format!(
                            "{} has no {file} (all-MiniLM-L6-v2's files, as `make data` fetches them)",
                            dir.display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

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
}

/// One field of the configuration is a list: a TorchScript module's labels.
/// A JSON array anywhere else is a struct given as a list of its fields
/// (which serde would accept), named by its path.
fn reject_lists(value: &serde_json::Value, path: &str) -> Result<(), ConfigError> {
    let labels_of_a_module = path
        .strip_prefix("configuration.torchscript.")
        .is_some_and(|rest| rest.ends_with(".labels"));
    match value {
        serde_json::Value::Array(_) if labels_of_a_module => Ok(()),
        serde_json::Value::Array(_) => Err(ConfigError::Json(format!("{path} must be a JSON object, not an array"))),
        serde_json::Value::Object(fields) => fields
            .iter()
            .try_for_each(|(name, field)| reject_lists(field, &format!("{path}.{name}"))),
        _ => Ok(()),
    }
}
