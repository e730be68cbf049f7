//! Several instances sharing one PostgreSQL database, coordinated by
//! PostgreSQL itself: no consensus code of our own.
//!
//! ```text
//!   machine A                     machine B                     machine C
//!  ┌────────────────────┐        ┌────────────────────┐        ┌────────────────────┐
//!  │ agents → onthefly  │        │ agents → onthefly  │        │ agents → onthefly  │
//!  │  instance "a"      │        │  instance "b"      │        │  instance "c"      │
//!  └──┬──────────▲──────┘        └──┬──────────▲──────┘        └──┬──────────▲──────┘
//!     │ COPY,    │ LISTEN           │          │                  │          │
//!     │ claims   │ onthefly_models  │          │                  │          │
//!  ┌──▼──────────┴──────────────────▼──────────┴──────────────────▼──────────┴──────┐
//!  │ PostgreSQL: training_examples (state = buffered → trained / discarded / …),   │
//!  │ model_performance, model_checkpoints (bytes or shared path), onthefly_id_blocks,│
//!  │ onthefly_instances (heartbeats, versions served), advisory locks per task      │
//!  └────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - **Ids**: every instance takes blocks of [`ID_BLOCK_SIZE`] ids from the
//!   sequence `onthefly_id_blocks`, so example and update ids never collide.
//! - **One trainer per (agent, task)**: an update first takes the session
//!   advisory lock of its (agent, task) on a connection of its own
//!   (`pg_try_advisory_lock`); an instance that does not get it skips the task
//!   and tries again later. The lock goes with the session, so a crashed
//!   holder (process killed, machine gone) frees it as soon as PostgreSQL
//!   notices the connection is gone.
//! - **Claims**: the examples of an update are selected with
//!   `FOR UPDATE SKIP LOCKED` among the rows in state `buffered`, inside a
//!   transaction that stays open during the update. Accepted or rolled back,
//!   the rows change state and the transaction commits together with the
//!   update record and the checkpoint; an update that fails (or a holder that
//!   dies) rolls the transaction back, and the rows are buffered again.
//! - **Lineage**: before training, the lock holder loads the newest published
//!   version if it is not serving it, so every update builds on the last
//!   accepted one and versions count up by one across instances.
//! - **Publication**: an accepted version's checkpoint goes into
//!   `model_checkpoints` (its bytes, or a path on a folder every instance
//!   mounts) in the same transaction, and `NOTIFY onthefly_models` announces
//!   it on commit. Every instance `LISTEN`s and loads the new version; after a
//!   reconnect, and every `poll_interval_ms` in any case, it compares with the
//!   newest published versions, because notifications sent while it was away
//!   are lost.
//! - **Shared evaluation**: an update is judged on the newest
//!   `performance_window` held-out rows of its task in the table, whichever
//!   instance received them.

mod session;
mod settings;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::{Client, NoTls};

use crate::base::stable_hash;
use crate::status::ClusterStatus;
use crate::store::postgres::classify;
use crate::store::schema::ID_BLOCK_SIZE;
use crate::store::DatabaseConfig;
use crate::store::StoreError;
pub use settings::ClusterConfig;

pub(crate) use session::{latest_version, Publication, TaskSession};

/// The channel every published version is announced on.
pub(crate) const CHANNEL: &str = "onthefly_models";

/// This instance's part in a group of instances sharing the database.
pub(crate) struct Cluster {
    pub config: ClusterConfig,
    /// Published versions whose bytes stay in the database (older ones keep
    /// their row, not their bytes).
    pub checkpoints_kept: usize,
    pg: postgres::Config,
    /// The block ids come from, and the next one once the listener fetched
    /// it (so adding rarely waits for the database, and not during an outage
    /// unless a whole block runs out).
    ids: Mutex<(Range<u64>, Option<Range<u64>>)>,
    /// The newest picture of the group, refreshed by the listener.
    snapshot: Mutex<ClusterStatus>,
    /// Whether the listener's connection is up.
    connected: AtomicBool,
    started_ms: u64,
    /// Tasks whose lock another instance held at the last try, and until when
    /// not to try again: without it, every example added above the threshold
    /// would open a connection just to find the lock taken.
    busy: Mutex<HashMap<(String, String), Instant>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection settings hold the password: never printed.
        f.debug_struct("Cluster")
            .field("instance_id", &self.config.instance_id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the group: reads the connection settings, takes a first block of
    /// ids and records the instance. The schema must be migrated already.
    pub fn open(
        cluster: Option<&ClusterConfig>,
        database: Option<&DatabaseConfig>,
        connect_timeout_ms: u64,
        checkpoints_kept: usize,
    ) -> Result<Cluster, StoreError> {
        let cluster_config = cluster
            .cloned()
            .ok_or_else(|| StoreError::Refused("no cluster configuration".into()))?;
        let url = &database
            .ok_or_else(|| StoreError::Refused("several instances need a PostgreSQL database".into()))?
            .url;
        let mut pg: postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Refused("the database URL cannot be parsed".into()))?;
        pg.application_name(&application_name(&cluster_config.instance_id))
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            // A peer that vanished without closing fails a write within a
            // minute, not after the kernel's ~15 minutes of retransmissions.
            .tcp_user_timeout(Duration::from_secs(60));
        let cluster = Cluster {
            snapshot: Mutex::new(ClusterStatus {
                instance_id: cluster_config.instance_id.clone(),
                ..ClusterStatus::default()
            }),
            config: cluster_config,
            checkpoints_kept,
            pg,
            ids: Mutex::new((0..0, None)),
            connected: AtomicBool::new(false),
            busy: Mutex::new(HashMap::new()),
            started_ms: crate::base::unix_millis(std::time::SystemTime::now()),
        };
        cluster.ids.lock().0 = cluster.first_block()?;
        Ok(cluster)
    }

