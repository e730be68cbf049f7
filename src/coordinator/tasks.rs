//! What a task learns: declared by its agent ([`Coordinator::register_task`])
//! or fixed by its first target, and, for a classifier fed JSON, the form of
//! its labels, so that JSON targets are read by what the task can learn and
//! its answers go back in the form its labels came in.

use serde_json::Value;

use super::Coordinator;
use crate::agent::task_of_kind;
use crate::base::{read_target, LabelForm, Target, TargetKind, TaskShape};
use crate::error::Result;
use crate::store::{StoreOp, TaskRecord};

use super::validate::check_name;

impl Coordinator {
    /// Declares that `task_type` of `agent_name` learns `kind` of targets
    /// (a classifier for [`TargetKind::Label`], a regressor for
    /// [`TargetKind::Score`], a tagger for [`TargetKind::Tags`], kept for
    /// export for [`TargetKind::Json`]), before or after its first example.
    /// Declaring it again with the same kind does nothing; with another kind
    /// it is an error, as is a task whose examples fixed another kind. The
    /// declaration is stored: it holds after a restart.
    pub fn register_task(&self, agent_name: &str, task_type: &str, kind: TargetKind) -> Result<()> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        let agent = self.agent_or_create(agent_name);
        let form = {
            let mut tasks = agent.tasks.lock();
            task_of_kind(&mut tasks, agent_name, task_type, kind, limits.performance_window)?.label_form
        };
        self.shared.persist(StoreOp::Task(TaskRecord {
            agent_name: agent_name.to_string(),
            task_type: task_type.to_string(),
            target_kind: kind,
            label_form: form,
        }));
        Ok(())
    }

    /// Reads a target a caller wrote as JSON (the argument `field`) for
    /// `task_type` of `agent_name`, by what the task learns: a boolean or an integer is a label, or
    /// a score for a task that learns scores; a value the task cannot learn
    /// is an error that says what to pass. Returns the form of a label, for
    /// [`Coordinator::fix_label_form`] once the example is accepted.
    pub fn read_json_target(
        &self,
        agent_name: &str,
        task_type: &str,
        field: &'static str,
        value: Value,
    ) -> Result<(Target, Option<LabelForm>)> {
        let shape = self.task_shape(agent_name, task_type);
        Ok(read_target(agent_name, task_type, field, value, shape)?)
    }

    /// While (agent, task) has no form of labels yet (a new task, or a
    /// classifier not given a label written as JSON yet), a guard that makes
    /// the calls handing in its targets as JSON run one at a time, from
    /// reading the target ([`Coordinator::read_json_target`]) to fixing the
    /// form ([`Coordinator::fix_label_form`]): two threads handing in a new
    /// task's first labels in two forms (`true` and `7`) were both
    /// accepted, and the task answered one caller in the other's form.
    /// `None` once the form is fixed, or for a task of another kind.
    pub(crate) fn first_labels_guard(
        &self,
        agent_name: &str,
        task_type: &str,
    ) -> Option<parking_lot::MutexGuard<'_, ()>> {
        let unsettled = match self.task_shape(agent_name, task_type) {
            None => true,
            Some(shape) => shape.kind == TargetKind::Label && shape.form.is_none(),
        };
        unsettled.then(|| self.first_labels.lock())
    }

    /// Fixes the form of a classifier task's labels, if it has none yet (the
    /// first accepted label written as JSON fixes it), and stores it.
    pub fn fix_label_form(&self, agent_name: &str, task_type: &str, form: Option<LabelForm>) {
        let Some(form) = form else { return };
        let Ok(agent) = self.agent(agent_name) else { return };
        let kind = {
            let mut tasks = agent.tasks.lock();
            match tasks.get_mut(task_type) {
                Some(state) if state.target_kind == TargetKind::Label && state.label_form.is_none() => {
                    state.label_form = Some(form);
                    state.target_kind
                }
                _ => return,
            }
        };
        self.shared.persist(StoreOp::Task(TaskRecord {
            agent_name: agent_name.to_string(),
            task_type: task_type.to_string(),
            target_kind: kind,
            label_form: Some(form),
        }));
    }

    /// A target as JSON in the form the task's labels were given (`true`
    /// for a task labelled with booleans, `3` for class ids).
    pub fn target_json(&self, agent_name: &str, task_type: &str, target: &Target) -> Value {
        match (target, self.task_shape(agent_name, task_type)) {
            (Target::Label(label), Some(TaskShape { form: Some(form), .. })) => form.to_json(label),
            _ => target.to_json(),
        }
    }

    /// What the task expects, if it exists.
    fn task_shape(&self, agent_name: &str, task_type: &str) -> Option<TaskShape> {
        let agent = self.shared.agents.read().get(agent_name).cloned()?;
        let tasks = agent.tasks.lock();
        tasks.get(task_type).map(|state| TaskShape {
            kind: state.target_kind,
            form: state.label_form,
        })
    }

    /// Puts back the tasks the store kept (declared, or with a label form),
    /// before their examples: a declared kind holds over its examples'.
    pub(super) fn restore_tasks(&self, records: Vec<TaskRecord>) {
        let window = self.shared.config.performance_window;
        for record in records {
            let agent = self.agent_or_create(&record.agent_name);
            let mut tasks = agent.tasks.lock();
            match task_of_kind(
                &mut tasks,
                &record.agent_name,
                &record.task_type,
                record.target_kind,
                window,
            ) {
                Ok(state) => state.label_form = state.label_form.or(record.label_form),
                Err(e) => tracing::warn!(error = %e, "a stored task declaration disagrees with its examples"),
            }
        }
    }
}
