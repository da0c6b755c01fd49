//! At-least-once delivery.
//!
//! Messages flow consume → extract (batches on blocking threads, in order) → enqueue
//! on the producer → acknowledge. The acknowledger awaits deliveries in consumption
//! order and only then stores each input offset, so a committed offset never runs
//! ahead of an unacknowledged output. librdkafka auto-commits stored offsets; a
//! revoke commits them at once (see the consumer context). At most
//! `max_in_flight` messages are between consume and acknowledge: that bounds memory
//! and the duplicates a crash can cause. On stop, consuming ends, in-flight outputs
//! are awaited up to the drain bound, and stored offsets are committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, Producer};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::process::Processed;
use super::{count, process_batch, produce_outcome, IngestConsumer};
use crate::config::Config;
use crate::health::Health;
use crate::metrics::IngestMetrics;

/// One message waiting for its output to be acknowledged.
struct Pending {
    processed: Processed,
    delivery: Option<DeliveryFuture>,
    _permit: OwnedSemaphorePermit,
}

pub async fn run(
    config: &Config,
    metrics: IngestMetrics,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(config, metrics, health, stop, super::process::process).await
}

/// [`run`] with another transform (the benchmarks' pass-through).
pub async fn run_with(
    config: &Config,
    metrics: IngestMetrics,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
    transform: super::Transform,
) -> anyhow::Result<()> {
    let consumer = Arc::new(crate::kafka::group_consumer(
        &config.kafka,
        &config.ingest.group_id,
        &config.ingest.input_topic,
        crate::kafka::STORE_AFTER_ACK,
        (&metrics).into(),
        &health,
    )?);
    let producer = crate::kafka::stats_producer(
        &config.kafka,
        super::PRODUCER_DEFAULTS,
        metrics.producer_queue.clone(),
    )?;
    let options = cwmp_inform::Options {
        limits: config.limits.into(),
        charset: None,
    };
    let permits = Arc::new(Semaphore::new(config.ingest.max_in_flight));
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Pending>();
    let acker = tokio::spawn(acknowledge(
        consumer.clone(),
        ack_rx,
        metrics.clone(),
        health.clone(),
    ));

    let batch_max = config.ingest.batch_max_messages;
    let batches = futures::stream::unfold(consumer.clone(), move |consumer| async move {
        let batch = crate::kafka::recv_batch(&consumer, batch_max)
            .await
            .messages;
        Some((batch, consumer))
    });
    let mut batches = Box::pin(
        batches
            .map(move |messages| process_batch(messages, options, transform))
            // Two batches extract at once (one per core) and come out in order.
            .buffered(2),
    );

    let mut failure: Option<anyhow::Error> = None;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else { break };
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => {
                failure = Some(err);
                break;
            }
        };
        for mut processed in batch {
            health.progress();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .context("in-flight permits closed")?;
            metrics.in_flight.inc();
            let delivery = match produce_outcome(&producer, config, &mut processed).await {
                Ok(delivery) => delivery,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            if ack_tx
                .send(Pending {
                    processed,
                    delivery,
                    _permit: permit,
                })
                .is_err()
            {
                failure = Some(anyhow::anyhow!(
                    "the acknowledger stopped (a delivery failed)"
                ));
                break;
            }
        }
        if failure.is_some() {
            break;
        }
    }
    drop(batches);

    // Drain: no new input; wait for what is in flight, within the bound.
    health.set_draining();
    drop(ack_tx);
    let drain = Duration::from_millis(config.ingest.drain_timeout_ms);
    let started = Instant::now();
    tracing::info!(in_flight = metrics.in_flight.get(), "draining");
    let acked = match tokio::time::timeout(drain, acker).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(anyhow::anyhow!("acknowledger panicked: {join}")),
        Err(_) => {
            tracing::warn!(
                in_flight = metrics.in_flight.get(),
                "drain bound reached; unacknowledged inputs will be consumed again"
            );
            Ok(())
        }
    };
    let left = drain.saturating_sub(started.elapsed());
    if let Err(err) = producer.flush(left.max(Duration::from_millis(100))) {
        tracing::warn!(%err, "producer flush at shutdown");
    }
    crate::kafka::commit_stored(&consumer);
    tracing::info!("ingest stopped");
    match (failure, acked) {
        (Some(err), _) | (None, Err(err)) => Err(err),
        (None, Ok(())) => Ok(()),
    }
}

/// Awaits deliveries in consumption order and stores each input offset after its
/// output is acknowledged. Stops at the first failed delivery: storing anything
/// after it could commit past a lost output.
async fn acknowledge(
    consumer: Arc<IngestConsumer>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    metrics: IngestMetrics,
    health: Arc<Health>,
) -> anyhow::Result<()> {
    while let Some(p) = pending.recv().await {
        let message = &p.processed.message;
        if let Some(delivery) = p.delivery {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((err, _))) => {
                    return Err(anyhow::anyhow!(
                        "output of {}/{}@{} was not delivered: {err}",
                        message.topic(),
                        message.partition(),
                        message.offset()
                    ))
                }
                Err(_) => return Err(anyhow::anyhow!("the producer dropped a delivery")),
            }
        }
        if let Err(err) =
            consumer.store_offset(message.topic(), message.partition(), message.offset())
        {
            // The partition was revoked meanwhile: its new owner consumes it again.
            tracing::debug!(%err, partition = message.partition(), "offset not stored");
        }
        metrics
            .ack_latency_seconds
            .observe(p.processed.received.elapsed().as_secs_f64());
        metrics.in_flight.dec();
        count(&metrics, &p.processed);
        health.progress();
    }
    Ok(())
}
