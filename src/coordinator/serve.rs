//! Serving predictions from the live models.

use super::validate::{check_input, check_name};
use super::{Coordinator, FeedbackOutcome, Prediction};
use crate::base::{ModelError, Target};
use crate::error::{Error, Result};
use crate::feedback::PredictionFeedback;

impl Coordinator {
    /// Predicts with the live model of an (agent, task). A prediction less
    /// confident than `predict_feedback_threshold` also waits in the task's
    /// review queue for a person's label (its `review_id`).
    pub fn predict(&self, agent_name: &str, task_type: &str, input_text: &str) -> Result<Prediction> {
        let (mut outputs, version) = self.model_outputs(agent_name, task_type, &[input_text])?;
        let output = outputs.remove(0);
        let mut prediction = Prediction {
            output: output.output,
            confidence: output.confidence,
            model_version: version,
            review_id: None,
        };
        // A score model's 0.5 says it does not know how sure it is (see
        // `models::head::score_answers`): not a reason to ask a person, or
        // every score would be queued.
        let unknown = matches!(prediction.output, Target::Score(_)) && prediction.confidence == 0.5;
        if prediction.confidence < self.shared.config.predict_feedback_threshold && !unknown {
            let feedback = PredictionFeedback {
                agent_name: agent_name.to_string(),
                task_type: task_type.to_string(),
                input_text: input_text.to_string(),
                predicted_output: prediction.output.clone(),
                actual_output: None,
                confidence_score: prediction.confidence.clamp(0.0, 1.0),
                source_url: String::new(),
            };
            // Queued for a person by this threshold alone: the feedback
            // rules' uncertainty threshold (0.6) is for answers an agent
            // reports, and would make any value above 0.4 here act as 0.4.
            if let FeedbackOutcome::AwaitingLabel { review_id, .. } =
                self.queue_for_review(feedback, &output.distribution)?
            {
                prediction.review_id = Some(review_id);
            }
        }
        Ok(prediction)
    }

    /// Predicts many inputs at once with the live model of an (agent, task),
    /// under one lock and one forward pass (faster per input than
    /// [`Coordinator::predict`]). Nothing goes to the feedback path: use it to
    /// evaluate or to score in bulk.
    pub fn predict_batch(&self, agent_name: &str, task_type: &str, inputs: &[&str]) -> Result<Vec<Prediction>> {
        let (outputs, version) = self.model_outputs(agent_name, task_type, inputs)?;
        Ok(outputs
            .into_iter()
            .map(|o| Prediction {
                output: o.output,
                confidence: o.confidence,
                model_version: version,
                review_id: None,
            })
            .collect())
    }

    /// The live model's outputs for `inputs` and the version that produced them.
    fn model_outputs(
        &self,
        agent_name: &str,
        task_type: &str,
        inputs: &[&str],
    ) -> Result<(Vec<crate::models::ModelOutput>, u64)> {
        // As every other call: an instance shut down serves nothing (it
        // served a prediction unless that prediction was to be queued).
        self.ensure_running()?;
        let started = std::time::Instant::now();
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        for input in inputs {
            check_input(input, limits.max_input_bytes)?;
        }
        let agent = self.agent(agent_name)?;
        let no_model = || Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        };
        let live = agent.live_model(task_type).ok_or_else(no_model)?;
        let model = live.serving();
        // Read under the same lock as the model, so the version matches the weights.
        let version = live.version();
        let outputs = match crate::models::predict_checked(model.as_ref(), inputs) {
            Err(ModelError::NotTrained(_)) => return Err(no_model()),
            other => other?,
        };
        drop(model);
        self.shared
            .latencies
            .predictions(agent_name, task_type, inputs.len(), started.elapsed().as_secs_f64());
        Ok((outputs, version))
    }
}
