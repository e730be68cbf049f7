//! Managing the models of tasks: registering a caller's model or a fixed
//! evaluation set, rolling back to a version, reading weights and replay
//! memories, exporting a task's examples.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::validate::{check_input, check_name, check_target};
use super::Coordinator;
use crate::agent::task_of_kind;
use crate::base::kind_matches;
use crate::base::{now_millis, unix_millis, ExampleId, ModelPerformance, Priority, Target, TrainingExample};
use crate::base::{ModelError, ValidationError};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::live::LiveModel;
use crate::models::AgentModel;
use crate::store::{ExampleState, Split};

impl Coordinator {
    /// Installs a model the caller built for an (agent, task), instead of the
    /// built-in one its target kind would get. The task's target kind becomes
    /// the model's; examples of another kind are refused from then on.
    pub fn register_model(&self, agent_name: &str, task_type: &str, model: Box<dyn AgentModel>) -> Result<()> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        let agent = self.agent_or_create(agent_name);
        let mut tasks = agent.tasks.lock();
        let state = task_of_kind(
            &mut tasks,
            agent_name,
            task_type,
            model.target_kind(),
            limits.performance_window,
        )?;
        if state.model.is_some() {
            return Err(Error::ModelExists {
                agent: agent_name.to_string(),
                task: task_type.to_string(),
            });
        }
        let dir = limits.model_dir(agent_name).join(task_type);
        state.model = Some(Arc::new(LiveModel::new(model).numbered_after(&dir)));
        Ok(())
    }

    /// Registers a fixed evaluation set for an (agent, task): from now on its
    /// updates are judged on these examples instead of the window of recent
    /// held-out ones. The task's target kind is fixed by the first target if
    /// it has none yet.
    pub fn set_evaluation_set(&self, agent_name: &str, task_type: &str, examples: Vec<(String, Target)>) -> Result<()> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        let Some(kind) = examples.first().map(|(_, t)| t.kind()) else {
            return Err(ValidationError::EmptyInput.into());
        };
        for (input, target) in &examples {
            check_input(input, limits.max_input_bytes)?;
            check_target("expected_output", target, limits.max_input_bytes)?;
            target.validate("expected_output", input)?;
            kind_matches(agent_name, task_type, kind, target.kind())?;
        }
        self.check_task_kind(agent_name, task_type, kind)?;
        let set = examples
            .into_iter()
            .map(|(input, target)| -> Result<TrainingExample> {
                Ok(TrainingExample {
                    id: ExampleId(self.shared.next_id()?),
                    agent_name: agent_name.to_string(),
                    task_type: task_type.to_string(),
                    input_text: input,
                    expected_output: target,
                    uncertainty_score: 0.0,
                    importance_score: 0.0,
                    source_url: String::new(),
                    timestamp: now_millis(),
                    user_feedback: Some("registered evaluation set".into()),
                    correction_priority: Priority::Low,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let agent = self.agent_or_create(agent_name);
        let mut tasks = agent.tasks.lock();
        let state = task_of_kind(&mut tasks, agent_name, task_type, kind, limits.performance_window)?;
        state.fixed_eval = Some(set.into());
        Ok(())
    }

    /// Restores a kept checkpoint version of an (agent, task) as the live model
    /// (for a user-reported quality problem), with the EWC state saved with it.
    /// Recorded in the performance history. Waits for a running update of
    /// that task to finish first. Not available with several instances
    /// ([`crate::config::ClusterConfig`]): an error.
    pub fn rollback_model(&self, agent_name: &str, task_type: &str, version: u64) -> Result<()> {
        self.ensure_running()?;
        if self.shared.cluster.is_some() {
            // The group would bring this instance back to the newest published
            // version at its next check; restoring for everyone is not built yet.
            return Err(Error::Model(ModelError::NotSupported(
                "rollback_model with several instances sharing the database: the others would bring this \
                 instance back to the newest published version"
                    .into(),
            )));
        }
        let agent = self.agent(agent_name)?;
        let live = agent.live_model(task_type).ok_or_else(|| Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        })?;
        let dir = self.shared.config.model_dir(agent_name).join(task_type);
        let saved = checkpoint::load(&dir, version)?;
        // The same lock order as an update: EWC state, then the trainer's copy.
        let mut ewc = live.ewc.lock();
        let mut shadow = live.shadow.lock();
        let device = self.shared.device;
        let params = saved
            .params
            .iter()
            .map(|(name, t)| Ok((name.clone(), t.f_to_device(device)?)))
            .collect::<Result<BTreeMap<_, _>, ModelError>>()?;
        let saved_ewc = saved.ewc.to_device(device)?;
        // A user's model may panic in these calls: an error, not a panic, for the caller.
        let (restored, next_shadow) = catch_unwind(AssertUnwindSafe(|| -> Result<_> {
            let mut restored = live.serving().try_clone()?;
            restored.restore(&params, &saved.meta.model)?;
            let next_shadow = restored.try_clone()?;
            Ok((restored, next_shadow))
        }))
        .map_err(|panic| Error::Model(ModelError::Panicked(crate::grad::panic_message(&*panic))))??;
        // Restart serves this version too, until a newer one is accepted.
        checkpoint::set_current(&dir, version)?;
        *shadow = Some(crate::live::TrainerCopy::ready(next_shadow));
        *ewc = saved_ewc;
        let (old, was) = live.swap_serving(restored, version);
        drop(old);
        drop((shadow, ewc));
        tracing::warn!(agent = %agent_name, task = task_type, version, was, "model restored on request");
        self.shared.record_performance(ModelPerformance {
            update_id: self.shared.next_id()?,
            agent_name: agent_name.to_string(),
            task_type: task_type.to_string(),
            model_name: live.kind.name().to_string(),
            metric: String::new(),
            accuracy_before: None,
            accuracy_after: None,
            held_out_examples: 0,
            examples_trained: 0,
            train_loss: 0.0,
            update_timestamp_ms: unix_millis(SystemTime::now()),
            rollback_triggered: true,
            rollback_reason: Some(format!(
                "version {version} restored on request (was serving version {was})"
            )),
            model_version: version,
            duration_ms: 0,
        });
        Ok(())
    }

    /// A copy of the live weights of an (agent, task) by variable name, and the
    /// version they belong to (for inspection and export; the copy is taken
    /// under the model's lock).
    pub fn live_weights(&self, agent_name: &str, task_type: &str) -> Result<(u64, BTreeMap<String, tch::Tensor>)> {
        let agent = self.agent(agent_name)?;
        let live = agent.live_model(task_type).ok_or_else(|| Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        })?;
        let model = live.serving();
        let version = live.version();
        let weights = model
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| Ok((name, crate::ewc::deep_copy(&t)?)))
            .collect::<Result<BTreeMap<_, _>, ModelError>>()?;
        Ok((version, weights))
    }

    /// The ids of the examples in the replay memory of an (agent, task),
    /// ascending (for inspection: which learned examples its updates replay).
    pub fn replay_memory(&self, agent_name: &str, task_type: &str) -> Result<Vec<ExampleId>> {
        let agent = self.agent(agent_name)?;
        let memory = agent
            .tasks
            .lock()
            .get(task_type)
            .map(|state| Arc::clone(&state.replay))
            .ok_or_else(|| Error::NoModel {
                agent: agent_name.to_string(),
                task: task_type.to_string(),
            })?;
        let mut ids = memory.lock().ids();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Writes the examples of (agent, task) as a JSON-lines fine-tuning data
    /// set, oldest first, one object per line: `input`, `target` (plain JSON:
    /// a label is a string), `target_kind`, `priority`, `source`, `feedback`,
    /// `time_ms`, `split` (`train` / `held_out`), `state`. With a store the
    /// set is everything stored (after a flush, so nothing accepted is
    /// missing), the review queue's predictions too (`state`
    /// `pending_review`, `reviewed` or `unreviewed`: their `target` is the
    /// model's guess, not an answer; filter by `state` for a fine-tuning
    /// set); without one, what is in memory (buffered, held out, kept).
    /// The file is written whole or not at all (a temporary file renamed).
    /// Returns the number of examples written.
    pub fn export_dataset(&self, agent_name: &str, task_type: &str, path: &std::path::Path) -> Result<usize> {
        self.ensure_running()?;
        // A misspelt agent is an error with a store too, not an empty file.
        self.agent(agent_name)?;
        let rows: Vec<(TrainingExample, Split, ExampleState)> = match self.store() {
            Some(store) => {
                self.flush(Duration::from_secs(60))?;
                store
                    .examples(Some(agent_name))?
                    .into_iter()
                    .filter(|s| s.example.task_type == task_type)
                    .map(|s| (s.example, s.split, s.state))
                    .collect()
            }
            None => {
                let agent = self.agent(agent_name)?;
                let mut rows: Vec<_> = agent
                    .kept
                    .lock()
                    .iter()
                    .map(|e| (e.clone(), Split::Train, ExampleState::Kept))
                    .chain(
                        agent
                            .buffer
                            .lock()
                            .iter()
                            .map(|e| (e.clone(), Split::Train, ExampleState::Buffered)),
                    )
                    .chain(agent.tasks.lock().get(task_type).into_iter().flat_map(|t| {
                        t.held_out
                            .snapshot()
                            .iter()
                            .map(|e| (e.clone(), Split::HeldOut, ExampleState::Evaluation))
                            .collect::<Vec<_>>()
                    }))
                    .filter(|(e, _, _)| e.task_type == task_type)
                    .collect();
                rows.sort_by_key(|(e, _, _)| e.id);
                rows
            }
        };
        let mut text = String::new();
        for (e, split, state) in &rows {
            let line = serde_json::json!({
                "id": e.id.0,
                "input": e.input_text,
                // In the form the labels were given, as predictions
                // answer: `true` and `3`, not the strings "true" and "3".
                "target": self.target_json(agent_name, task_type, &e.expected_output),
                "target_kind": e.expected_output.kind(),
                "priority": u8::from(e.correction_priority),
                "source": e.source_url,
                "feedback": e.user_feedback,
                "time_ms": unix_millis(e.timestamp),
                "split": split.as_str(),
                "state": state.as_str(),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        // A temporary name of this call's own beside the file: replacing the
        // extension gave `scout.news` and `scout.sports` exported at once
        // the same one, and a call could return Ok over the other's rows.
        static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.{}-{call}.tmp", std::process::id()));
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                io(e)
            })?;
        Ok(rows.len())
    }
}
