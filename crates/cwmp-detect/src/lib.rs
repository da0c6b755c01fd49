//! Fleet detectors over EventRecords, in event time.
//!
//! Records go into a [`Worker`] in arrival order. A worker drops records older than
//! its watermark (counted as late, never folded in): the smallest of the latest
//! event times of its input partitions that still have a backlog (the latest of all
//! once every partition is caught up), minus the allowed lateness. It also drops
//! redeliveries (the same raw-input `source` as one of the device's last two
//! records), runs the per-device detectors (`reboot_loop`, and
//! `wakeup_rate` per device), and counts the fleet measures per scope and key in
//! sliding windows. Closed windows leave the worker as [`aggregate::Partial`]s; a
//! [`Fleet`] stage merges them from every worker and decides the fleet alerts
//! (`boot_storm`, `acs_mass_reboot`, `bootstrap_wave`, `wakeup_rate` per product
//! class, `retry_storm`) against baselines learned from calm windows.
//!
//! Nothing here reads a clock or iterates a hash map into its output: the same
//! records in the same order give the same alerts, byte for byte, and
//! [`Pipeline`] (worker and fleet stage in one process) gives what the Kafka path
//! gives with any number of workers.

pub mod aggregate;
mod alert;
mod config;
mod device;
mod fleet;
mod observation;
mod pipeline;
mod silence;
pub mod snapshot;
mod time;
pub mod worker;

pub use aggregate::AggregateMessage;
pub use alert::{Alert, AlertKind, AlertState, Scope};
pub use config::{
    ConfigError, DetectConfig, InformSilenceConfig, RebootLoopConfig, RetryStormConfig,
    RolloutFailureConfig, StormConfig, WakeupConfig,
};
pub use fleet::{Fleet, FleetStats, WindowCounts};
pub use observation::{Kinds, Observation, ObservationError, SourcePos, TransferObs};
pub use pipeline::Pipeline;
pub use snapshot::{SnapshotError, StateKind};
pub use worker::{source_of, Verdict, Worker, WorkerOutput, WorkerStats};
