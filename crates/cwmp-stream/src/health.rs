//! Liveness and readiness, shared by the workers and the HTTP listener.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What `/readyz` decides from: partitions assigned, progress, lag.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    stall_after: Duration,
    assigned: AtomicI64,
    lag: AtomicI64,
    /// Milliseconds since `start` of the last consumed message (or assignment).
    last_progress_ms: AtomicU64,
    draining: AtomicBool,
    /// Every broker unreachable (a consumer's error callback; cleared by its statistics).
    kafka_down: AtomicBool,
    /// Partitions whose detector state is being restored (detect).
    restoring: AtomicI64,
}

impl Health {
    pub fn new(stall_after: Duration) -> Self {
        Health {
            start: Instant::now(),
            stall_after,
            assigned: AtomicI64::new(0),
            lag: AtomicI64::new(0),
            last_progress_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            kafka_down: AtomicBool::new(false),
            restoring: AtomicI64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn set_assigned(&self, partitions: i64) {
        self.assigned.store(partitions, Ordering::Relaxed);
        self.progress();
    }

    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    pub fn progress(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn set_kafka_down(&self, down: bool) {
        self.kafka_down.store(down, Ordering::Relaxed);
    }

    /// How many assigned partitions are having their state restored: not ready
    /// until none is.
    pub fn set_restoring(&self, partitions: i64) {
        self.restoring.store(partitions, Ordering::Relaxed);
        self.progress();
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// `Ok` when ready; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining for shutdown".to_owned());
        }
        if self.kafka_down.load(Ordering::Relaxed) {
            return Err("Kafka unreachable: every broker is down".to_owned());
        }
        let restoring = self.restoring.load(Ordering::Relaxed);
        if restoring > 0 {
            return Err(format!(
                "restoring the detector state of {restoring} partition(s)"
            ));
        }
        let assigned = self.assigned.load(Ordering::Relaxed);
        if assigned <= 0 {
            return Err("no input partitions assigned".to_owned());
        }
        let idle = Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_progress_ms.load(Ordering::Relaxed)),
        );
        let lag = self.lag.load(Ordering::Relaxed);
        if lag > 0 && idle > self.stall_after {
            return Err(format!(
                "stalled: {lag} messages behind and nothing consumed for {}s",
                idle.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_rules() {
        let h = Health::new(Duration::from_millis(0));
        assert!(h.readiness().is_err(), "nothing assigned");
        h.set_assigned(3);
        assert!(h.readiness().is_ok());
        h.set_lag(10);
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.readiness().expect_err("stalled").contains("stalled"));
        h.set_lag(0);
        assert!(h.readiness().is_ok(), "idle without lag is fine");
        h.set_kafka_down(true);
        assert!(h
            .readiness()
            .expect_err("down")
            .contains("Kafka unreachable"));
        h.set_kafka_down(false);
        assert!(h.readiness().is_ok());
        h.set_restoring(2);
        assert!(h.readiness().expect_err("restoring").contains("restoring"));
        h.set_restoring(0);
        assert!(h.readiness().is_ok());
        h.set_draining();
        assert!(h.readiness().is_err());
    }
}
