//! The `cwmp-stream` services and the plumbing they share. The binary (`main.rs`,
//! with its flags in `cli.rs`) is a thin command line over these modules.
//!
//! Services, one module each:
//! - [`extract`]: the extractor over files (`cwmp-stream extract`);
//! - [`ingest`]: raw Informs from Kafka to device-keyed EventRecords and dead letters,
//!   at-least-once or exactly-once, with its metrics;
//! - [`detect`]: the detectors of `cwmp-detect` on Kafka (workers and the fleet
//!   stage), and `--replay` over a file, with its metrics;
//! - [`simulate`]: a simulated fleet's Informs to a topic;
//! - [`demo`]: all of the above in one process on an embedded broker, and its report.
//!
//! Shared by every service, at the bottom: [`kafka`] (client properties, contexts,
//! consuming, producing), [`input`] (the input contract: envelope, headers, receive
//! time), [`config`] (layered configuration), [`metrics`] (Prometheus conventions),
//! [`health`] and [`http`] (`/metrics`, `/healthz`, `/readyz`), [`shutdown`] (signals)
//! and [`telemetry`] (logs).

pub mod config;
pub mod demo;
pub mod detect;
pub mod extract;
pub mod health;
pub mod http;
pub mod ingest;
pub mod input;
pub mod kafka;
pub mod metrics;
pub mod shutdown;
pub mod simulate;
pub mod telemetry;
