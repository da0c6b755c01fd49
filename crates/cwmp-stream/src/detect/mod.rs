//! `cwmp-stream detect`: the detectors of `cwmp-detect` on Kafka.
//!
//! Workers consume EventRecords (`detect.input_topic`) in a consumer group, run the
//! per-device detectors where each device's partition lands and publish partial
//! window aggregates to `detect.aggregates_topic`; the fleet stage consumes those,
//! merges them and decides the fleet alerts. Both publish alerts to
//! `detect.alerts_topic`, keyed by alert id. Delivery is at-least-once, or
//! exactly-once in Kafka transactions ([`exactly_once`]).
//!
//! Each stage keeps one detector state per partition it owns (a `Worker` per input
//! partition, a `Fleet` per aggregates partition). With `detect.state = "kafka"`
//! ([`state`]) each partition's state is checkpointed to a compacted state topic
//! and its input offset committed only after the checkpoint and every output before
//! it are acknowledged; on assignment the state is restored before any of the
//! partition's records is processed, so that what is detected does not depend on
//! restarts, kills or rebalances. With `"memory"`, offsets are committed at the
//! same points and a moved partition starts cold. [`checkpoint`] lays a
//! checkpoint out in its state partition so that only what changed is written.
//!
//! [`replay`] runs the same engine over an NDJSON file, in process.

pub mod checkpoint;
pub mod exactly_once;
pub mod fleet;
pub mod metrics;
pub mod replay;
pub mod state;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use tokio::sync::watch;

use crate::config::{Config, Delivery, Stage, StateBackend};
use crate::health::Health;
use crate::kafka::properties::{
    producer_defaults, COMMIT_AT_CHECKPOINT, PARTITION_EOF, TRANSACTIONAL_CONSUMER,
    TRANSACTIONAL_PRODUCER,
};
use crate::kafka::{delivered, GroupConsumer, StatsProducer};
pub use metrics::DetectMetrics;
use metrics::DetectStage;
use state::{Checkpointer, StateReader, Task, Tasks};

/// Runs the configured stage(s) until `stop` turns true, or a fatal error.
pub async fn run(
    config: &Config,
    metrics: DetectMetrics,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    tracing::info!(
        stage = %d.stage,
        input = %d.input_topic,
        aggregates = %d.aggregates_topic,
        alerts = %d.alerts_topic,
        "detect starting"
    );
    match d.stage {
        Stage::Worker => run_stage(config, &metrics, &health, stop, DetectStage::Worker).await,
        Stage::Fleet => run_stage(config, &metrics, &health, stop, DetectStage::Fleet).await,
        Stage::All => {
            // /readyz follows the worker; the fleet stage may own no partition at all
            // when there are more replicas than aggregate partitions.
            let fleet_health = Arc::new(Health::new(Duration::from_millis(d.stall_timeout_ms)));
            let (w, f) = tokio::join!(
                run_stage(config, &metrics, &health, stop.clone(), DetectStage::Worker),
                run_stage(config, &metrics, &fleet_health, stop, DetectStage::Fleet),
            );
            w.and(f)
        }
    }
}

/// What a stage's consuming loop works with.
#[derive(Clone, Copy)]
struct StageIo<'a> {
    config: &'a Config,
    clients: &'a StageClients,
    metrics: &'a DetectMetrics,
    health: &'a Health,
}

/// One stage: its clients, its loop until `stop` or a failure, then the drain.
async fn run_stage(
    config: &Config,
    metrics: &DetectMetrics,
    health: &Arc<Health>,
    mut stop: watch::Receiver<bool>,
    stage: DetectStage,
) -> anyhow::Result<()> {
    let clients = StageClients::open(config, metrics, health, stage)?;
    let io = StageIo {
        config,
        clients: &clients,
        metrics,
        health,
    };
    let consumed = match stage {
        DetectStage::Worker => worker::consume(io, &mut stop).await,
        DetectStage::Fleet => fleet::consume(io, &mut stop).await,
    };
    clients.close(config, health, stage);
    consumed
}

/// A stage's Kafka clients: its group consumer and the producer of its outputs.
struct StageClients {
    consumer: GroupConsumer,
    producer: StatsProducer,
}

