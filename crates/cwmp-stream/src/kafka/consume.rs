//! Group consumers: creation, bounded waits for a message or a batch, the current
//! assignment, and offsets stored after acknowledgement and committed at the end.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};

use super::context::{ConsumerMetrics, GroupConsumerContext};
use super::properties::consumer_config;
use crate::config::KafkaConfig;
use crate::health::Health;

/// A group consumer of the services (ingest, detect worker, fleet stage).
pub type GroupConsumer = StreamConsumer<GroupConsumerContext>;

/// Creates a group consumer subscribed to `topic`, with our properties (then the
/// passthrough maps), rebalance bookkeeping and lag metrics.
pub fn group_consumer(
    kafka: &KafkaConfig,
    group_id: &str,
    topic: &str,
    ours: &[(&str, &str)],
    metrics: ConsumerMetrics,
    health: &Arc<Health>,
) -> anyhow::Result<GroupConsumer> {
    let context = GroupConsumerContext {
        metrics,
        health: health.clone(),
        rebalanced: AtomicBool::new(false),
        outage: Default::default(),
        on_revoke: Default::default(),
    };
    let mut config = consumer_config(
        kafka,
        group_id,
        &[super::properties::GROUP_MEMBERSHIP, ours].concat(),
    );
    if !kafka.group_instance_id.is_empty() {
        config.set("group.instance.id", &kafka.group_instance_id);
    }
    let consumer: GroupConsumer = config
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    Ok(consumer)
}

/// How long a wait for the next message may sleep before the queue is polled again.
const RECV_RECHECK: Duration = Duration::from_millis(50);

/// Waits for the next message or consumer error.
///
/// rdkafka's `StreamConsumer` is woken by an edge-triggered "queue non-empty"
/// callback that can be missed when librdkafka serves a statistics or log event in
/// the same poll (rust-rdkafka issue #665); its own fallback wakes it only every
/// `max.poll.interval.ms / 2` (150 s by default), and we ask for statistics every
/// 5 s. So the wait is bounded and the queue polled again, which costs at most
/// [`RECV_RECHECK`] per missed wake-up.
pub async fn recv<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> KafkaResult<BorrowedMessage<'_>> {
    loop {
        if let Ok(result) = tokio::time::timeout(RECV_RECHECK, consumer.recv()).await {
            return result;
        }
    }
}

/// What one [`recv_batch`] returned.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<OwnedMessage>,
    /// Partitions whose end was reached (only with `enable.partition.eof`).
    pub eof: Vec<i32>,
}

/// Waits for a first message (or end-of-partition event), then takes whatever else
/// is already fetched, up to `max` messages, copied out of the consumer's buffers so
/// that they can cross threads. Other consumer errors are logged and skipped
/// (librdkafka retries them).
pub async fn recv_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max: usize,
) -> Batch {
    let mut batch = Batch::default();
    let mut next = Some(recv(consumer).await);
    while let Some(result) = next {
        match result {
            Ok(message) => batch.messages.push(message.detach()),
            Err(KafkaError::PartitionEOF(partition)) => batch.eof.push(partition),
            Err(err) => consumer_error(&err),
        }
        if batch.messages.len() >= max {
            break;
        }
        next = consumer.recv().now_or_never();
    }
    batch
}

/// A consumer error from the poll loop (librdkafka retries it), at a bounded rate.
pub fn consumer_error(err: &KafkaError) {
    let code = err
        .rdkafka_error_code()
        .map_or_else(|| "none".to_owned(), |c| format!("{c:?}"));
    super::quiet::limited(
        &format!("consumer:{code}"),
        |suppressed| tracing::warn!(%err, suppressed, "consumer error"),
    );
}

/// The partitions of `topic` assigned to this consumer now, in order.
pub fn assigned<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Vec<i32> {
    consumer
        .assignment()
        .map(|tpl| {
            let mut partitions: Vec<i32> = tpl
                .elements_for_topic(topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            partitions.sort_unstable();
            partitions
        })
        .unwrap_or_default()
}

/// The partition count of `topic` now, when this consumer can see it. All topics'
/// metadata, not the one topic's: asking for a missing topic may create it.
pub fn topic_partitions<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Option<i32> {
    let metadata = match consumer.fetch_metadata(None, Duration::from_secs(5)) {
        Ok(metadata) => metadata,
        Err(err) => {
            tracing::warn!(%err, topic, "could not read the topics' metadata");
            return None;
        }
    };
    partitions_in(&metadata, topic)
}

/// The partition count of `topic` in `metadata`, when it is there without error.
fn partitions_in(metadata: &rdkafka::metadata::Metadata, topic: &str) -> Option<i32> {
    let n = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())?
        .partitions()
        .len() as i32;
    (n > 0).then_some(n)
}

/// Partitions of `topic`, waiting up to a minute for it to exist.
pub async fn partition_count<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> anyhow::Result<i32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| partitions_in(&m, topic));
        if let Some(n) = found {
            return Ok(n);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("topic {topic} does not exist (or has no partitions) after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stores the offset of one input whose outputs were all acknowledged, for the next
/// auto-commit.
pub fn store_offset<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    message: &impl Message,
) {
    if let Err(err) = consumer.store_offset(message.topic(), message.partition(), message.offset())
    {
        // The partition was revoked meanwhile: its new owner consumes it again.
        tracing::debug!(%err, partition = message.partition(), "offset not stored (revoked)");
    }
}

/// Commits the stored offsets at shutdown; a failure only means the last stored
/// inputs will be consumed again.
pub fn commit_stored<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => {
            tracing::warn!(%err, "final commit failed; the last stored offsets will be consumed again")
        }
    }
}
