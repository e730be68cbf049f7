//! The training system in Prometheus' text exposition format (version
//! 0.0.4): what the status says, as gauges and counters, plus two latency
//! histograms the status has no room for (updates and predictions, per
//! agent and task).
//!
//! Counters count since this process started, except the example counters,
//! which start from the store's counts (see `Coordinator::restore`).

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

use crate::status::{AgentStatus, TrainingStatus};
use crate::store::StoreStatus;

/// Upper bounds of the latency histograms' buckets, in seconds: from half
/// a millisecond (a prediction) to ten seconds (an update of a large model).
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (cumulative only when rendered).
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BOUNDS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(at) = BOUNDS.iter().position(|&b| seconds <= b) {
            self.buckets[at] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Latencies of one (agent, task).
#[derive(Debug, Clone, Default)]
struct TaskLatencies {
    updates: Histogram,
    predictions: Histogram,
    /// Inputs predicted (a batch call counts each input).
    inputs: u64,
}

/// The latencies of every (agent, task), kept by the coordinator.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    /// By agent, then task: looked up by `&str` on every prediction, so a
    /// known (agent, task) costs no allocation.
    agents: Mutex<BTreeMap<String, BTreeMap<String, TaskLatencies>>>,
}

impl Latencies {
    /// One update of (agent, task) took `seconds` (kept or rolled back).
    pub fn update(&self, agent: &str, task: &str, seconds: f64) {
        self.with(agent, task, |t| t.updates.observe(seconds));
    }

    /// A prediction call for `inputs` inputs took `seconds`.
    pub fn predictions(&self, agent: &str, task: &str, inputs: usize, seconds: f64) {
        self.with(agent, task, |t| {
            t.predictions.observe(seconds);
            t.inputs += inputs as u64;
        });
    }

    fn with(&self, agent: &str, task: &str, f: impl FnOnce(&mut TaskLatencies)) {
        let mut agents = self.agents.lock();
        if !agents.contains_key(agent) {
            agents.insert(agent.to_string(), BTreeMap::new());
        }
        let tasks = agents.get_mut(agent).expect("inserted above");
        if !tasks.contains_key(task) {
            tasks.insert(task.to_string(), TaskLatencies::default());
        }
        f(tasks.get_mut(task).expect("inserted above"));
    }

    /// (agent, task, latencies) of every task, copied.
    fn snapshot(&self) -> Vec<(String, String, TaskLatencies)> {
        let agents = self.agents.lock();
        agents
            .iter()
            .flat_map(|(agent, tasks)| tasks.iter().map(|(task, t)| (agent.clone(), task.clone(), t.clone())))
            .collect()
    }
}

/// Which histogram of a task's latencies a family shows.
type PickHistogram = fn(&TaskLatencies) -> &Histogram;

/// The text exposition of `status` and `latencies`.
pub(crate) fn render(status: &TrainingStatus, latencies: &Latencies) -> String {
    let mut out = Exposition::default();
    agent_families(&mut out, status);
    latency_families(&mut out, latencies);
    if let Some(store) = &status.store {
        store_families(&mut out, store);
    }
    out.text
}

