//! What a store hands back at start-up ([`super::ExampleStore::recover`]),
//! read in one sequence for both backends: each backend answers the reads
//! of [`RecoveryReads`] inside one transaction of its own, and
//! [`recover_with`] puts them together.

use super::schema::Ranked;
use super::{id_from_stored, settled_count, Recovered, RecoveryLimits, ReplayMembers, StoreError, TaskRecord};
use crate::base::{ModelPerformance, TrainingExample};

/// The counts recovery needs: the performance records, the largest
/// example id and the largest update id (ids continue above both).
pub(super) const COUNTS_SQL: &str = "SELECT (SELECT count(*) FROM model_performance), \
     (SELECT COALESCE(max(id), 0) FROM training_examples), \
     (SELECT COALESCE(max(update_id), 0) FROM model_performance)";

/// The newest performance records, newest first, at most the number bound
/// to parameter `limit` (`$1` in PostgreSQL, `?1` in SQLite).
pub(super) fn newest_history_sql(columns: &str, limit: &str) -> String {
    format!("SELECT {columns} FROM model_performance ORDER BY update_id DESC LIMIT {limit}")
}

/// The reads of a recovery, answered by one backend inside one transaction.
pub(super) trait RecoveryReads {
    /// Marks the examples of `which` beyond the `n` first of each agent
    /// (or task) as it ranks them evicted; returns how many.
    fn evict_beyond(&mut self, which: Ranked, n: i64) -> Result<u64, StoreError>;
    /// The examples of one state, at most `n` per agent or task as `which`
    /// ranks them.
    fn ranked(&mut self, which: Ranked, n: i64) -> Result<Vec<TrainingExample>, StoreError>;
    /// The newest `n` performance records, newest first.
    fn newest_history(&mut self, n: i64) -> Result<Vec<ModelPerformance>, StoreError>;
    /// [`COUNTS_SQL`]'s row.
    fn counts(&mut self) -> Result<(i64, i64, i64), StoreError>;
    /// The examples each replay memory holds.
    fn replay_members(&mut self) -> Result<Vec<ReplayMembers>, StoreError>;
    /// The rows of [`super::SETTLED_COUNTS_SQL`]: agent, state, count.
    fn settled_rows(&mut self) -> Result<Vec<(String, String, i64)>, StoreError>;
    /// The rows of [`super::TASKS_SQL`].
    fn tasks(&mut self) -> Result<Vec<TaskRecord>, StoreError>;
    /// The rows of [`super::UPDATE_COUNTS_SQL`]: agent, kept, rolled back.
    fn update_rows(&mut self) -> Result<Vec<(String, i64, i64)>, StoreError>;
}

/// The recovery sequence, once for both stores: the buffers beyond their
/// bound evicted first, then each state's examples, the history, the next
/// id, the replay memories and the settled counts.
pub(super) fn recover_with(reads: &mut impl RecoveryReads, limits: &RecoveryLimits) -> Result<Recovered, StoreError> {
    let limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let evicted = match limits.buffered_per_agent {
        Some(n) => reads.evict_beyond(Ranked::Buffered, limit(n))?,
        None => 0,
    };
    // Held out beyond a window made smaller since they were stored: trained
    // (taken back like any evicted example), not left judging nothing,
    // uncounted, for good.
    let evicted = evicted
        + match limits.held_out_per_task {
            Some(n) => reads.evict_beyond(Ranked::HeldOut, limit(n))?,
            None => 0,
        };
    let buffered = match limits.buffered_per_agent {
        Some(n) => reads.ranked(Ranked::Buffered, limit(n))?,
        None => Vec::new(),
    };
    let mut held_out = match limits.held_out_per_task {
        Some(n) => reads.ranked(Ranked::HeldOut, limit(n))?,
        None => Vec::new(),
    };
    let mut kept = reads.ranked(Ranked::Kept, limit(limits.kept_per_agent))?;
    let mut pending_review = reads.ranked(Ranked::PendingReview, limit(limits.pending_per_task))?;
    let mut quarantined = reads.ranked(Ranked::Quarantined, limit(limits.pending_per_task))?;
    quarantined.sort_by_key(|e| e.id);
    held_out.sort_by_key(|e| e.id);
    kept.sort_by_key(|e| e.id);
    pending_review.sort_by_key(|e| e.id);
    let mut history = reads.newest_history(limit(limits.history))?;
    history.reverse();
    let (total, max_example, max_update) = reads.counts()?;
    let replay = reads.replay_members()?;
    let settled = reads
        .settled_rows()?
        .into_iter()
        .map(|(agent, state, n)| settled_count(agent, &state, n))
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = reads.tasks()?;
    let count = |n: i64| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a count of {n} updates")));
    let updates = reads
        .update_rows()?
        .into_iter()
        .map(|(agent, kept, rolled_back)| Ok((agent, count(kept)?, count(rolled_back)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Recovered {
        updates,
        tasks,
        replay,
        settled,
        quarantined,
        next_id: id_from_stored(max_example.max(max_update))? + 1,
        buffered,
        held_out,
        kept,
        pending_review,
        history,
        history_total: id_from_stored(total)?,
        evicted,
    })
}
