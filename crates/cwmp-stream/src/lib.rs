//! The `cwmp-stream` services: the offline extractor, the ingest service, and their
//! configuration, Kafka plumbing, metrics and health endpoints. The binary in
//! `main.rs` is a thin command line over these modules.

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