/// The families of each agent's counters and of its tasks' models and
/// review queues.
fn agent_families(out: &mut Exposition, status: &TrainingStatus) {
    out.family("onthefly_training", "gauge", "1 while any agent is updating");
    out.sample("onthefly_training", &[], f64::from(u8::from(status.is_training)));
    let received = Family(
        "onthefly_examples_received_total",
        "counter",
        "examples accepted, per agent",
    );
    out.per_agent(&received, status, |a| a.examples_received as f64);
    out.family(
        "onthefly_examples",
        "gauge",
        "examples per state, per agent (each accepted example is in one state)",
    );
    for (agent, a) in &status.agents {
        for (state, n) in [
            ("buffered", a.buffer_size as u64),
            ("held_out", a.examples_held_out),
            ("trained", a.examples_trained),
            ("evicted", a.examples_evicted),
            ("discarded", a.examples_discarded),
            ("quarantined", a.examples_quarantined),
            ("failed", a.examples_failed),
            ("kept", a.examples_kept),
        ] {
            out.sample("onthefly_examples", &[("agent", agent), ("state", state)], n as f64);
        }
    }
    let capacity = Family(
        "onthefly_buffer_capacity",
        "gauge",
        "most examples an agent's buffer holds",
    );
    out.per_agent(&capacity, status, |a| a.buffer_capacity as f64);
    out.family("onthefly_updates_total", "counter", "updates per agent, by outcome");
    for (agent, a) in &status.agents {
        for (outcome, n) in [
            ("accepted", a.updates_accepted),
            ("rolled_back", a.updates_rolled_back),
            ("failed", a.updates_failed),
        ] {
            out.sample(
                "onthefly_updates_total",
                &[("agent", agent), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    out.family(
        "onthefly_model_version",
        "gauge",
        "version of the live model, per agent and task",
    );
    out.family(
        "onthefly_review_queue",
        "gauge",
        "items waiting for a person's label, per agent and task",
    );
    for (agent, a) in &status.agents {
        for (task, m) in &a.models {
            out.sample(
                "onthefly_model_version",
                &[("agent", agent), ("task", task)],
                m.version as f64,
            );
        }
        for (task, r) in &a.reviews {
            out.sample(
                "onthefly_review_queue",
                &[("agent", agent), ("task", task)],
                r.queued as f64,
            );
        }
    }
}

/// The histograms of update and prediction times, and the predictions,
/// per agent and task.
fn latency_families(out: &mut Exposition, latencies: &Latencies) {
    let tasks = latencies.snapshot();
    let histograms: [(&str, &str, PickHistogram); 2] = [
        (
            "onthefly_update_duration_seconds",
            "time of an update (train, judge, commit), per agent and task",
            |t| &t.updates,
        ),
        (
            "onthefly_prediction_duration_seconds",
            "time of a prediction call, per agent and task",
            |t| &t.predictions,
        ),
    ];
    for (name, help, of) in histograms {
        out.family(name, "histogram", help);
        for (agent, task, t) in &tasks {
            out.histogram(name, agent, task, of(t));
        }
    }
    out.family(
        "onthefly_predictions_total",
        "counter",
        "inputs predicted, per agent and task",
    );
    for (agent, task, t) in &tasks {
        out.sample(
            "onthefly_predictions_total",
            &[("agent", agent), ("task", task)],
            t.inputs as f64,
        );
    }
}

/// A family of one sample: its name, type and help.
struct Family(&'static str, &'static str, &'static str);

/// The store writer's families, in the order of [`store_families`]' values.
const STORE_FAMILIES: [Family; 8] = [
    Family(
        "onthefly_store_operations_received_total",
        "counter",
        "operations handed to the store's writer",
    ),
    Family(
        "onthefly_store_operations_durable_total",
        "counter",
        "of those, in the database or the fsynced spool",
    ),
    Family(
        "onthefly_store_operations_written_total",
        "counter",
        "of those, in the database",
    ),
    Family(
        "onthefly_store_operations_rejected_total",
        "counter",
        "operations the database refused, set aside",
    ),
    Family("onthefly_store_backlog", "gauge", "operations waiting in memory"),
    Family(
        "onthefly_store_spooled",
        "gauge",
        "operations waiting in the spool file",
    ),
    Family("onthefly_store_spool_bytes", "gauge", "size of the spool file"),
    Family("onthefly_store_connected", "gauge", "1 while the database answers"),
];

/// The connection pool's families, in the order of [`store_families`]' values.
const POOL_FAMILIES: [Family; 5] = [
    Family("onthefly_store_pool_connections", "gauge", "connections open"),
    Family("onthefly_store_pool_in_use", "gauge", "connections in use"),
    Family("onthefly_store_pool_idle", "gauge", "connections idle"),
    Family("onthefly_store_pool_max", "gauge", "most connections"),
    Family(
        "onthefly_store_pool_waits_total",
        "counter",
        "times a connection was waited for",
    ),
];

/// The store writer's counters and its connection pool.
fn store_families(out: &mut Exposition, store: &StoreStatus) {
    let backend = [("backend", store.backend.as_str())];
    let writer = [
        store.received,
        store.durable,
        store.written,
        store.rejected,
        store.backlog,
        store.spooled,
        store.spool_bytes,
        u64::from(store.connected),
    ];
    out.scalars(&backend, &STORE_FAMILIES, writer);
    if let Some(pool) = &store.pool {
        let connections = [
            u64::from(pool.connections),
            u64::from(pool.in_use),
            u64::from(pool.idle),
            u64::from(pool.max_size),
            pool.waits,
        ];
        out.scalars(&backend, &POOL_FAMILIES, connections);
    }
}

/// The text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one sample per agent.
    fn per_agent(&mut self, family: &Family, status: &TrainingStatus, value: impl Fn(&AgentStatus) -> f64) {
        let Family(name, kind, help) = family;
        self.family(name, kind, help);
        for (agent, a) in &status.agents {
            self.sample(name, &[("agent", agent)], value(a));
        }
    }

    /// Families of one sample each, the `i`-th of `families` with the `i`-th value.
    fn scalars<const N: usize>(&mut self, labels: &[(&str, &str)], families: &[Family; N], values: [u64; N]) {
        for (Family(name, kind, help), value) in families.iter().zip(values) {
            self.family(name, kind, help);
            self.sample(name, labels, value as f64);
        }
    }

    fn histogram(&mut self, name: &str, agent: &str, task: &str, h: &Histogram) {
        let mut cumulative = 0;
        for (bound, n) in BOUNDS.iter().zip(h.buckets) {
            cumulative += n;
            let le = bound.to_string();
            self.sample(
                &format!("{name}_bucket"),
                &[("agent", agent), ("task", task), ("le", &le)],
                cumulative as f64,
            );
        }
        let labels = [("agent", agent), ("task", task)];
        self.sample(
            &format!("{name}_bucket"),
            &[labels[0], labels[1], ("le", "+Inf")],
            h.count as f64,
        );
        self.sample(&format!("{name}_sum"), &labels, h.sum);
        self.sample(&format!("{name}_count"), &labels, h.count as f64);
    }
}

/// A label value as the format wants it: backslash, double quote and line
/// feed escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::default();
        for s in [0.0001, 0.003, 0.003, 20.0] {
            h.observe(s);
        }
        let mut out = Exposition::default();
        out.histogram("t", "a\"b", "c\\d\ne", &h);
        assert!(
            out.text
                .contains("t_bucket{agent=\"a\\\"b\",task=\"c\\\\d\\ne\",le=\"0.0005\"} 1\n"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("le=\"0.005\"} 3\n") && out.text.contains("le=\"10\"} 3\n"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("le=\"+Inf\"} 4\n") && out.text.contains("t_count{"),
            "{}",
            out.text
        );
    }
}
