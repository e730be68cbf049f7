//! The writer thread: takes [`StoreOp`]s from callers without ever blocking
//! them, writes them in batches, and rides out database outages with a
//! bounded memory backlog, the spool file and reconnection with backoff.
//!
//! Order is kept end to end: the spool always holds older operations than the
//! memory backlog, and while the spool is not empty nothing new goes straight
//! to the database.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::spool::{self, Spool};
use super::StoreConfig;
use super::{ExampleStore, PoolStats, StoreError, StoreOp};

/// The first wait before retrying an unreachable database.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// What the store is doing, for the training status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// `"postgres"` or `"sqlite"`.
    pub backend: String,
    /// Operations handed to the writer since start.
    pub received: u64,
    /// Of those, operations in the database or the fsynced spool: they
    /// survive a `kill -9`.
    pub durable: u64,
    /// Operations committed to the database since start (replays included).
    pub written: u64,
    /// Operations waiting in memory (the channel and the backlog).
    pub backlog: u64,
    /// Operations in the spool file waiting for the database.
    pub spooled: u64,
    /// The spool file's size in bytes.
    pub spool_bytes: u64,
    /// Operations the database refused, set aside in `rejected.jsonl`.
    pub rejected: u64,
    /// Settled examples the retention policy deleted since start.
    pub retired: u64,
    /// Whether the last attempt to reach the database succeeded.
    pub connected: bool,
    /// The last error, if any: cleared once the database is reachable again
    /// after an outage (a refused operation's error stays).
    pub last_error: Option<String>,
    /// When `last_error` happened, in milliseconds since the Unix epoch.
    pub last_error_ms: Option<u64>,
    /// The connection pool (PostgreSQL).
    pub pool: Option<PoolStats>,
}

enum Message {
    Op(StoreOp),
    Flush(Sender<Result<(), StoreError>>),
    Stop,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    durable: AtomicU64,
    written: AtomicU64,
    backlog: AtomicU64,
    spooled: AtomicU64,
    spool_bytes: AtomicU64,
    rejected: AtomicU64,
    retired: AtomicU64,
    /// Operations dropped at shutdown, neither written nor spooled.
    lost: AtomicU64,
    connected: AtomicBool,
    /// The last error, when it happened, and whether it was an outage.
    last_error: Mutex<Option<(String, u64, bool)>>,
}

