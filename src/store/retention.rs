//! What retention deletes, in SQL both stores speak: settled examples past
//! their age or beyond their agent's count, never a replay memory's, each
//! agent's deleted rows counted first so the status counters survive.

use super::settings::RetentionConfig;

/// The states whose rows retention deletes: an example's way has ended.
/// Not `evicted`: an evicted example waits in the store for the trainer to
/// take it back (`crate::catch_up`); deleting it lost it untrained.
const RETIRABLE: &str =
    "state IN ('trained', 'discarded', 'failed', 'reviewed', 'quarantine_reviewed', 'unreviewed') AND NOT replay";

/// A value a retention statement binds, in the order of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// The oldest acceptance time kept ([`cutoff_ms`]).
    Cutoff,
    /// The settled rows kept per agent ([`keep_per_agent`]).
    Keep,
}

/// The two statements of one retention pass, run in one transaction: the
/// deleted rows counted per agent and state into `onthefly_retired`, then
/// deleted; with the values they bind, in order (`parameter(1)` is `$1`
/// in PostgreSQL, `?1` in SQLite). `None` when the policy deletes nothing.
pub(crate) fn retire_statements(
    policy: &RetentionConfig,
    parameter: impl Fn(usize) -> String,
) -> Option<([String; 2], Vec<Bound>)> {
    let mut bound = Vec::new();
    let mut parts = Vec::new();
    if policy.max_age_hours.is_some() {
        bound.push(Bound::Cutoff);
        parts.push(format!("({RETIRABLE} AND \"timestamp\" < {})", parameter(bound.len())));
    }
    if policy.max_settled_per_agent.is_some() {
        bound.push(Bound::Keep);
        parts.push(format!(
            "id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY agent_name ORDER BY id DESC) AS r \
             FROM training_examples WHERE {RETIRABLE}) AS ranked WHERE r > {})",
            parameter(bound.len())
        ));
    }
    if parts.is_empty() {
        return None;
    }
    let victims = parts.join(" OR ");
    Some((
        [
            format!(
                "INSERT INTO onthefly_retired (agent_name, state, retired) \
                 SELECT agent_name, state, count(*) FROM training_examples WHERE {victims} \
                 GROUP BY agent_name, state ON CONFLICT (agent_name, state) \
                 DO UPDATE SET retired = onthefly_retired.retired + excluded.retired"
            ),
            format!("DELETE FROM training_examples WHERE {victims}"),
        ],
        bound,
    ))
}

/// The oldest acceptance time kept, in milliseconds since the Unix epoch
/// (0 keeps everything when there is no age bound).
pub(crate) fn cutoff_ms(policy: &RetentionConfig, now_ms: u64) -> u64 {
    policy
        .max_age_hours
        .map_or(0, |hours| now_ms.saturating_sub((hours.max(0.0) * 3_600_000.0) as u64))
}

/// The count kept per agent, as the database's integer (the largest when
/// there is no count bound).
pub(crate) fn keep_per_agent(policy: &RetentionConfig) -> i64 {
    policy
        .max_settled_per_agent
        .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX))
}
