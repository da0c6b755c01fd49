//! Kafka plumbing shared by every service (ingest, detect worker, fleet stage,
//! simulator, demo): nothing here knows what a service does with its messages.
//!
//! - [`properties`]: the librdkafka properties the services set, each with its
//!   reason, layered under the passthrough maps; the list `check-config` warns about.
//! - [`context`]: client contexts that turn librdkafka's logs, statistics and
//!   rebalances into `tracing` events, metrics and health.
//! - [`consume`]: group consumers, bounded waits for messages and batches, the
//!   assignment, storing and committing offsets.
//! - [`quiet`]: repeated client errors at a bounded rate, and broker outages.
//! - [`produce`]: producers, backpressured enqueue, delivery reports, and how an
//!   input position is written in messages.
//! - [`transaction`]: the bound of transactional calls and which failures abort.

pub mod consume;
pub mod context;
pub mod produce;
pub mod properties;
pub mod quiet;
pub mod transaction;

pub use consume::{
    assigned, commit_stored, consumer_error, group_consumer, partition_count, recv, recv_batch,
    store_offset, topic_partitions, Batch, GroupConsumer,
};
pub use context::{
    ClientErrorKind, ConsumerMetrics, GroupConsumerContext, ProducerStatsContext, RebalanceKind,
};
pub use produce::{delivered, enqueue, stats_producer, Position, StatsProducer, Undelivered};
pub use properties::{consumer_config, producer_config};
