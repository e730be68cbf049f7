//! Bursts are not lost to training: an example a full buffer pushes out is
//! only marked `evicted` in the store, and once the trainer has caught up
//! with the arrivals (the buffer is below the update threshold) it takes
//! evicted examples back from the store, the most valuable first, and
//! trains them like any other. In the fast regime of the news stream (the
//! caller never waits), most of a burst used to leave the buffer untrained.
//!
//! With several instances the rows go back to `buffered` in the shared
//! table (a row another session holds is skipped), where any instance's
//! claim takes them. An instance takes back any evicted rows of the agent
//! once an eviction of its own (or its start) says there may be some, so
//! its counters may count as received what another instance evicted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::agent::AgentState;
use crate::buffer::Insert;
use crate::runtime::Shared;

/// How long taking back waits for the store writer to write the evictions
/// handed to it (they are then visible to the query).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes evicted examples of `agent` back into its buffer when the trainer
/// has caught up: up to one update's worth, never more than the buffer has
/// room for. Returns whether the agent should update again at once: some
/// came back, or an eviction happened meanwhile (it may have missed the
/// query). Not after an error: the next eviction or update tries again.
pub(crate) fn reclaim_evicted(shared: &Shared, agent: &AgentState) -> bool {
    let Some(store) = &shared.store else { return false };
    if shared.is_shutting_down() || !agent.may_reclaim.load(Ordering::Acquire) {
        return false;
    }
    let room = {
        let buffer = agent.buffer.lock();
        if buffer.len() >= shared.config.update_threshold {
            return false; // Still behind the arrivals: they come first.
        }
        buffer.capacity() - buffer.len()
    };
    let limit = room.min(shared.config.max_examples_per_update);
    if limit == 0 {
        return false;
    }
    // Cleared first: an eviction from now on sets it again.
    agent.may_reclaim.store(false, Ordering::Release);
    let taken = store.flush(FLUSH_TIMEOUT).and_then(|()| {
        // Flushed may mean spooled: the evictions are then not in the
        // database yet, and the query would find none of them.
        let written = store.status();
        if written.spooled > 0 || !written.connected {
            return Err(crate::store::StoreError::Unavailable(
                "the database has not caught up with the writer's spool yet".into(),
            ));
        }
        store.store().reclaim_evicted(&agent.name, limit)
    });
    let examples = match taken {
        Ok(examples) => examples,
        Err(e) => {
            agent.may_reclaim.store(true, Ordering::Release);
            tracing::warn!(agent = %agent.name, error = %e, "evicted examples not taken back");
            agent.note_error(format!("evicted examples not taken back from the store: {e}"));
            return false;
        }
    };
    // Set again by an eviction since it was cleared: the query may have missed it.
    let evicted_meanwhile = agent.may_reclaim.load(Ordering::Acquire);
    if examples.len() == limit {
        agent.may_reclaim.store(true, Ordering::Release); // There may be more.
    }
    let n = examples.len();
    let mut buffer = agent.buffer.lock();
    let mut stats = agent.stats.lock();
    stats.examples_taken_back += n as u64;
    for example in examples {
        // Evicted in this run: counted as evicted, now buffered again.
        // Evicted in an earlier run: not received in this one until now.
        match stats.examples_evicted {
            0 => stats.examples_received += 1,
            _ => stats.examples_evicted -= 1,
        }
        // Arrivals since the check may have taken the room: the least
        // valuable then leaves again, to be taken back later.
        if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = buffer.insert(example) {
            shared.record_eviction(agent, &mut stats, gone.id);
        }
    }
    if n > 0 {
        tracing::info!(agent = %agent.name, examples = n, "evicted examples taken back from the store");
    }
    n > 0 || evicted_meanwhile
}
