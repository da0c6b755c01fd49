//! The fleet stage on Kafka: partial aggregates in, fleet alerts out.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cwmp_detect::aggregate::AggregateMessage;
use cwmp_detect::Fleet;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use tokio::sync::watch;

use super::{
    await_deliveries, create_consumer, create_producer, finish, store_offsets, DetectMetrics,
};
use crate::config::Config;
use crate::health::Health;
use crate::ingest::enqueue;

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
    let mut fleet = Fleet::new(d.rules.clone());
    let mut alerts = Vec::new();
    let mut assigned: Vec<i32> = vec![0];
    let mut published: Option<i64> = None;
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
                _ => tracing::warn!(
                    partition = message.partition(),
                    offset = message.offset(),
                    "skipping a message that is not an aggregate"
                ),
            }
        }
        let mut deliveries = Vec::new();
        for alert in alerts.drain(..) {
            metrics
                .alerts
                .with_label_values(&[alert.kind.as_str(), alert.state.as_str()])
                .inc();
            let json = alert.to_json();
            let record = FutureRecord::to(&d.alerts_topic)
                .key(alert.id.as_bytes())
                .payload(json.as_bytes())
                .timestamp(alert.event_time_ms);
            match enqueue(&producer, record)
                .await
                .context("producing an alert")
            {
                Ok(delivery) => deliveries.push(delivery),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(err) = await_deliveries(deliveries).await {
                failure = Some(err);
            }
        }
        if failure.is_some() {
            break;
        }
        store_offsets(&consumer, &batch);
        if let Some((start, partials)) = fleet.last_window() {
            if Some(start) != published {
                metrics.set_window(start, partials);
                published = Some(start);
            }
        }
        let stats = fleet.stats();
        metrics
            .late_partials
            .inc_by(stats.late_partials - metrics.late_partials.get().min(stats.late_partials));
        let active = fleet.active();
        for kind in cwmp_detect::AlertKind::ALL {
            metrics
                .active_alerts
                .with_label_values(&[kind.as_str(), "fleet"])
                .set(active.get(&kind).copied().unwrap_or(0) as i64);
        }
    }
    health.set_draining();
    finish(
        &consumer,
        &producer,
        Duration::from_millis(d.drain_timeout_ms),
    );
    tracing::info!("fleet stage stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
