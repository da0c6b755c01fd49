//! Integration tests of the `cwmp-stream` binary, run as a process.

mod check_config;
mod demo;
mod deploy_metrics;
mod detect;
mod detect_faults;
mod extract;
mod http;
mod ingest;
mod kafka_util;
mod process_faults;
mod schemas;
mod simulate;
