//! The state shared by the coordinator's handle and its background threads:
//! the agents, the update queue and its in-flight count, and the performance
//! history. Both the coordinator (ingest side) and the trainer (update side)
//! use it; neither reaches into the other.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::agent::AgentState;
use crate::base::ModelPerformance;
use crate::config::Config;
use crate::store::{StoreOp, StoreWriter};

/// What runs after every update once the process-exit handler is in use
/// (set by `ffi/exit.rs`, which registers that handler with the C library:
/// the update path does not reach up into the C ABI's module).
static AFTER_UPDATE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Makes `hook` run after every update (the first hook set stays).
pub(crate) fn run_after_updates(hook: fn()) {
    let _ = AFTER_UPDATE.set(hook);
}

/// Runs the hook set by [`run_after_updates`], if any.
pub(crate) fn update_finished() {
    if let Some(hook) = AFTER_UPDATE.get() {
        hook();
    }
}

/// Performance records kept in memory (older ones live in the store).
pub(crate) const HISTORY_IN_MEMORY: usize = 10_000;

/// State shared by the coordinator's handle and its threads.
pub(crate) struct Shared {
    pub config: Config,
    pub device: tch::Device,
    pub agents: RwLock<BTreeMap<String, Arc<AgentState>>>,
    /// Ids of this instance when it is the only one (see [`crate::ids`]).
    pub ids: crate::ids::LocalIds,
    pub jobs: Mutex<Option<Sender<Arc<AgentState>>>>,
    /// The queue's other end, beside the workers': a caller waiting for
    /// idle runs queued updates itself (`Coordinator::wait_for_idle`).
    pub queued: Receiver<Arc<AgentState>>,
    pub in_flight: Mutex<usize>,
    pub idle: Condvar,
    pub shutting_down: AtomicBool,
    pub history: Mutex<VecDeque<ModelPerformance>>,
    pub history_total: AtomicU64,
    /// The store's writer; `None` when persistence is off.
    pub store: Option<StoreWriter>,
    /// The pretrained encoder, read on first use and shared (by handle) by
    /// every MiniLM head.
    minilm: Mutex<Option<crate::models::MiniLm>>,
    /// Update and prediction latencies, for the metrics text.
    pub latencies: crate::metrics::Latencies,
    /// The group of instances sharing the database; `None` for one instance.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `max_concurrent_updates` permits, for workers and waiting callers.
    pub update_slots: crate::slots::UpdateSlots,
}

