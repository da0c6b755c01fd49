//! `cwmp-stream ingest`: raw Informs from Kafka to device-keyed EventRecords.
//!
//! One input message gives one output: an EventRecord (Inform) or a TransferRecord
//! (`TransferComplete`, `AutonomousTransferComplete`, attributed to its device by
//! [`sessions`]) on the output topic (key = device id, header `cwmp-rpc` = the
//! record type), the original bytes on the dead-letter topic, or nothing for a
//! well-formed CWMP message of another RPC (counted by RPC name). Delivery is
//! chosen in the configuration: [`at_least_once`] or [`exactly_once`].

pub mod at_least_once;
pub mod exactly_once;
pub mod metrics;
pub mod process;
pub mod sessions;

pub use metrics::IngestMetrics;

use std::sync::Arc;

use anyhow::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use tokio::sync::watch;

use crate::config::{Config, Delivery};
use crate::health::Health;
use crate::kafka::{enqueue, Position};
use process::{dlq_headers, Outcome, Processed};

/// Runs the service until `stop` turns true (then drains) or a fatal error.
pub async fn run(
    config: &Config,
    metrics: IngestMetrics,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tracing::info!(
        delivery = %config.ingest.delivery,
        input = %config.ingest.input_topic,
        output = %config.ingest.output_topic,
        dlq = %config.ingest.dlq_topic,
        "ingest starting"
    );
    match config.ingest.delivery {
        Delivery::AtLeastOnce => {
            at_least_once::run_with(config, metrics, health, stop, process::process).await
        }
        Delivery::ExactlyOnce => exactly_once::run(config, metrics, health, stop).await,
    }
}

pub(crate) type IngestConsumer = crate::kafka::GroupConsumer;
pub(crate) type IngestProducer = crate::kafka::StatsProducer;

/// Enqueues the output of one processed message. A record refused for what it is
/// (too large for the output topic, say) goes to the dead-letter topic instead, so
/// that it is neither lost nor retried forever; any other refusal is an error.
/// `None` for a skip.
pub(crate) async fn produce_outcome(
    producer: &IngestProducer,
    config: &Config,
    processed: &mut Processed,
) -> anyhow::Result<Option<DeliveryFuture>> {
    if let Outcome::Record {
        key,
        payload,
        event_time_ms,
        rpc,
        ..
    } = &processed.outcome
    {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: cwmp_record::RPC_HEADER,
            value: Some(*rpc),
        });
        let mut record = FutureRecord::to(&config.ingest.output_topic)
            .key(key.as_bytes())
            .payload(payload.as_slice())
            .headers(headers);
        if let Some(ts) = event_time_ms {
            record = record.timestamp(*ts);
        }
        match enqueue(producer, record).await {
            Ok(delivery) => return Ok(Some(delivery)),
            Err(err) if refused_for_the_message(&err) => {
                tracing::warn!(%err, "output refused by the producer; sending the input to the DLQ");
                processed.outcome = Outcome::Dlq {
                    kind: "produce_failed",
                    message: format!("the EventRecord could not be produced: {err}"),
                };
            }
            // Anything else (an unauthorized or unknown topic, a fenced or failed
            // transaction) is about the service, not this input: fail, and let the
            // input be consumed again once the cause is fixed.
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!(
                    "producing the EventRecord of input {}",
                    Position::of(&processed.message)
                )))
            }
        }
    }
    if let Outcome::Transfer(t) = &processed.outcome {
        // Every batch is attributed before it is produced (SessionTable::attribute);
        // a transfer that still missed it must not vanish as a skip.
        processed.outcome = Outcome::Dlq {
            kind: "unattributed",
            message: format!(
                "{} reached the output without being attributed to a device",
                t.transfer.rpc()
            ),
        };
    }
    match &processed.outcome {
        Outcome::Dlq { kind, message } => {
            let delivery = enqueue(
                producer,
                dlq_record(config, &processed.message, kind, message),
            )
            .await
            .with_context(|| {
                format!(
                    "the dead-letter topic refused input {}",
                    Position::of(&processed.message)
                )
            })?;
            Ok(Some(delivery))
        }
        _ => Ok(None),
    }
}

/// Errors that no retry can cure, because they are about this record itself.
fn refused_for_the_message(err: &KafkaError) -> bool {
    matches!(
        err,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

fn dlq_record<'m>(
    config: &'m Config,
    message: &'m OwnedMessage,
    kind: &str,
    error: &str,
) -> FutureRecord<'m, [u8], [u8]> {
    let mut record = FutureRecord::to(&config.ingest.dlq_topic)
        .payload(message.payload().unwrap_or_default())
        .headers(dlq_headers(message, kind, error));
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(ts) = message.timestamp().to_millis() {
        record = record.timestamp(ts);
    }
    record
}

/// What turns an input message into an outcome: [`process::process`] in the service;
/// benchmarks substitute a pass-through to measure the Kafka path alone.
pub type Transform = fn(&OwnedMessage, &cwmp_inform::Options) -> Outcome;

/// Extracts a batch on a blocking thread, off the consumer's task.
pub(crate) async fn process_batch(
    messages: Vec<OwnedMessage>,
    options: cwmp_inform::Options,
    transform: Transform,
) -> anyhow::Result<Vec<Processed>> {
    let received = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        messages
            .into_iter()
            .map(|message| {
                let start = std::time::Instant::now();
                let outcome = transform(&message, &options);
                Processed {
                    message,
                    outcome,
                    received,
                    extract_seconds: start.elapsed().as_secs_f64(),
                }
            })
            .collect()
    })
    .await
    .context("extraction task failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_the_record_send_it_to_the_dlq() {
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(refused_for_the_message(&too_big));
        for transient in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::State,
            RDKafkaErrorCode::Fenced,
        ] {
            assert!(
                !refused_for_the_message(&KafkaError::MessageProduction(transient)),
                "{transient:?}"
            );
        }
    }
}
