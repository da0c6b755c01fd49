//! The fleet stage on Kafka: partial aggregates in, fleet alerts out.

use std::sync::Arc;
use std::time::Duration;

use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::Fleet;
use rdkafka::Message;
use tokio::sync::watch;

use super::{
    await_deliveries, create_consumer, create_producer, finish, send_alert, store_offsets,
    DetectMetrics,
};
use crate::config::Config;
use crate::health::Health;

pub async fn run(
    config: &Config,
    metrics: DetectMetrics,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let d = &config.detect;
    let consumer = create_consumer(
        config,
        &d.fleet_group_id,
        &d.aggregates_topic,
        false,
        metrics.fleet_consumer.clone(),
        &health,
    )?;
    let producer = create_producer(config, &metrics)?;
    let mut fleet = Fleet::new(d.rules.clone())?;
    let mut alerts = Vec::new();
    let mut assigned: Vec<i32> = vec![0];
    let mut published: Option<i64> = None;
    let mut reported_late = 0;
    let mut failure = None;
    loop {
        let batch = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            batch = crate::kafka::recv_batch(&consumer, d.batch_max_messages) => batch.messages,
        };
        health.progress();
        let owned: Vec<i32> = rdkafka::consumer::Consumer::assignment(&consumer)
            .map(|tpl| {
                tpl.elements_for_topic(&d.aggregates_topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
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
                    let label = match m {
                        AggregateMessage::Partial(_) => "partial_received",
                        AggregateMessage::Close(_) => "close_received",
                    };
                    metrics.aggregates.with_label_values(&[label]).inc();
                    fleet.apply(message.partition(), m, &mut alerts);
                }
                _ => {
                    metrics
                        .aggregates
                        .with_label_values(&["invalid_received"])
                        .inc();
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "skipping a message that is not an aggregate"
                    )
                }
            }
        }
        let sent = async {
            let mut deliveries = Vec::new();
            for alert in alerts.drain(..) {
                deliveries.push(send_alert(config, &producer, &metrics, &alert).await?);
            }
            await_deliveries(deliveries).await
        };
        if let Err(err) = sent.await {
            failure = Some(err);
            break;
        }
        store_offsets(&consumer, &batch);
        if let Some((start, partials)) = fleet.last_window() {
            if Some(start) != published {
                metrics.set_window(start, partials);
                published = Some(start);
            }
        }
        let late = fleet.stats().late_partials;
        metrics.late_partials.inc_by(late - reported_late);
        reported_late = late;
        metrics.set_active("fleet", &fleet.active());
    }
    health.set_draining();
    finish(
        &consumer,
        &producer,
        Duration::from_millis(d.drain_timeout_ms),
    );
    tracing::info!("fleet stage stopped");
    failure.map_or(Ok(()), Err)
}
