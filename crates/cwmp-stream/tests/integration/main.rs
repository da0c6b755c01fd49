//! Integration tests of the `cwmp-stream` binary, run as a process.

mod extract;
mod ingest;
mod kafka_util;
mod process_faults;
