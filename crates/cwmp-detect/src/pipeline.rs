//! Worker and fleet stage in one process: what `cwmp-stream detect --replay` runs,
//! and what the Kafka path must agree with.

use crate::worker::{Verdict, WorkerOutput};
use crate::{Alert, DetectConfig, Fleet, Observation, Worker};

/// A worker feeding a fleet stage directly.
#[derive(Debug)]
pub struct Pipeline {
    pub worker: Worker,
    pub fleet: Fleet,
    scratch: Vec<WorkerOutput>,
}

impl Pipeline {
    /// Refuses settings that do not hold together.
    pub fn new(config: DetectConfig) -> Result<Self, crate::ConfigError> {
        Ok(Pipeline {
            worker: Worker::new(config.clone())?,
            fleet: Fleet::new(config)?,
            scratch: Vec::new(),
        })
    }

    /// Folds one record in; appends the alerts it decides, in decision order.
    pub fn observe(&mut self, obs: &Observation, alerts: &mut Vec<Alert>) -> Verdict {
        let verdict = self.worker.observe(0, obs, &mut self.scratch);
        for output in self.scratch.drain(..) {
            match output {
                WorkerOutput::Alert(a) => alerts.push(a),
                WorkerOutput::Aggregate(m) => self.fleet.apply(0, m, alerts),
            }
        }
        verdict
    }
}