/// The handle callers use: hand over operations, flush, read the status,
/// shut down.
pub struct StoreWriter {
    store: Arc<dyn ExampleStore>,
    tx: Sender<Message>,
    /// Taken for reading by every send, for writing by shutdown: no operation
    /// slips in after the writer's last drain.
    open: RwLock<bool>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl StoreWriter {
    /// Replays what an earlier run left in the spool (in `spool_dir`), then
    /// starts the writer thread. Fails when the spool cannot be replayed.
    pub fn start(
        store: Arc<dyn ExampleStore>,
        spool_dir: PathBuf,
        config: StoreConfig,
    ) -> Result<StoreWriter, StoreError> {
        let mut spool = Spool::open(&spool_dir)?;
        let counters = Arc::new(Counters::default());
        if !spool.is_empty() {
            let n = spool.len();
            replay_all(store.as_ref(), &mut spool, &spool_dir, config.batch_size, &counters)?;
            tracing::info!(operations = n, "store spool of an earlier run replayed");
        }
        counters.connected.store(true, Ordering::Release);
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut worker = Worker {
            store: Arc::clone(&store),
            spool,
            spool_dir,
            config,
            rx,
            pending: VecDeque::new(),
            next_seq: 1,
            waiters: Vec::new(),
            retry_at: None,
            backoff: FIRST_RETRY,
            counters: Arc::clone(&counters),
            stopping: false,
            next_retention: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("onthefly-store".into())
            .spawn(move || worker.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer thread: {e}")))?;
        Ok(StoreWriter {
            store,
            tx,
            open: RwLock::new(true),
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn ExampleStore> {
        &self.store
    }

    /// Hands an operation over; never blocks. Fails only after shutdown.
    pub fn send(&self, op: StoreOp) -> Result<(), StoreError> {
        let open = self.open.read();
        if !*open {
            return Err(StoreError::Closed);
        }
        self.counters.received.fetch_add(1, Ordering::AcqRel);
        self.counters.backlog.fetch_add(1, Ordering::AcqRel);
        // The receiver lives as long as the thread, which outlives `open`.
        self.tx.send(Message::Op(op)).map_err(|_| StoreError::Closed)
    }

    /// Returns once every operation handed over before the call is in the
    /// database or the fsynced spool.
    pub fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        {
            let open = self.open.read();
            if !*open {
                return Err(StoreError::Closed);
            }
            self.tx.send(Message::Flush(done_tx)).map_err(|_| StoreError::Closed)?;
        }
        match done_rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(StoreError::FlushTimeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Closed),
        }
    }

    /// The writer's counters and the pool's state.
    pub fn status(&self) -> StoreStatus {
        let c = &self.counters;
        let last_error = c.last_error.lock().clone();
        StoreStatus {
            backend: self.store.backend().to_string(),
            received: c.received.load(Ordering::Acquire),
            durable: c.durable.load(Ordering::Acquire),
            written: c.written.load(Ordering::Acquire),
            backlog: c.backlog.load(Ordering::Acquire),
            spooled: c.spooled.load(Ordering::Acquire),
            spool_bytes: c.spool_bytes.load(Ordering::Acquire),
            rejected: c.rejected.load(Ordering::Acquire),
            retired: c.retired.load(Ordering::Acquire),
            connected: c.connected.load(Ordering::Acquire),
            last_error: last_error.as_ref().map(|(e, _, _)| e.clone()),
            last_error_ms: last_error.as_ref().map(|(_, at, _)| *at),
            pool: self.store.pool_stats(),
        }
    }

    /// Stops accepting operations, writes (or, if the database is down,
    /// spools) everything handed over, and joins the thread. Idempotent.
    /// Operations dropped at shutdown because they could be neither written
    /// nor spooled, with the last error seen; `None` when none was.
    pub fn lost(&self) -> Option<StoreError> {
        let operations = self.counters.lost.load(Ordering::Acquire);
        (operations > 0).then(|| StoreError::Lost {
            operations,
            reason: self
                .counters
                .last_error
                .lock()
                .as_ref()
                .map_or_else(|| "none recorded".to_string(), |(e, _, _)| e.clone()),
        })
    }

    pub fn shutdown(&self) {
        {
            let mut open = self.open.write();
            if !*open {
                return;
            }
            *open = false;
            let _ = self.tx.send(Message::Stop);
        }
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    store: Arc<dyn ExampleStore>,
    spool: Spool,
    spool_dir: PathBuf,
    config: StoreConfig,
    rx: Receiver<Message>,
    /// Operations not yet durable, oldest first, with their sequence numbers.
    pending: VecDeque<(u64, StoreOp)>,
    next_seq: u64,
    /// Flushes waiting for every operation up to their sequence number.
    waiters: Vec<(u64, Sender<Result<(), StoreError>>)>,
    /// While the database is unreachable: when to try again.
    retry_at: Option<Instant>,
    backoff: Duration,
    counters: Arc<Counters>,
    stopping: bool,
    /// When the next retention pass is due.
    next_retention: Instant,
}

impl Worker {
    fn run(&mut self) {
        loop {
            // A panic here would lose the backlog: keep going instead, with
            // the operations still pending.
            let step = catch_unwind(AssertUnwindSafe(|| self.step()));
            match step {
                Ok(true) => {}
                Ok(false) => return,
                Err(panic) => {
                    let message = crate::grad::panic_message(&*panic);
                    tracing::error!(%message, "store writer step panicked; continuing");
                    self.note_error(format!("store writer step panicked: {message}"));
                    std::thread::sleep(self.backoff);
                }
            }
        }
    }

    /// One round: wait for work, take everything queued, write what can be
    /// written. Returns false once stopped and done.
    fn step(&mut self) -> bool {
        let idle = self.pending.is_empty() && self.spool.is_empty();
        let first = match (idle, self.retry_at) {
            (true, _) => match self.rx.recv_timeout(self.until_retention()) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => {
                    self.retire_if_due();
                    return true;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            },
            (false, Some(at)) => match self.rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Message::Stop),
            },
            (false, None) => self.rx.try_recv().ok(),
        };
        if idle && first.is_none() {
            return false; // Every sender is gone.
        }
        for message in first.into_iter().chain(std::iter::from_fn(|| self.rx.try_recv().ok())) {
            match message {
                Message::Op(op) => {
                    self.pending.push_back((self.next_seq, op));
                    self.next_seq += 1;
                }
                Message::Flush(done) => self.waiters.push((self.next_seq - 1, done)),
                Message::Stop => self.stopping = true,
            }
        }

        if self.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.write_what_can_be_written();
        }
        // Unreachable database: beyond the memory bound, for a flush, or at
        // shutdown, the backlog goes to the spool.
        let unwritten = !self.pending.is_empty();
        if unwritten && (self.pending.len() > self.config.memory_backlog || !self.waiters.is_empty() || self.stopping) {
            self.spill();
            if self.stopping && !self.pending.is_empty() {
                tracing::error!(
                    operations = self.pending.len(),
                    "shutting down with operations neither written nor spooled: they are lost"
                );
                self.counters
                    .lost
                    .fetch_add(self.pending.len() as u64, Ordering::AcqRel);
                self.pending.clear();
            }
        }
        self.publish();
        self.answer_waiters();
        if self.retry_at.is_none() && !self.stopping {
            self.retire_if_due();
        }
        !(self.stopping && self.pending.is_empty() && self.waiters.is_empty())
    }

    /// How long until the next retention pass (a long wait when the policy
    /// deletes nothing).
    fn until_retention(&self) -> Duration {
        if self.config.retention.is_active() {
            self.next_retention.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3_600)
        }
    }

    /// Deletes what the retention policy lets go, when a pass is due. A
    /// failure is noted and tried again at the next pass.
    fn retire_if_due(&mut self) {
        let policy = &self.config.retention;
        if !policy.is_active() || Instant::now() < self.next_retention {
            return;
        }
        self.next_retention = Instant::now() + Duration::from_millis(policy.interval_ms.max(1));
        match self
            .store
            .retire(policy, crate::base::unix_millis(std::time::SystemTime::now()))
        {
            Ok(0) => {}
            Ok(n) => {
                self.counters.retired.fetch_add(n, Ordering::AcqRel);
                tracing::info!(rows = n, "retention deleted settled examples");
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; it runs again at the next pass");
                self.note_error(format!("retention: {e}"));
            }
        }
    }

    /// Replays the spool, then writes the backlog, in batches, until done or
    /// the database becomes unreachable.
    fn write_what_can_be_written(&mut self) {
        while !self.spool.is_empty() {
            let chunk = self.spool.read_chunk(self.config.batch_size);
            let (ops, offset) = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // An unreadable spool must not be skipped silently nor
                    // block the writer for ever: new operations wait behind it
                    // in memory (and the status shows why).
                    self.note_error(e.to_string());
                    self.schedule_retry();
                    return;
                }
            };
            if ops.is_empty() {
                // Counted lines that are not whole: nothing more to replay.
                let rest = self.spool.len() as usize;
                if let Err(e) = self.spool.consumed(rest, offset) {
                    self.note_error(e.to_string());
                }
                break;
            }
            let (done, error) = self.write_isolating(&ops);
            if done == ops.len() {
                if let Err(e) = self.spool.consumed(done, offset) {
                    self.note_error(e.to_string());
                }
            }
            if let Some(e) = error {
                self.note_unavailable(e);
                return;
            }
        }
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.config.batch_size);
            let ops: Vec<StoreOp> = self.pending.iter().take(n).map(|(_, op)| op.clone()).collect();
            let (done, error) = self.write_isolating(&ops);
            self.pending.drain(..done);
            if let Some(e) = error {
                self.note_unavailable(e);
                return;
            }
        }
        if self.retry_at.take().is_some() {
            tracing::info!("database reachable again; backlog written");
            // The outage is over: its error no longer describes the store.
            let mut last = self.counters.last_error.lock();
            if last.as_ref().is_some_and(|(_, _, outage)| *outage) {
                *last = None;
            }
        }
        self.backoff = FIRST_RETRY;
        self.counters.connected.store(true, Ordering::Release);
    }

    /// Writes `ops` as one batch; when the database refuses the batch, halves
    /// it until the refused operations stand alone and sets those aside.
    /// Returns how many operations from the front are done (written or set
    /// aside) and the outage that stopped it, if one did.
    fn write_isolating(&self, ops: &[StoreOp]) -> (usize, Option<StoreError>) {
        match self.store.write(ops) {
            Ok(()) => {
                self.counters.written.fetch_add(ops.len() as u64, Ordering::AcqRel);
                (ops.len(), None)
            }
            Err(e) if e.is_transient() => (0, Some(e)),
            Err(e) if ops.len() == 1 => {
                tracing::error!(error = %e, "the database refused an operation; set aside in rejected.jsonl");
                if let Err(spool_error) = spool::reject(&self.spool_dir, &ops[0], &e) {
                    // Not even the file takes it: keep it and retry later.
                    self.note_error(spool_error.to_string());
                    return (0, Some(StoreError::Unavailable(spool_error.to_string())));
                }
                self.counters.rejected.fetch_add(1, Ordering::AcqRel);
                self.note_error(e.to_string());
                (1, None)
            }
            Err(_) => {
                let (first, second) = ops.split_at(ops.len() / 2);
                match self.write_isolating(first) {
                    (done, None) => {
                        let (more, error) = self.write_isolating(second);
                        (done + more, error)
                    }
                    stopped => stopped,
                }
            }
        }
    }

    /// Moves the whole backlog to the spool (fsynced).
    fn spill(&mut self) {
        match self.spool.append(self.pending.iter().map(|(_, op)| op)) {
            Ok(()) => self.pending.clear(),
            Err(e) => {
                tracing::error!(error = %e, "cannot spool the store backlog; it stays in memory");
                self.note_error(e.to_string());
                let failed: Vec<_> = self.waiters.drain(..).collect();
                for (_, done) in failed {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }

    fn note_unavailable(&mut self, e: StoreError) {
        if self.retry_at.is_none() {
            tracing::warn!(error = %e, "database unreachable; spooling and retrying");
        }
        *self.counters.last_error.lock() = Some((e.to_string(), now_ms(), true));
        self.counters.connected.store(false, Ordering::Release);
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.config.retry_max_ms));
    }

    fn note_error(&self, message: String) {
        *self.counters.last_error.lock() = Some((message, now_ms(), false));
    }

    /// Everything up to this sequence number is durable.
    fn durable_seq(&self) -> u64 {
        self.pending.front().map_or(self.next_seq - 1, |(seq, _)| seq - 1)
    }

    fn answer_waiters(&mut self) {
        let durable = self.durable_seq();
        self.waiters.retain(|(seq, done)| {
            if *seq <= durable {
                let _ = done.send(Ok(()));
                false
            } else {
                true
            }
        });
    }

    fn publish(&self) {
        let c = &self.counters;
        let received = c.received.load(Ordering::Acquire);
        let durable = self.durable_seq();
        c.durable.store(durable, Ordering::Release);
        c.backlog.store(received.saturating_sub(durable), Ordering::Release);
        c.spooled.store(self.spool.len(), Ordering::Release);
        c.spool_bytes.store(self.spool.bytes(), Ordering::Release);
    }
}

/// Replays the whole spool at start-up.
fn replay_all(
    store: &dyn ExampleStore,
    spool: &mut Spool,
    dir: &std::path::Path,
    batch_size: usize,
    counters: &Counters,
) -> Result<(), StoreError> {
    while !spool.is_empty() {
        let (ops, offset) = spool.read_chunk(batch_size)?;
        if ops.is_empty() {
            // Counted lines that cannot be read as whole lines: nothing more to replay.
            return spool.consumed(spool.len() as usize, offset);
        }
        for chunk in ops.chunks(batch_size) {
            match store.write(chunk) {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(_) => {
                    for op in chunk {
                        if let Err(e) = store.write(std::slice::from_ref(op)) {
                            if e.is_transient() {
                                return Err(e);
                            }
                            spool::reject(dir, op, &e)?;
                            counters.rejected.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
            }
            counters.written.fetch_add(chunk.len() as u64, Ordering::AcqRel);
        }
        spool.consumed(ops.len(), offset)?;
    }
    Ok(())
}

/// Now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    crate::base::unix_millis(std::time::SystemTime::now())
}
