//! The status, the performance history and the Prometheus metrics.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Coordinator;
use crate::agent::AgentState;
use crate::base::{ModelPerformance, TargetKind};
use crate::live::LiveModel;
use crate::models::ModelKind;
use crate::replay::ReplayMemory;
use crate::status::{AgentStatus, ModelStatus, TrainingStatus};
use crate::store::StoreWriter;

impl Coordinator {
    /// The training system in Prometheus' text exposition format: examples
    /// per agent and state, buffers, updates by outcome, model versions,
    /// review queues, update and prediction latency histograms per agent and
    /// task, and the store's backlog, spool and pool (see
    /// docs/operations.md, "Metrics", for the names). Serve it at `/metrics`
    /// (`examples/metrics_server.rs`).
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.get_training_status(), &self.shared.latencies)
    }

    /// The training status (the original's `get_training_status`, extended).
    pub fn get_training_status(&self) -> TrainingStatus {
        let mut agents = BTreeMap::new();
        let mut buffer_sizes = BTreeMap::new();
        for agent in self.shared.agents_snapshot() {
            let status = agent_status(&agent);
            buffer_sizes.insert(agent.name.clone(), status.buffer_size);
            agents.insert(agent.name.clone(), status);
        }
        let history = self.shared.history.lock();
        let recent = history.iter().skip(history.len().saturating_sub(5)).cloned().collect();
        TrainingStatus {
            is_training: agents.values().any(|a| a.is_training),
            total_examples: buffer_sizes.values().sum(),
            buffer_sizes,
            performance_history_size: self.shared.history_total.load(Ordering::Acquire) as usize,
            recent_performance: recent,
            update_threshold: self.shared.config.update_threshold,
            rollback_threshold: self.shared.config.rollback_threshold,
            device: device_name(self.shared.device),
            updates_in_flight: *self.shared.in_flight.lock(),
            agents,
            store: self.shared.store.as_ref().map(StoreWriter::status),
            cluster: self.shared.cluster.as_ref().map(|c| c.status()),
        }
    }

    /// Every update recorded since start (the most recent 10,000), oldest first.
    pub fn performance_history(&self) -> Vec<ModelPerformance> {
        self.shared.history.lock().iter().cloned().collect()
    }
}

fn agent_status(agent: &AgentState) -> AgentStatus {
    let (buffer_size, buffer_capacity, stats) = {
        // The buffer and its counters are read in one critical section.
        let buffer = agent.buffer.lock();
        (buffer.len(), buffer.capacity(), agent.stats.lock().clone())
    };
    // Copy what is needed under the task lock, then lock each model without
    // holding it, so a long prediction never blocks ingest.
    type TaskParts = (
        String,
        TargetKind,
        usize,
        Option<Arc<LiveModel>>,
        Arc<Mutex<ReplayMemory>>,
    );
    let tasks: Vec<TaskParts> = agent
        .tasks
        .lock()
        .iter()
        .map(|(task, state)| {
            (
                task.clone(),
                state.target_kind,
                state.held_out.len(),
                state.model.clone(),
                Arc::clone(&state.replay),
            )
        })
        .collect();
    let models = tasks
        .into_iter()
        .map(|(task, target_kind, held_out_window, live, replay)| {
            let (version, labels, kind) = match &live {
                Some(live) => {
                    let model = live.serving();
                    let labels = catch_unwind(AssertUnwindSafe(|| model.labels())).unwrap_or_default();
                    (live.version(), labels, Some(live.kind))
                }
                None => (0, Vec::new(), ModelKind::for_target(target_kind)),
            };
            let status = ModelStatus {
                target_kind: target_kind.to_string(),
                model_kind: kind.map(|k| k.name().to_string()),
                version,
                labels,
                held_out_window,
                replay_examples: replay.lock().len(),
            };
            (task, status)
        })
        .collect();
    let reviews: BTreeMap<String, crate::review::ReviewStatus> = agent
        .reviews
        .lock()
        .iter()
        .map(|(task, queue)| (task.clone(), queue.status()))
        .collect();
    AgentStatus {
        buffer_size,
        buffer_capacity,
        is_training: agent.updating.load(Ordering::Acquire),
        pending_review: reviews.values().map(|r| r.queued).sum(),
        reviews,
        models,
        ..stats
    }
}

fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}
