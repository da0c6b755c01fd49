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
use rdkafka::producer::{DeliveryFuture, Producer};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::process::Processed;
use super::{process_batch, produce_outcome, IngestConsumer, IngestMetrics, IngestProducer};
use crate::config::Config;
use crate::health::Health;
use crate::kafka::properties::{producer_defaults, STORE_AFTER_ACK};
use crate::kafka::{delivered, store_offset, Position};

/// One message waiting for its output to be acknowledged.
struct Pending {
    processed: Processed,
    delivery: Option<DeliveryFuture>,
    _permit: OwnedSemaphorePermit,
}

/// Runs at-least-once ingest with `transform` ([`super::process::process`] in the
/// service; the benchmarks' pass-through to measure the Kafka path alone).
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
        STORE_AFTER_ACK,
        metrics.consumer.clone(),
        &health,
    )?);
    let producer = crate::kafka::stats_producer(
        &config.kafka,
        &producer_defaults(),
        metrics.producer_queue.clone(),
    )?;
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Pending>();
    let acker = tokio::spawn(acknowledge(
        consumer.clone(),
        ack_rx,
        metrics.clone(),
        health.clone(),
    ));
    let io = Io {
        config,
        consumer: &consumer,
        producer: &producer,
        metrics: &metrics,
        health: &health,
    };
    // Returns on stop or on the first failure; `ack_tx` goes with it, which tells the
    // acknowledger that nothing more is coming.
    let consumed = consume(io, &mut stop, transform, ack_tx).await;

    // Drain: no new input; wait for what is in flight, within the bound.
    health.set_draining();
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
    // When both failed, the acknowledger's error names the lost delivery; the
    // consuming loop's only says that the acknowledger stopped.
    match (consumed, acked) {
        (_, Err(err)) | (Err(err), Ok(())) => Err(err),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// What the consuming loop works with.
#[derive(Clone, Copy)]
struct Io<'a> {
    config: &'a Config,
    consumer: &'a Arc<IngestConsumer>,
    producer: &'a IngestProducer,
    metrics: &'a IngestMetrics,
    health: &'a Health,
}

/// Consumes, extracts and enqueues until `stop` turns true; hands each enqueued
/// output to the acknowledger. At most `max_in_flight` messages are unacknowledged.
async fn consume(
    io: Io<'_>,
    stop: &mut watch::Receiver<bool>,
    transform: super::Transform,
    ack_tx: mpsc::UnboundedSender<Pending>,
) -> anyhow::Result<()> {
    let Io {
        config,
        consumer,
        producer,
        metrics,
        health,
    } = io;
    let options = cwmp_inform::Options {
        limits: config.limits,
        charset: None,
    };
    let permits = Arc::new(Semaphore::new(config.ingest.max_in_flight));
    let mut sessions = super::sessions::SessionTable::new(config.ingest.sessions);
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
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else { return Ok(()) };
        let mut batch = batch?;
        sessions.attribute(&mut batch, metrics);
        for mut processed in batch {
            health.progress();
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .context("in-flight permits closed")?;
            metrics.in_flight.inc();
            let delivery = produce_outcome(producer, config, &mut processed).await?;
            ack_tx
                .send(Pending {
                    processed,
                    delivery,
                    _permit: permit,
                })
                .map_err(|_| anyhow::anyhow!("the acknowledger stopped (a delivery failed)"))?;
        }
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
            delivered(delivery)
                .await
                .with_context(|| format!("the output of input {}", Position::of(message)))?;
        }
        store_offset(&*consumer, message);
        metrics.in_flight.dec();
        metrics.count(&p.processed);
        health.progress();
    }
    Ok(())
}