impl StageClients {
    /// The worker consumes EventRecords, with end-of-partition events (its watermark
    /// waits only for partitions with a backlog); the fleet stage consumes
    /// aggregates. Both commit offsets only at checkpoints.
    fn open(
        config: &Config,
        metrics: &DetectMetrics,
        health: &Arc<Health>,
        stage: DetectStage,
    ) -> anyhow::Result<Self> {
        let d = &config.detect;
        let (group_id, topic, partition_eof, consumer_metrics) = match stage {
            DetectStage::Worker => (
                &d.group_id,
                &d.input_topic,
                "true",
                &metrics.worker_consumer,
            ),
            DetectStage::Fleet => (
                &d.fleet_group_id,
                &d.aggregates_topic,
                "false",
                &metrics.fleet_consumer,
            ),
        };
        let exactly_once = d.delivery == Delivery::ExactlyOnce;
        let mut ours = if exactly_once {
            TRANSACTIONAL_CONSUMER.to_vec()
        } else {
            COMMIT_AT_CHECKPOINT.to_vec()
        };
        ours.push((PARTITION_EOF, partition_eof));
        let consumer = crate::kafka::group_consumer(
            &config.kafka,
            group_id,
            topic,
            &ours,
            consumer_metrics.clone(),
            health,
        )?;
        let mut properties = producer_defaults();
        let tid = exactly_once::transactional_id(config, stage);
        if exactly_once {
            properties.extend_from_slice(TRANSACTIONAL_PRODUCER);
            properties.push(("transactional.id", &tid));
        }
        let producer = crate::kafka::stats_producer(
            &config.kafka,
            &properties,
            metrics.producer_queue.clone(),
        )?;
        if exactly_once {
            // Fences an earlier instance with this id and aborts what it left open.
            tokio::task::block_in_place(|| {
                rdkafka::producer::Producer::init_transactions(
                    &producer,
                    crate::kafka::transaction::TXN_TIMEOUT,
                )
            })
            .with_context(|| format!("initialising transactions ({tid})"))?;
            tracing::info!(stage = stage.as_str(), transactional_id = %tid, "transactions initialised");
        }
        Ok(StageClients { consumer, producer })
    }

    /// At shutdown: unready, then flush within the drain bound. Nothing is
    /// committed here: offsets are committed only with a checkpoint, and the
    /// stage's loop wrote the last one before returning.
    fn close(self, config: &Config, health: &Health, stage: DetectStage) {
        health.set_draining();
        let drain = Duration::from_millis(config.detect.drain_timeout_ms);
        if let Err(err) = rdkafka::producer::Producer::flush(&self.producer, drain) {
            tracing::warn!(%err, "producer flush at shutdown");
        }
        tracing::info!(stage = stage.as_str(), "detect stage stopped");
    }
}

/// Awaits the deliveries of one batch; the first failure is fatal (storing offsets
/// past a lost output would lose it).
async fn await_deliveries(deliveries: Vec<DeliveryFuture>) -> anyhow::Result<()> {
    for delivery in deliveries {
        delivered(delivery).await?;
    }
    Ok(())
}

/// Enqueues one alert on the alerts topic (key = alert id) and counts it.
async fn send_alert(
    config: &Config,
    producer: &StatsProducer,
    metrics: &DetectMetrics,
    alert: &cwmp_detect::Alert,
) -> anyhow::Result<DeliveryFuture> {
    metrics.alert(alert);
    let json = alert.to_json();
    let record = FutureRecord::to(&config.detect.alerts_topic)
        .key(alert.id.as_bytes())
        .payload(json.as_bytes())
        .timestamp(alert.event_time_ms);
    crate::kafka::enqueue(producer, record)
        .await
        .context("producing an alert")
}

