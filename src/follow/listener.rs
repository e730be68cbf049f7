//! The instance's ear on the group: a thread with its own connection that
//! `LISTEN`s for published versions and loads them, and every poll interval
//! (and right after each reconnect, since notifications sent while it was
//! away are lost) compares with the newest published versions, schedules
//! updates of tasks whose shared buffer is full, writes its heartbeat and
//! refreshes the cluster part of the status.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::{install_published, prune_buffer};
use crate::agent::task_of_kind;
use crate::base::{unix_millis, TargetKind};
use crate::cluster::{instance_of, lock_key, Cluster, CHANNEL};
use crate::grad::panic_message;
use crate::runtime::Shared;
use crate::status::{ClusterStatus, ClusterTaskStatus, InstanceStatus};
use crate::store::postgres::classify;
use crate::store::StoreError;

/// How long one wait for notifications lasts: also how quickly the thread
/// notices a shutdown.
const LISTEN_SLICE: Duration = Duration::from_millis(100);

/// Runs until `stop` is closed.
pub(crate) fn listener_loop(shared: Arc<Shared>, cluster: Arc<Cluster>, stop: Receiver<()>) {
    let mut backoff = Duration::from_millis(50);
    let max_backoff = Duration::from_millis(shared.config.store.retry_max_ms);
    loop {
        let session = catch_unwind(AssertUnwindSafe(|| {
            cluster.connect().and_then(|mut client| {
                client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(classify)?;
                listen(&shared, &cluster, &mut client, &stop, &mut backoff)
            })
        }))
        .unwrap_or_else(|panic| {
            Err(StoreError::Refused(format!(
                "listener panicked: {}",
                panic_message(&*panic)
            )))
        });
        cluster.set_connected(false);
        match session {
            Ok(()) => return, // Stopped.
            Err(e) => tracing::warn!(error = %e, "cluster listener disconnected; reconnecting"),
        }
        match stop.recv_timeout(backoff) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Most notifications taken in one round before the refresh and the stop
/// check get their turn, however busy the group is.
const MAX_NOTES_PER_ROUND: usize = 1000;

/// One connected session: returns `Ok` when stopped, the error when the
/// connection fails.
fn listen(
    shared: &Shared,
    cluster: &Cluster,
    client: &mut Client,
    stop: &Receiver<()>,
    backoff: &mut Duration,
) -> Result<(), StoreError> {
    // Right after (re)connecting: a version published while away is caught here.
    refresh(shared, cluster, client)?;
    // Connected for real only once a refresh succeeded: a refresh that keeps
    // failing backs off like a connection that does.
    cluster.set_connected(true);
    *backoff = Duration::from_millis(50);
    let mut next_refresh = Instant::now() + cluster.poll_interval();
    loop {
        if Instant::now() >= next_refresh {
            refresh(shared, cluster, client)?;
            next_refresh = Instant::now() + cluster.poll_interval();
        }
        // The newest announced version per task: one wait for the first
        // notification, then whatever is already pending, up to a bound.
        let mut announced: BTreeMap<(String, String), u64> = BTreeMap::new();
        {
            let mut notifications = client.notifications();
            let mut payloads = Vec::new();
            let first = notifications.timeout_iter(LISTEN_SLICE).next().map_err(classify)?;
            if let Some(n) = first {
                payloads.push(n.payload().to_string());
                let mut pending = notifications.iter();
                while payloads.len() < MAX_NOTES_PER_ROUND {
                    match pending.next().map_err(classify)? {
                        Some(n) => payloads.push(n.payload().to_string()),
                        None => break,
                    }
                }
            }
            for payload in payloads {
                let Ok(note) = serde_json::from_str::<serde_json::Value>(&payload) else {
                    continue;
                };
                if note["instance"].as_str() == Some(cluster.instance_id()) {
                    continue; // This instance published it and serves it already.
                }
                if let (Some(agent), Some(task), Some(version)) =
                    (note["agent"].as_str(), note["task"].as_str(), note["version"].as_u64())
                {
                    let newest = announced.entry((agent.to_string(), task.to_string())).or_insert(0);
                    *newest = (*newest).max(version);
                }
            }
        }
        for ((agent, task), version) in announced {
            load(shared, client, &agent, &task, version)?;
        }
        match stop.try_recv() {
            Err(crossbeam_channel::TryRecvError::Empty) => {}
            _ => return Ok(()),
        }
    }
}

/// Installs a published version and drops the local copies of examples it
/// trained. A version that cannot be loaded is logged and left for the next
/// poll; a lost connection ends the session.
fn load(shared: &Shared, client: &mut Client, agent: &str, task: &str, version: u64) -> Result<(), StoreError> {
    match install_published(shared, client, agent, task, version) {
        Ok(_) => {}
        Err(crate::Error::Store(e)) if e.is_transient() => return Err(e),
        Err(e) => {
            tracing::error!(agent, task, version, error = %e, "published version not installed");
            if let Some(a) = shared.agents.read().get(agent) {
                a.note_error(format!(
                    "published version {version} of task {task:?} not installed: {e}"
                ));
            }
        }
    }
    prune_buffer(shared, client, agent)?;
    Ok(())
}

/// Compares with the newest published versions (loading newer ones), prunes
/// local buffers, schedules full shared buffers, writes the heartbeat and
/// refreshes the status's picture of the group.
pub(crate) fn refresh(shared: &Shared, cluster: &Cluster, client: &mut Client) -> Result<(), StoreError> {
    let published = follow_published(shared, client)?;
    cluster.prefetch_ids()?;

    // Local copies of rows other instances trained, discarded or gave up.
    for agent in shared.agents_snapshot() {
        prune_buffer(shared, client, &agent.name)?;
    }

    let buffered = schedule_shared_buffers(shared, client)?;
    let evicted = schedule_evicted(shared, client)?;
    write_heartbeat(shared, cluster, client)?;
    let status = group_status(cluster, client, &published, (&buffered, &evicted))?;
    cluster.set_snapshot(status);
    Ok(())
}

/// The newest published version of every task, each loaded where this
/// instance serves an older one.
fn follow_published(shared: &Shared, client: &mut Client) -> Result<BTreeMap<(String, String), u64>, StoreError> {
    let mut published: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in client
        .query(
            "SELECT DISTINCT ON (agent_name, task_type) agent_name, task_type, version FROM model_checkpoints \
             WHERE accepted AND instance_id IS NOT NULL ORDER BY agent_name, task_type, version DESC",
            &[],
        )
        .map_err(classify)?
    {
        let version: i64 = row.get(2);
        published.insert((row.get(0), row.get(1)), version.max(0) as u64);
    }
    for ((agent, task), version) in &published {
        let serving = shared
            .agents
            .read()
            .get(agent)
            .and_then(|a| a.live_model(task))
            .map(|live| live.version());
        if serving.is_none_or(|v| v < *version) {
            load(shared, client, agent, task, *version)?;
        }
    }

    Ok(published)
}

/// A count per (agent, task).
type PerTask = BTreeMap<(String, String), u64>;

/// Schedules the tasks whose shared buffer may be trained: whoever has a
/// free worker may train them, when full, urgent, or waiting longer than
/// `stale_after` (also rows an instance received before it stopped, which
/// no local buffer holds). Returns the buffered rows per task.
fn schedule_shared_buffers(shared: &Shared, client: &mut Client) -> Result<PerTask, StoreError> {
    let mut buffered = PerTask::new();
    let stale_before = std::time::SystemTime::now()
        .checked_sub(shared.config.stale_after())
        .unwrap_or(std::time::UNIX_EPOCH);
    // Rejected rows wait for fresh ones (as in a local buffer, see
    // `AgentState::fresh_buffered`): neither their count, their priority
    // nor their age schedules an update. Those the task's newest published
    // version rejected are marked in the table (whichever instance judged
    // them); those this instance rejected it also knows itself.
    let rejected: Vec<i64> = shared
        .agents_snapshot()
        .iter()
        .flat_map(|agent| agent.rejected_ids())
        .filter_map(|id| i64::try_from(id.0).ok())
        .collect();
    for row in client
        .query(
            "WITH waiting AS (SELECT agent_name, task_type, target_kind, correction_priority, \"timestamp\", \
                 id = ANY($1) OR rejected_at IS NOT DISTINCT FROM COALESCE((SELECT max(version) \
                     FROM model_checkpoints c WHERE c.agent_name = t.agent_name AND c.task_type = t.task_type \
                     AND c.accepted AND c.instance_id IS NOT NULL), 0) AS rejected \
                 FROM training_examples t WHERE state = 'buffered') \
             SELECT agent_name, task_type, min(target_kind), count(*), \
             COALESCE(max(correction_priority) FILTER (WHERE NOT rejected), CAST(0 AS SMALLINT)), \
             min(\"timestamp\") FILTER (WHERE NOT rejected), count(*) FILTER (WHERE NOT rejected) \
             FROM waiting GROUP BY agent_name, task_type",
            &[&rejected],
        )
        .map_err(classify)?
    {
        let (agent, task, kind, count, priority): (String, String, String, i64, i16) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let oldest: Option<std::time::SystemTime> = row.get(5);
        let fresh: i64 = row.get(6);
        buffered.insert((agent.clone(), task.clone()), count.max(0) as u64);
        let urgent = priority >= i16::from(shared.config.immediate_update_priority);
        let stale = oldest.is_some_and(|t| t <= stale_before);
        if !(urgent || fresh.max(0) as usize >= shared.config.update_threshold || stale) {
            continue;
        }
        if let Some(state) = known_task(shared, &agent, &task, &kind) {
            shared.schedule(&state);
        }
    }
    Ok(buffered)
}

/// Schedules the agents with rows a full buffer pushed out, to be taken
/// back: the instance that evicted them does so once it has caught up, but
/// one that stopped first would leave them in the table for good (nothing
/// else looks for them). Returns the evicted rows per task.
fn schedule_evicted(shared: &Shared, client: &mut Client) -> Result<PerTask, StoreError> {
    let mut evicted = BTreeMap::new();
    for row in client
        .query(
            "SELECT agent_name, task_type, min(target_kind), count(*) FROM training_examples \
             WHERE state = 'evicted' GROUP BY agent_name, task_type",
            &[],
        )
        .map_err(classify)?
    {
        let (agent, task, kind, count): (String, String, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        evicted.insert((agent.clone(), task.clone()), count.max(0) as u64);
        if let Some(state) = known_task(shared, &agent, &task, &kind) {
            state.may_reclaim.store(true, std::sync::atomic::Ordering::Release);
            shared.schedule(&state);
        }
    }
    Ok(evicted)
}

/// The agent of a task seen in the shared table, with the task declared
/// locally for its target kind; `None` for a kind this instance cannot
/// learn (or during shutdown).
fn known_task(
    shared: &Shared,
    agent: &str,
    task: &str,
    kind: &str,
) -> Option<std::sync::Arc<crate::agent::AgentState>> {
    let kind = serde_json::from_value::<TargetKind>(serde_json::Value::String(kind.to_string())).ok()?;
    let state = shared.agent_or_create(agent);
    task_of_kind(
        &mut state.tasks.lock(),
        agent,
        task,
        kind,
        shared.config.performance_window,
    )
    .ok()?;
    (!shared.is_shutting_down()).then_some(state)
}

/// This instance's heartbeat and the versions it serves.
fn write_heartbeat(shared: &Shared, cluster: &Cluster, client: &mut Client) -> Result<(), StoreError> {
    let mut serving: BTreeMap<String, u64> = BTreeMap::new();
    for agent in shared.agents_snapshot() {
        for (task, state) in agent.tasks.lock().iter() {
            if let Some(live) = &state.model {
                serving.insert(format!("{}/{task}", agent.name), live.version());
            }
        }
    }
    let started = std::time::UNIX_EPOCH + Duration::from_millis(cluster.started_ms());
    client
        .execute(
            "INSERT INTO onthefly_instances (instance_id, started_at, heartbeat_at, serving) VALUES ($1, $2, now(), $3) \
             ON CONFLICT (instance_id) DO UPDATE SET started_at = EXCLUDED.started_at, heartbeat_at = now(), \
             serving = EXCLUDED.serving",
            &[&cluster.instance_id(), &started, &serde_json::json!(serving)],
        )
        .map_err(classify)?;
    Ok(())
}

/// The group as the status shows it: the instances alive, and per task the
/// version published, the rows buffered, what each instance serves and who
/// holds its training lock.
fn group_status(
    cluster: &Cluster,
    client: &mut Client,
    published: &BTreeMap<(String, String), u64>,
    (buffered, evicted): (&PerTask, &PerTask),
) -> Result<ClusterStatus, StoreError> {
    let recent = (cluster.poll_interval().as_secs_f64() * 5.0).max(30.0);
    let mut status = ClusterStatus {
        instance_id: cluster.instance_id().to_string(),
        connected: true,
        refreshed_ms: Some(unix_millis(std::time::SystemTime::now())),
        ..ClusterStatus::default()
    };
    for row in client
        .query(
            "SELECT instance_id, heartbeat_at, serving FROM onthefly_instances \
             WHERE heartbeat_at > now() - make_interval(secs => $1)",
            &[&recent],
        )
        .map_err(classify)?
    {
        let serving: BTreeMap<String, u64> = serde_json::from_value(row.get(2)).unwrap_or_default();
        status.instances.insert(
            row.get(0),
            InstanceStatus {
                heartbeat_ms: unix_millis(row.get(1)),
                serving,
            },
        );
    }
    let mut tasks: BTreeMap<(String, String), ClusterTaskStatus> = BTreeMap::new();
    for key in published.keys().chain(buffered.keys()).chain(evicted.keys()) {
        tasks.entry(key.clone()).or_insert_with(|| ClusterTaskStatus {
            published_version: published.get(key).copied().unwrap_or(0),
            buffered: buffered.get(key).copied().unwrap_or(0),
            evicted: evicted.get(key).copied().unwrap_or(0),
            ..ClusterTaskStatus::default()
        });
    }
    for (instance, info) in &status.instances {
        for (name, version) in &info.serving {
            if let Some((agent, task)) = name.split_once('/') {
                if let Some(t) = tasks.get_mut(&(agent.to_string(), task.to_string())) {
                    t.serving.insert(instance.clone(), *version);
                }
            }
        }
    }
    let by_key: BTreeMap<i64, (String, String)> = tasks
        .keys()
        .map(|(agent, task)| (lock_key(agent, task), (agent.clone(), task.clone())))
        .collect();
    for row in client
        .query(
            "SELECT (l.classid::bigint << 32) | l.objid::bigint, a.application_name FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .map_err(classify)?
    {
        let (key, name): (i64, Option<String>) = (row.get(0), row.get(1));
        if let (Some(task), Some(holder)) = (by_key.get(&key), name.as_deref().and_then(instance_of)) {
            if let Some(t) = tasks.get_mut(task) {
                t.lock_holder = Some(holder.to_string());
            }
        }
    }
    for ((agent, task), t) in tasks {
        status.agents.entry(agent).or_default().insert(task, t);
    }
    Ok(status)
}