    /// A new connection of this instance (its own session: locks taken on it
    /// go when it is dropped).
    pub fn connect(&self) -> Result<Client, StoreError> {
        self.pg.connect(NoTls).map_err(classify)
    }

    /// The next id of this instance's block; a new block from the database
    /// when the block is used up (once per [`ID_BLOCK_SIZE`] ids).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock();
        if ids.0.is_empty() {
            ids.0 = match ids.1.take() {
                Some(block) => block,
                None => self.new_block()?,
            };
        }
        Ok(ids.0.next().expect("a fresh block is not empty"))
    }

    /// Fetches the next block ahead of time once half of the current one is used.
    pub fn prefetch_ids(&self) -> Result<(), StoreError> {
        let wanted = {
            let ids = self.ids.lock();
            ids.1.is_none() && ids.0.end - ids.0.start < ID_BLOCK_SIZE / 2
        };
        if wanted {
            let block = self.new_block()?;
            self.ids.lock().1.get_or_insert(block);
        }
        Ok(())
    }

    /// The first block: above every id stored, since ids a single instance
    /// wrote (continuing after the highest stored) may have run into blocks
    /// not handed out yet. Only `nextval`, never `setval`, so a block another
    /// instance takes meanwhile is never handed out twice.
    fn first_block(&self) -> Result<Range<u64>, StoreError> {
        let mut client = self.connect()?;
        let needed: i64 = client
            .query_one(
                "SELECT GREATEST((SELECT COALESCE(max(id), 0) FROM training_examples), \
                 (SELECT COALESCE(max(update_id), 0) FROM model_performance)) / $1 + 1",
                &[&(ID_BLOCK_SIZE as i64)],
            )
            .map_err(classify)?
            .get(0);
        loop {
            let block = self.new_block()?;
            if block.start / ID_BLOCK_SIZE >= needed.max(0) as u64 {
                return Ok(block);
            }
        }
    }

    fn new_block(&self) -> Result<Range<u64>, StoreError> {
        let mut client = self.connect()?;
        let block: i64 = client
            .query_one("SELECT nextval('onthefly_id_blocks')", &[])
            .map_err(classify)?
            .get(0);
        let start = u64::try_from(block)
            .ok()
            .and_then(|b| b.checked_mul(ID_BLOCK_SIZE))
            .ok_or_else(|| StoreError::Corrupt(format!("id block {block} is out of range")))?;
        // Id 0 is never handed out: block 0 starts at 1.
        Ok(start.max(1)..start + ID_BLOCK_SIZE)
    }

    /// Takes a waiting review item (a prediction, or a quarantined example)
    /// for a label, marking its row `settled`: `false` when another
    /// instance labelled it first (every instance offers the group's items).
    pub fn take_review(
        &self,
        id: crate::base::ExampleId,
        settled: crate::store::ExampleState,
    ) -> Result<bool, StoreError> {
        let id = crate::store::id_to_stored(id.0)?;
        let taken = self
            .connect()?
            .execute(
                "UPDATE training_examples SET state = $2 WHERE id = $1 AND state IN ('pending_review', 'quarantined')",
                &[&id, &settled.as_str()],
            )
            .map_err(classify)?;
        Ok(taken == 1)
    }

    /// Whether another instance held the task's lock less than a poll
    /// interval ago.
    pub fn recently_busy(&self, agent: &str, task: &str) -> bool {
        let mut busy = self.busy.lock();
        let now = Instant::now();
        busy.retain(|_, until| *until > now);
        busy.contains_key(&(agent.to_string(), task.to_string()))
    }

    /// Notes that another instance holds the task's lock: no new try before
    /// a poll interval has passed (or the listener sees the task's buffer full).
    pub fn mark_busy(&self, agent: &str, task: &str) {
        self.busy.lock().insert(
            (agent.to_string(), task.to_string()),
            Instant::now() + self.poll_interval(),
        );
    }

    pub fn instance_id(&self) -> &str {
        &self.config.instance_id
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
    }

    /// The group as last seen, with this instance's connection state.
    pub fn status(&self) -> ClusterStatus {
        let mut status = self.snapshot.lock().clone();
        status.connected = self.connected.load(Ordering::Acquire);
        status
    }

    pub fn set_snapshot(&self, status: ClusterStatus) {
        *self.snapshot.lock() = status;
    }

    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }
}

/// What PostgreSQL shows as the session's `application_name`; the status
/// finds lock holders by it.
fn application_name(instance: &str) -> String {
    format!("onthefly:{instance}")
}

/// The instance behind an `application_name`, if it is one of ours.
pub(crate) fn instance_of(application_name: &str) -> Option<&str> {
    application_name.strip_prefix("onthefly:")
}

/// The advisory lock key of an (agent, task): a stable hash, kept
/// non-negative so `pg_locks` shows it back without sign games.
pub(crate) fn lock_key(agent: &str, task: &str) -> i64 {
    (stable_hash(format!("onthefly-train\0{agent}\0{task}").as_bytes()) >> 1) as i64
}
