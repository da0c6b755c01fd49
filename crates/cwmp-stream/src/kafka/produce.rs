//! Producers: creation, enqueue with backpressure, delivery reports, and how an
//! input's position is written in errors and logs.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use prometheus::IntGauge;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::context::ProducerStatsContext;
use super::properties::producer_config;
use crate::config::KafkaConfig;

/// A producer that reports its queue depth.
pub type StatsProducer = FutureProducer<ProducerStatsContext>;

/// Creates a producer with our properties (then the passthrough maps) that reports
/// its queue depth to `queue`.
pub fn stats_producer(
    kafka: &KafkaConfig,
    ours: &[(&str, &str)],
    queue: IntGauge,
) -> anyhow::Result<StatsProducer> {
    producer_config(kafka, ours)
        .create_with_context(ProducerStatsContext { queue })
        .context("creating the Kafka producer")
}

/// Enqueues one record, waiting while the producer queue is full (backpressure, not
/// an error). Other errors are returned with nothing enqueued.
pub async fn enqueue<C: rdkafka::ClientContext + 'static>(
    producer: &FutureProducer<C>,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    let mut wait = Duration::from_millis(1);
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
            Err((err, _)) => return Err(err),
        }
    }
}

/// Why an enqueued message was not delivered.
#[derive(Debug)]
pub enum Undelivered {
    /// The broker (or librdkafka, after its retries) refused it.
    Refused { topic: String, error: KafkaError },
    /// The producer went away before reporting.
    Dropped,
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undelivered::Refused { topic, error } => {
                write!(f, "a message to {topic} was not delivered: {error}")
            }
            Undelivered::Dropped => f.write_str("the producer dropped a delivery"),
        }
    }
}

impl std::error::Error for Undelivered {}

/// Waits for the delivery report of one enqueued message.
pub async fn delivered(delivery: DeliveryFuture) -> Result<(), Undelivered> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, message))) => Err(Undelivered::Refused {
            topic: message.topic().to_owned(),
            error,
        }),
        Err(_) => Err(Undelivered::Dropped),
    }
}

/// Where a message sits, written `topic/partition@offset`.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl<'a> Position<'a> {
    pub fn of(message: &'a impl Message) -> Self {
        Position {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        }
    }
}

impl fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    #[test]
    fn positions_read_topic_partition_offset() {
        let m = OwnedMessage::new(
            None,
            None,
            "t".into(),
            Timestamp::NotAvailable,
            3,
            991,
            None,
        );
        assert_eq!(Position::of(&m).to_string(), "t/3@991");
    }
}