impl Shared {
    pub fn new(
        config: Config,
        device: tch::Device,
        jobs: Sender<Arc<AgentState>>,
        queued: Receiver<Arc<AgentState>>,
        store: Option<StoreWriter>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
        ids: crate::ids::LocalIds,
    ) -> Shared {
        Shared {
            update_slots: crate::slots::UpdateSlots::new(config.max_concurrent_updates),
            config,
            device,
            agents: RwLock::new(BTreeMap::new()),
            ids,
            jobs: Mutex::new(Some(jobs)),
            queued,
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            shutting_down: AtomicBool::new(false),
            history: Mutex::new(VecDeque::new()),
            history_total: AtomicU64::new(0),
            store,
            minilm: Mutex::new(None),
            latencies: crate::metrics::Latencies::default(),
            cluster,
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn agents_snapshot(&self) -> Vec<Arc<AgentState>> {
        self.agents.read().values().cloned().collect()
    }

    /// Whether an agent should train now: its buffer reached the threshold or
    /// holds an example of at least the immediate-update priority.
    pub fn needs_update(&self, agent: &AgentState) -> bool {
        let urgent = agent
            .fresh_max_priority()
            .is_some_and(|p| u8::from(p) >= self.config.immediate_update_priority);
        urgent || agent.fresh_buffered() >= self.config.update_threshold
    }

    /// Queues an update of the agent unless one is already queued or running.
    pub fn schedule(&self, agent: &Arc<AgentState>) {
        if agent.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.in_flight.lock() += 1;
        let sent = match self.jobs.lock().as_ref() {
            Some(jobs) => jobs.send(Arc::clone(agent)).is_ok(),
            None => false,
        };
        if !sent {
            agent.scheduled.store(false, Ordering::Release);
            self.finish_job();
        }
    }

    pub fn finish_job(&self) {
        let mut in_flight = self.in_flight.lock();
        *in_flight = in_flight.saturating_sub(1);
        if *in_flight == 0 {
            self.idle.notify_all();
        }
    }

    /// Counts an example that left `agent`'s full buffer and marks it
    /// evicted in the store, from where the trainer may take it back
    /// ([`crate::catch_up`]). `stats` is the agent's, locked by the caller.
    pub fn record_eviction(
        &self,
        agent: &AgentState,
        stats: &mut crate::agent::AgentStats,
        id: crate::base::ExampleId,
    ) {
        stats.examples_evicted += 1;
        if self.store.is_none() {
            // Nowhere to keep it: say so where the caller looks (the status),
            // not only in a log a Python or C caller never sees.
            stats.last_error = Some(format!(
                "the buffer was full and no store is configured: {} of the least valuable examples were dropped untrained (turn the store on to keep them, or raise max_buffer_size)",
                stats.examples_evicted
            ));
        }
        self.persist(StoreOp::SetState {
            ids: vec![id],
            state: crate::store::ExampleState::Evicted,
            update_id: None,
        });
        // After the operation is queued: a trainer that sees the flag, clears
        // it and flushes the writer finds the row evicted.
        agent.may_reclaim.store(true, Ordering::Release);
    }

    /// Hands an operation to the store. Only possible failure: the writer
    /// was shut down, which happens after every thread that persists stopped.
    pub fn persist(&self, op: StoreOp) {
        if let Some(store) = &self.store {
            if let Err(e) = store.send(op) {
                tracing::error!(error = %e, "operation not persisted");
            }
        }
    }

    /// A handle on the pretrained encoder, read from `minilm_dir` the first time.
    pub fn minilm(&self) -> Result<crate::models::MiniLm, crate::base::ModelError> {
        let mut slot = self.minilm.lock();
        if slot.is_none() {
            let dir = self
                .config
                .minilm_dir
                .as_ref()
                .ok_or_else(|| crate::base::ModelError::ModelFiles("minilm_dir is not configured".into()))?;
            *slot = Some(crate::models::MiniLm::load(dir, self.device)?);
        }
        Ok(slot.as_ref().expect("just loaded").shallow_copy())
    }

    /// A new id for an example or an update: from this process's sequence,
    /// or from the block the database gave this instance when several share
    /// it (which can fail when a new block is needed and the database is
    /// unreachable).
    pub fn next_id(&self) -> Result<u64, crate::store::StoreError> {
        match &self.cluster {
            Some(cluster) => cluster.next_id(),
            None => self.ids.next(),
        }
    }

    /// The agent's state, created on first use.
    pub fn agent_or_create(&self, name: &str) -> Arc<AgentState> {
        if let Some(agent) = self.agents.read().get(name) {
            return Arc::clone(agent);
        }
        let mut agents = self.agents.write();
        Arc::clone(
            agents
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(AgentState::new(name.to_string(), self.config.max_buffer_size))),
        )
    }

    /// Keeps the record in memory and persists it.
    pub fn record_performance(&self, record: ModelPerformance) {
        self.latencies.update(
            &record.agent_name,
            &record.task_type,
            record.duration_ms as f64 / 1000.0,
        );
        self.persist(StoreOp::Performance(record.clone()));
        self.remember_performance(record);
    }

    /// Keeps the record in memory only (it is stored already).
    pub fn remember_performance(&self, record: ModelPerformance) {
        let mut history = self.history.lock();
        if history.len() == HISTORY_IN_MEMORY {
            history.pop_front();
        }
        history.push_back(record);
        self.history_total.fetch_add(1, Ordering::AcqRel);
    }
}