/// A stage's durable state: its state topic made sure of (created compacted, or
/// checked), the reader that restores partitions and the checkpointer.
async fn open_state(
    io: StageIo<'_>,
    stage: DetectStage,
    input_topic: &str,
    state_topic: &str,
    partitions: i32,
) -> anyhow::Result<(Checkpointer, Option<StateReader>)> {
    let d = &io.config.detect;
    let (reader, policy) = match d.state {
        StateBackend::Kafka => {
            let policy = state::ensure_topic(
                &io.config.kafka,
                state_topic,
                partitions,
                d.state_topic_replication,
                input_topic,
                || crate::kafka::topic_partitions(&io.clients.consumer, state_topic),
            )
            .await?;
            (
                Some(StateReader::new(&io.config.kafka, state_topic)?),
                policy,
            )
        }
        StateBackend::Memory => (None, state::PolicyCheck::default()),
    };
    tracing::info!(
        stage = stage.as_str(),
        state = %d.state,
        topic = state_topic,
        interval_ms = d.checkpoint_interval_ms,
        "detector state per partition"
    );
    Ok((
        Checkpointer {
            backend: d.state,
            stage,
            input_topic: input_topic.to_owned(),
            state_topic: state_topic.to_owned(),
            producer: io.clients.producer.clone(),
            metrics: io.metrics.state.clone(),
            policy: Arc::new(tokio::sync::Mutex::new(policy)),
            txn: (d.delivery == Delivery::ExactlyOnce).then(Arc::default),
        },
        reader,
    ))
}

/// Installs the revoke hook: revoked partitions are checkpointed, committed and
/// dropped inside the rebalance callback, before another instance takes them.
fn on_revoke<S: state::Checkpointed + Send + 'static>(
    io: StageIo<'_>,
    checkpointer: &Checkpointer,
    tasks: &Arc<std::sync::Mutex<Tasks<S>>>,
) {
    let (checkpointer, tasks) = (checkpointer.clone(), tasks.clone());
    let drain = Duration::from_millis(io.config.detect.drain_timeout_ms);
    use rdkafka::consumer::Consumer;
    io.clients
        .consumer
        .context()
        .on_revoke
        .install(Box::new(move |consumer, tpl| {
            let revoked: Vec<i32> = tpl
                .elements_for_topic(&checkpointer.input_topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            if !revoked.is_empty() {
                checkpointer.flush_revoked(&tasks, consumer, &revoked, drain);
            }
        }));
}

/// Follows the assignment: a newly assigned partition gets its state restored
/// before any of its records is processed (unready meanwhile); one no longer
/// assigned (lost without a revoke) is dropped.
fn follow_assignment<S>(
    io: StageIo<'_>,
    checkpointer: &Checkpointer,
    reader: Option<&StateReader>,
    tasks: &std::sync::Mutex<Tasks<S>>,
    assigned: &[i32],
    decode: impl Fn(i32, &[u8]) -> Result<S, cwmp_detect::SnapshotError>,
    fresh: impl Fn(i32) -> anyhow::Result<S>,
) -> anyhow::Result<()> {
    let new: Vec<i32> = {
        let mut tasks = state::lock(tasks);
        tasks.retain(|p, _| assigned.contains(p));
        assigned
            .iter()
            .copied()
            .filter(|p| !tasks.contains_key(p))
            .collect()
    };
    if new.is_empty() {
        return Ok(());
    }
    let stage = checkpointer.stage;
    io.health.set_restoring(new.len() as i64);
    io.metrics.state.set_restoring(stage, new.len());
    let (committed, read) = tokio::task::block_in_place(|| {
        let committed = state::committed(&io.clients.consumer, &checkpointer.input_topic, &new)?;
        let read = reader.map(|r| r.read(&new)).transpose()?;
        anyhow::Ok((committed, read))
    })?;
    for (i, &partition) in new.iter().enumerate() {
        let state = read.as_ref().and_then(|r| r.get(&partition));
        // Exactly-once: a checkpoint is visible only once its transaction, which
        // also committed its input offset, has committed; the newest one names the
        // committed offset itself (and does on a broker that keeps transactional
        // offset commits nowhere else, as librdkafka's mock cluster).
        let newest = state
            .filter(|_| checkpointer.txn.is_some())
            .and_then(|s| checkpoint::newest_offset(&s.latest));
        let task: Task<S> = state::restore(
            checkpointer,
            partition,
            newest.or(committed.get(&partition).copied()),
            state,
            |bytes| decode(partition, bytes),
            || fresh(partition),
        )?;
        state::lock(tasks).insert(partition, task);
        io.health.set_restoring((new.len() - i - 1) as i64);
        io.metrics.state.set_restoring(stage, new.len() - i - 1);
    }
    io.health.set_restoring(0);
    io.metrics.state.set_restoring(stage, 0);
    Ok(())
}
