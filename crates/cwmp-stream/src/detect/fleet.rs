//! The fleet stage on Kafka: partial aggregates in, fleet alerts out.

use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::Fleet;
use rdkafka::Message;
use tokio::sync::watch;

use super::metrics::{AggregateTraffic, DetectStage};
use super::{await_deliveries, send_alert, StageClients, StageIo};
use crate::kafka::{assigned as assigned_partitions, recv_batch, store_offsets};

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
    let mut fleet = Fleet::new(d.rules.clone())?;
    metrics.window_length_seconds.set(d.rules.window_ms / 1000);
    let mut alerts = Vec::new();
    let mut assigned: Vec<i32> = vec![0];
    let mut published: Option<i64> = None;
    let mut reported_late = 0;
    let mut reported_overflow = 0;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            batch = recv_batch(consumer, d.batch_max_messages) => batch.messages,
        };
        health.progress();
        let owned = assigned_partitions(consumer, &d.aggregates_topic);
        if owned != assigned {
            assigned = owned;
            fleet.set_partitions(assigned.clone());
        }
        for message in &batch {
            let decoded = message
                .payload()
                .map(serde_json::from_slice::<AggregateMessage>);
            match decoded {
                Some(Ok(m)) => {
                    metrics.aggregate(match m {
                        AggregateMessage::Partial(_) => AggregateTraffic::PartialReceived,
                        AggregateMessage::Close(_) => AggregateTraffic::CloseReceived,
                    });
                    fleet.apply(message.partition(), m, &mut alerts);
                }
                _ => {
                    metrics.aggregate(AggregateTraffic::InvalidReceived);
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "skipping a message that is not an aggregate"
                    )
                }
            }
        }
        let mut deliveries = Vec::new();
        for alert in alerts.drain(..) {
            deliveries.push(send_alert(config, producer, metrics, &alert).await?);
        }
        await_deliveries(deliveries).await?;
        store_offsets(consumer, &batch);
        if let Some((start, partials)) = fleet.last_window() {
            if Some(start) != published {
                metrics.set_window(start, partials);
                published = Some(start);
            }
        }
        let stats = fleet.stats();
        metrics
            .late_partials
            .inc_by(stats.late_partials - reported_late);
        reported_late = stats.late_partials;
        metrics
            .campaigns_overflow
            .inc_by(stats.campaigns_overflow - reported_overflow);
        reported_overflow = stats.campaigns_overflow;
        metrics.campaigns.set(stats.campaigns as i64);
        metrics.set_active(DetectStage::Fleet, &fleet.active());
    }
}
