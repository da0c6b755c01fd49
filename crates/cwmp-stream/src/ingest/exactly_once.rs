//! Exactly-once delivery: read-process-write in Kafka transactions.
//!
//! Each transaction holds one batch: its outputs and the next input offsets, sent to
//! the group coordinator inside the transaction. Readers of the output and DLQ
//! topics with `isolation.level=read_committed` see every input's output exactly
//! once. An abortable error aborts the transaction and rewinds the consumer to the
//! batch's first offsets; a fatal one (the producer was fenced by a newer instance
//! with the same `transactional.id`) stops the service with an error.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::metrics::TxnOutcome;
use super::{process_batch, produce_outcome, IngestConsumer, IngestMetrics, IngestProducer};
use crate::config::Config;
use crate::health::Health;
use crate::kafka::properties::{producer_defaults, TRANSACTIONAL_CONSUMER, TRANSACTIONAL_PRODUCER};
use crate::kafka::transaction::{classify, TxnError, TXN_TIMEOUT};

/// The transactional id: configured, or `<group_id>-<HOSTNAME>` (the pod name on Kubernetes).
pub fn transactional_id(config: &Config) -> String {
    if !config.ingest.transactional_id.is_empty() {
        return config.ingest.transactional_id.clone();
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    format!("{}-{host}", config.ingest.group_id)
}

pub async fn run(
    config: &Config,
    metrics: IngestMetrics,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let consumer = crate::kafka::group_consumer(
        &config.kafka,
        &config.ingest.group_id,
        &config.ingest.input_topic,
        TRANSACTIONAL_CONSUMER,
        metrics.consumer.clone(),
        &health,
    )?;
    let tid = transactional_id(config);
    let mut ours: Vec<(&str, &str)> = producer_defaults();
    ours.extend_from_slice(TRANSACTIONAL_PRODUCER);
    ours.push(("transactional.id", &tid));
    let producer =
        crate::kafka::stats_producer(&config.kafka, &ours, metrics.producer_queue.clone())?;
    producer
        .init_transactions(TXN_TIMEOUT)
        .context("initialising transactions")?;
    tracing::info!(transactional_id = %tid, "transactions initialised");
    let options = cwmp_inform::Options {
        limits: config.limits,
        charset: None,
    };
    let window = Duration::from_millis(config.ingest.transaction_max_ms);
    let mut backoff = Duration::from_millis(100);
    let mut sessions = super::sessions::SessionTable::new(config.ingest.sessions);
    loop {
        // Collect one batch: wait for a first message, then take what arrives within the window.
        let first = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            m = crate::kafka::recv(&consumer) => m,
        };
        let mut batch: Vec<OwnedMessage> = Vec::new();
        match first {
            Ok(m) => batch.push(m.detach()),
            Err(err) => {
                crate::kafka::consumer_error(&err);
                continue;
            }
        }
        // A rebalance from here on may move partitions of this batch elsewhere.
        consumer.context().rebalanced.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < config.ingest.batch_max_messages {
            match tokio::time::timeout_at(deadline, crate::kafka::recv(&consumer)).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(err)) => crate::kafka::consumer_error(&err),
                Err(_) => break,
            }
        }
        health.progress();
        if consumer.context().rebalanced.load(Ordering::SeqCst) {
            // The assignment changed under the batch. Partitions still ours go back to
            // the batch start; moved ones restart from their committed offsets.
            tracing::info!(
                dropped = batch.len(),
                "rebalance during a batch; it will be consumed again"
            );
            rewind(&consumer, &first_offsets(&batch));
            continue;
        }
        let starts = first_offsets(&batch);
        let mut processed = process_batch(batch, options, super::process::process).await?;
        sessions.attribute(&mut processed, &metrics);
        match transact(config, &consumer, &producer, &mut processed).await {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                metrics.transaction(TxnOutcome::Committed);
                for p in &processed {
                    metrics.count(p);
                }
            }
            Err(TxnError::Abortable(err)) => {
                metrics.transaction(TxnOutcome::Aborted);
                tracing::warn!(%err, "transaction aborted; the batch will be consumed again");
                if let Err(abort) = producer.abort_transaction(TXN_TIMEOUT) {
                    return Err(abort).context("aborting a transaction");
                }
                rewind(&consumer, &starts);
                // A cause that persists (an unauthorized topic, say) must not spin.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(TxnError::Fatal(err)) => return Err(err),
        }
    }
    health.set_draining();
    tracing::info!("ingest stopped");
    Ok(())
}

/// One transaction: outputs of the batch, then its input offsets, then commit.
async fn transact(
    config: &Config,
    consumer: &IngestConsumer,
    producer: &IngestProducer,
    processed: &mut [super::process::Processed],
) -> Result<(), TxnError> {
    producer
        .begin_transaction()
        .map_err(|e| classify(e, "beginning a transaction"))?;
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for p in processed.iter_mut() {
        // Deliveries are settled by the commit; their futures are not needed.
        produce_outcome(producer, config, p)
            .await
            .map_err(TxnError::Abortable)?;
        let key = (p.message.topic().to_owned(), p.message.partition());
        let offset = next.entry(key).or_insert(i64::MIN);
        *offset = (*offset).max(p.message.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &next {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| classify(e, "building the offsets"))?;
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| TxnError::Abortable(anyhow::anyhow!("no consumer group metadata yet")))?;
    producer
        .send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT)
        .map_err(|e| classify(e, "sending offsets to the transaction"))?;
    producer
        .commit_transaction(TXN_TIMEOUT)
        .map_err(|e| classify(e, "committing a transaction"))?;
    Ok(())
}

fn first_offsets(batch: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut starts = BTreeMap::new();
    for m in batch {
        starts
            .entry((m.topic().to_owned(), m.partition()))
            .and_modify(|o: &mut i64| *o = (*o).min(m.offset()))
            .or_insert(m.offset());
    }
    starts
}

/// Moves the consumer back to the first offset of an aborted batch, per partition.
fn rewind(consumer: &IngestConsumer, starts: &BTreeMap<(String, i32), i64>) {
    for ((topic, partition), offset) in starts {
        if let Err(err) = consumer.seek(
            topic,
            *partition,
            Offset::Offset(*offset),
            Duration::from_secs(10),
        ) {
            // Not assigned any more: its new owner starts from the committed offset.
            tracing::warn!(%err, topic, partition, "rewind after abort failed");
        }
    }
}
