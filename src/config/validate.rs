//! Every value of a configuration checked against its range, with a
//! message that names the field and what it expects.

use super::{Config, ConfigError};

impl Config {
    /// Checks every field's range; the error names the field and the valid range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_updates_and_limits()?;
        self.check_models_and_storage()?;
        self.check_learning()
    }

    /// The update cadence, the judging, the buffer and the input limits.
    fn check_updates_and_limits(&self) -> Result<(), ConfigError> {
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
        // 0 makes every example urgent, and urgent examples are never held
        // out: no update would be judged.
        if !(1..=3).contains(&self.immediate_update_priority) {
            return field(
                "immediate_update_priority",
                format!(
                    "must be in 1..=3 (0 would make every example urgent, so none would be held out to judge updates), got {}",
                    self.immediate_update_priority
                ),
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
        Ok(())
    }

    /// The database, the model kinds per task, several instances, the store.
    fn check_models_and_storage(&self) -> Result<(), ConfigError> {
        let field = |field: &'static str, reason: String| Err(ConfigError::InvalidField { field, reason });
        if let Some(db) = &self.database {
            if db.url.trim().is_empty() {
                return field("database", "url must not be empty".into());
            }
            if db.pool_size == 0 {
                return field("database", "pool_size must be at least 1, got 0".into());
            }
        }
        // A key not of the form "agent/task" would name no task and be
        // ignored for good.
        let task_keys = self.model_kinds.keys().map(|k| ("model_kinds", k));
        let task_keys = task_keys
            .chain(self.torchscript.keys().map(|k| ("torchscript", k)))
            .chain(self.ewc_per_task.keys().map(|k| ("ewc_per_task", k)));
        for (name, key) in task_keys {
            let parts: Vec<&str> = key.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return field(name, format!("keys are \"agent/task\", got {key:?}"));
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
            ("retention.interval_ms", store.retention.interval_ms),
        ] {
            if value == 0 {
                return field("store", format!("{name} must be at least 1, got 0"));
            }
        }
        if let Some(hours) = store.retention.max_age_hours {
            if !(hours.is_finite() && hours > 0.0) {
                return field(
                    "store",
                    format!("retention.max_age_hours must be a number of hours above 0 (or null to keep every age), got {hours}"),
                );
            }
        }
        Ok(())
    }

    /// EWC per task and the text models' hyper-parameters.
    fn check_learning(&self) -> Result<(), ConfigError> {
        let field = |field: &'static str, reason: String| Err(ConfigError::InvalidField { field, reason });
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
        // A table per class (and two copies of the model): 2^25 buckets of
        // nine classes are 1.2 GB already. `embedding_dim` is unused.
        if t.hash_buckets > 1 << 25 {
            return field(
                "text_model",
                format!("hash_buckets must be at most 2^25 (33,554,432), got {}", t.hash_buckets),
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
        if t.max_tokens == 0 || t.minibatch_size == 0 || t.linear_minibatch_size == 0 || t.full_step_ngrams == 0 {
            return field(
                "text_model",
                "max_tokens, minibatch_size, linear_minibatch_size and full_step_ngrams must be at \
                 least 1"
                    .into(),
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
