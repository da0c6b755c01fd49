//! The fleet stage on Kafka: partial aggregates in, fleet alerts out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::{Fleet, SnapshotError};
use rdkafka::Message;
use tokio::sync::watch;

use super::metrics::{AggregateTraffic, DetectStage};
use super::state::{lock, Tasks};
use super::{await_deliveries, send_alert, StageClients, StageIo};
use crate::kafka::{assigned as assigned_partitions, partition_count, recv_batch, Batch};

/// Consumes partials and closes, decides and publishes until `stop` turns true or
/// an output fails.
pub(super) async fn consume(
    io: StageIo<'_>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let StageIo {
        config,
        clients: StageClients { consumer, producer },
        metrics,
        health,
    } = io;
    let d = &config.detect;
    Fleet::new(d.rules.clone())?;
    metrics.window_length_seconds.set(d.rules.window_ms / 1000);
    let partitions = partition_count(consumer, &d.aggregates_topic).await?;
    let (checkpointer, reader) = super::open_state(
        io,
        DetectStage::Fleet,
        &d.aggregates_topic,
        &d.fleet_state_topic,
        partitions,
    )
    .await?;
    // One fleet state per aggregates partition (the partials of a scope and key all
    // land in one), checkpointed, restored and moved with it.
    let tasks: Arc<Mutex<Tasks<Fleet>>> = Arc::default();
    super::on_revoke(io, &checkpointer, &tasks);
    let fresh = |a: i32| -> anyhow::Result<Fleet> {
        let mut f = Fleet::new(d.rules.clone())?;
        f.set_partitions(vec![a]);
        Ok(f)
    };
    let decode = |a: i32, bytes: &[u8]| -> Result<Fleet, SnapshotError> {
        let mut f = Fleet::restore(d.rules.clone(), bytes)?;
        f.set_partitions(vec![a]);
        Ok(f)
    };
    let mut alerts = Vec::new();
    let mut published: Option<i64> = None;
    // What each partition's counters stood at when last added to the metrics.
    let mut reported: BTreeMap<i32, (u64, u64, u64)> = BTreeMap::new();
    let checkpoint_every = Duration::from_millis(d.checkpoint_interval_ms);
    let mut checkpoint_at = Instant::now();
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => None,
            batch = recv_batch(consumer, d.batch_max_messages) => Some(batch),
            // Wake up to checkpoint when nothing arrives.
            _ = tokio::time::sleep(checkpoint_every) => Some(Batch::default()),
        };
        let Some(Batch {
            messages: batch, ..
        }) = batch
        else {
            return checkpointer.checkpoint(&tasks, consumer).await;
        };
        health.progress();
        // After an aborted transaction: back to the committed offsets; the batch in
        // hand is consumed again from there.
        if checkpointer.rewind_if_needed(&tasks, consumer)? {
            alerts.clear();
            continue;
        }
        let owned = assigned_partitions(consumer, &d.aggregates_topic);
        super::follow_assignment(
            io,
            &checkpointer,
            reader.as_ref(),
            &tasks,
            &owned,
            decode,
            fresh,
        )?;
        {
            // A restored partition's counters were counted where it ran before.
            let tasks = lock(&tasks);
            for (a, task) in tasks.iter() {
                reported.entry(*a).or_insert_with(|| {
                    let stats = task.state.stats();
                    (
                        stats.late_partials,
                        stats.campaigns_overflow,
                        stats.duplicate_partials,
                    )
                });
            }
        }
        {
            let mut tasks = lock(&tasks);
            for message in &batch {
                let a = message.partition();
                let Some(task) = tasks.get_mut(&a) else {
                    continue;
                };
                if !task.takes(message.offset()) {
                    continue;
                }
                task.processed(message.offset());
                let decoded = message
                    .payload()
                    .map(serde_json::from_slice::<AggregateMessage>);
                match decoded {
                    Some(Ok(m)) => {
                        metrics.aggregate(match m {
                            AggregateMessage::Partial(_) => AggregateTraffic::PartialReceived,
                            AggregateMessage::Close(_) => AggregateTraffic::CloseReceived,
                        });
                        task.state.apply(a, m, &mut alerts);
                    }
                    _ => {
                        metrics.aggregate(AggregateTraffic::InvalidReceived);
                        tracing::warn!(
                            partition = a,
                            offset = message.offset(),
                            "skipping a message that is not an aggregate"
                        )
                    }
                }
            }
        }
        if !alerts.is_empty() {
            checkpointer.begin()?;
        }
        let mut deliveries = Vec::new();
        for alert in alerts.drain(..) {
            deliveries.push(send_alert(config, producer, metrics, &alert).await?);
        }
        await_deliveries(deliveries).await?;
        if checkpoint_at.elapsed() >= checkpoint_every {
            checkpointer.checkpoint(&tasks, consumer).await?;
            checkpoint_at = Instant::now();
        }
        let tasks = lock(&tasks);
        // The latest decided window with data, over the partitions owned.
        if let Some(start) = tasks
            .values()
            .filter_map(|t| t.state.last_window().map(|(s, _)| s))
            .max()
        {
            if Some(start) != published {
                let mut merged = BTreeMap::new();
                for (_, partials) in tasks
                    .values()
                    .filter_map(|t| t.state.last_window())
                    .filter(|(s, _)| *s == start)
                {
                    merged.extend(partials.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                metrics.set_window(start, &merged);
                published = Some(start);
            }
        }
        reported.retain(|a, _| tasks.contains_key(a));
        let mut active = BTreeMap::new();
        let mut campaigns = 0;
        let mut silent = BTreeMap::new();
        for (a, task) in tasks.iter() {
            for (scope, n) in task.state.silent_devices() {
                *silent.entry(scope).or_insert(0) += n;
            }
            let stats = task.state.stats();
            let (late, overflow, duplicate) = reported.entry(*a).or_default();
            metrics
                .late_partials
                .inc_by(stats.late_partials.saturating_sub(*late));
            metrics
                .campaigns_overflow
                .inc_by(stats.campaigns_overflow.saturating_sub(*overflow));
            metrics
                .duplicate_partials
                .inc_by(stats.duplicate_partials.saturating_sub(*duplicate));
            (*late, *overflow, *duplicate) = (
                stats.late_partials,
                stats.campaigns_overflow,
                stats.duplicate_partials,
            );
            campaigns += stats.campaigns;
            for (kind, n) in task.state.active() {
                *active.entry(kind).or_insert(0) += n;
            }
        }
        metrics.campaigns.set(campaigns as i64);
        metrics.set_silent(&silent);
        metrics.set_active(DetectStage::Fleet, &active);
        metrics.state.set_since_checkpoint(
            DetectStage::Fleet,
            tasks.values().map(|t| t.since_checkpoint).sum(),
        );
    }
}
