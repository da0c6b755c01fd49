//! `cwmp-stream demo`: simulate → ingest → detect (worker and fleet stage) in one
//! process, all through a Kafka-protocol broker — librdkafka's mock cluster embedded
//! in the process, or a real one — then a report of what was planted and found.

mod report;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cwmp_detect::Alert;
use cwmp_sim::{Scenario, SimConfig, Simulator};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, Stage};
use crate::detect::DetectMetrics;
use crate::health::Health;
use crate::ingest::metrics::MessageResult;
use crate::ingest::IngestMetrics;
use crate::simulate::{self, Pace};
pub use report::DemoReport;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub devices: usize,
    pub duration_ms: i64,
    pub seed: u64,
    /// A real broker instead of the embedded one.
    pub brokers: Option<String>,
    /// Planted incidents; [`default_scenarios`] when empty.
    pub scenarios: Vec<Scenario>,
    /// `/metrics` listener; port 0 picks a free one.
    pub metrics_listen: String,
    /// Keep the services up (and `/metrics` served) this long after the input is
    /// done, so that a Prometheus can scrape the final state.
    pub linger: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            devices: 20_000,
            duration_ms: 5 * 3_600_000,
            seed: 1,
            brokers: None,
            scenarios: Vec::new(),
            metrics_listen: "127.0.0.1:9464".to_owned(),
            linger: Duration::ZERO,
        }
    }
}

/// A power cut on the biggest product line, one device in a reboot loop, an ACS
/// reboot campaign and a firmware rollout with a failing share (neither of which
/// must look like a storm), after a calm first hour; and a regional network outage
/// (1,024 addresses, two and a half hours) that ends without a reboot: no boot storm
/// ever shows it, only the informs that did not come.
pub fn default_scenarios() -> Vec<Scenario> {
    [
        "power_cut@90m:model=HG8245H",
        "reboot_loop@60m",
        "acs_reboot@150m:model=SpeedTouch",
        "firmware_rollout@195m:model=VMG8924,share=0.6,fail=0.15,fault=9010",
        "outage@60m:network=100.64.4.0/22,for=150m,return=noboot",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Partitions of the demo's raw topic.
const RAW_PARTITIONS: i32 = 6;

async fn create_topics(
    config: &Config,
    mock: Option<&MockCluster<'static, DefaultProducerContext>>,
) -> anyhow::Result<()> {
    let topics = [
        // Several raw partitions, as in production. The demo's clock runs about an
        // hour of simulated time per second, so ingest draining them a few
        // milliseconds apart skews event time by minutes within each events
        // partition; the detect worker's per-raw-partition clocks absorb it (the
        // report's "0 late", checked by the demo test).
        (config.ingest.input_topic.as_str(), RAW_PARTITIONS),
        (config.ingest.output_topic.as_str(), 8),
        (config.ingest.dlq_topic.as_str(), 1),
        (config.detect.aggregates_topic.as_str(), 4),
        (config.detect.alerts_topic.as_str(), 1),
    ];
    // The state topics: compacted, as many partitions as what they hold the state
    // of. The detect service creates them itself where the broker lets it; the
    // embedded broker does not, so the demo does.
    let state_topics = [
        (config.detect.state_topic.as_str(), 8),
        (config.detect.fleet_state_topic.as_str(), 4),
    ];
    match mock {
        Some(mock) => {
            for (name, partitions) in topics.into_iter().chain(state_topics) {
                mock.create_topic(name, partitions, 1)
                    .with_context(|| format!("creating {name}"))?;
            }
        }
        None => {
            let admin: AdminClient<DefaultClientContext> =
                crate::kafka::producer_config(&config.kafka, &[])
                    .create()
                    .context("creating the Kafka admin client")?;
            let new: Vec<NewTopic> = topics
                .iter()
                .map(|(name, p)| NewTopic::new(name, *p, TopicReplication::Fixed(1)))
                .collect();
            let results = admin
                .create_topics(
                    &new,
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                )
                .await
                .context("creating topics")?;
            for r in results {
                match r {
                    Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
                }
            }
        }
    }
    Ok(())
}

/// Waits until `done()` reaches `target`, or fails after `limit`.
async fn wait_until(
    what: &str,
    limit: Duration,
    target: u64,
    done: impl Fn() -> u64,
) -> anyhow::Result<Instant> {
    let start = Instant::now();
    while done() < target {
        if start.elapsed() > limit {
            anyhow::bail!("{what}: {} of {target} after {limit:?}", done());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Instant::now())
}

/// The broker the demo runs on: embedded (librdkafka's mock cluster) or given.
struct Broker {
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    brokers: String,
}

impl Broker {
    fn start(given: Option<&str>) -> anyhow::Result<Self> {
        match given {
            Some(brokers) => Ok(Broker {
                mock: None,
                brokers: brokers.to_owned(),
            }),
            None => {
                let mock = MockCluster::new(1).context("starting the embedded broker")?;
                Ok(Broker {
                    brokers: mock.bootstrap_servers(),
                    mock: Some(mock),
                })
            }
        }
    }

    /// How the report names it.
    fn name(&self) -> &str {
        if self.mock.is_some() {
            "embedded"
        } else {
            &self.brokers
        }
    }

    /// The services' configuration for this broker.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::default();
        config.kafka.brokers = self.brokers.clone();
        config.metrics.listen = String::new();
        config.detect.stage = Stage::All;
        config.detect.partition_idle_ms = 1_000;
        if self.mock.is_some() {
            // The mock broker holds an empty fetch for the whole fetch.wait.max.ms.
            config
                .kafka
                .consumer
                .insert("fetch.wait.max.ms".into(), "10".into());
        }
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config)
    }
}

/// The services of one demo run, sharing one stop signal.
struct Services {
    ingest_metrics: IngestMetrics,
    detect_metrics: DetectMetrics,
    stop_tx: watch::Sender<bool>,
    server: JoinHandle<()>,
    ingest: JoinHandle<anyhow::Result<()>>,
    detect: JoinHandle<anyhow::Result<()>>,
    alerts: Arc<Mutex<Vec<Alert>>>,
    /// Ends with how many messages on the alert topic were not readable alerts.
    collector: JoinHandle<u64>,
}

impl Services {
    /// Serves `/metrics` (on `listen`, else any free port) and starts ingest, detect
    /// and the alert reader.
    async fn start(config: &Config, listen: &str, broker: &Broker) -> anyhow::Result<Self> {
        let ingest_metrics = IngestMetrics::new();
        let detect_metrics = DetectMetrics::new();
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        let (stop_tx, stop) = watch::channel(false);
        let render: crate::http::Render = {
            let (i, d) = (ingest_metrics.clone(), detect_metrics.clone());
            Arc::new(move || format!("{}{}", i.render(), d.render()))
        };
        let (addr, server) =
            match crate::http::serve(listen, render.clone(), health.clone(), stop.clone()).await {
                Ok(s) => s,
                // Taken (another demo?): any free port will do.
                Err(_) => crate::http::serve("127.0.0.1:0", render, health.clone(), stop.clone())
                    .await
                    .context("serving /metrics")?,
            };
        eprintln!(
            "demo: metrics at http://{addr}/metrics, broker {}",
            if broker.mock.is_some() {
                "embedded (librdkafka mock cluster)"
            } else {
                broker.brokers.as_str()
            }
        );
        let ingest = {
            let (config, metrics, stop) = (config.clone(), ingest_metrics.clone(), stop.clone());
            tokio::spawn(async move { crate::ingest::run(&config, metrics, health, stop).await })
        };
        let detect = {
            let (config, metrics, stop) = (config.clone(), detect_metrics.clone(), stop.clone());
            let health = Arc::new(Health::new(Duration::from_secs(60)));
            tokio::spawn(async move { crate::detect::run(&config, metrics, health, stop).await })
        };
        let alerts = Arc::new(Mutex::new(Vec::<Alert>::new()));
        let collector = collect_alerts(config, alerts.clone(), stop)?;
        Ok(Services {
            ingest_metrics,
            detect_metrics,
            stop_tx,
            server,
            ingest,
            detect,
            alerts,
            collector,
        })
    }

    fn alerts_seen(&self) -> usize {
        self.alerts.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Waits until no new alert has arrived for `quiet` (idle partitions release the
    /// watermark, and the fleet stage decides the last windows).
    async fn settle(&self, quiet: Duration) {
        let mut seen = usize::MAX;
        let mut quiet_since = Instant::now();
        loop {
            let n = self.alerts_seen();
            if n != seen {
                seen = n;
                quiet_since = Instant::now();
            }
            if quiet_since.elapsed() > quiet {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops everything; returns the alerts and the count of unreadable ones.
    async fn stop(self) -> anyhow::Result<(Vec<Alert>, u64)> {
        let _ = self.stop_tx.send(true);
        self.ingest.await.context("ingest task")??;
        self.detect.await.context("detect task")??;
        let unreadable = self.collector.await.unwrap_or(u64::MAX);
        self.server.abort();
        let alerts = self.alerts.lock().map(|a| a.clone()).unwrap_or_default();
        Ok((alerts, unreadable))
    }
}

/// Reads the alert topic into `alerts` until `stop`; returns how many messages on it
/// were not alerts (or not readable): the report says so rather than dropping them
/// quietly.
fn collect_alerts(
    config: &Config,
    alerts: Arc<Mutex<Vec<Alert>>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<u64>> {
    let consumer: StreamConsumer = crate::kafka::consumer_config(
        &config.kafka,
        &format!("cwmp-demo-report-{}", std::process::id()),
        &[
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
        ],
    )
    .create()
    .context("creating the alert reader")?;
    consumer
        .subscribe(&[&config.detect.alerts_topic])
        .context("subscribing to alerts")?;
    Ok(tokio::spawn(async move {
        let mut unreadable = 0u64;
        loop {
            let message = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                m = crate::kafka::recv(&consumer) => m,
            };
            let alert = message
                .ok()
                .and_then(|m| m.payload().map(serde_json::from_slice::<Alert>));
            match (alert, alerts.lock()) {
                (Some(Ok(alert)), Ok(mut all)) => all.push(alert),
                _ => unreadable += 1,
            }
        }
        unreadable
    }))
}

/// Runs the demo; prints where `/metrics` is served, and progress, on stderr.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoReport> {
    let wall = Instant::now();
    let broker = Broker::start(options.brokers.as_deref())?;
    let config = broker.config()?;
    create_topics(&config, broker.mock.as_ref()).await?;
    let services = Services::start(&config, &options.metrics_listen, &broker).await?;

    let scenarios = if options.scenarios.is_empty() {
        default_scenarios()
    } else {
        options.scenarios.clone()
    };
    let sim_config = SimConfig {
        devices: options.devices,
        duration_ms: options.duration_ms,
        seed: options.seed,
        scenarios,
        ..SimConfig::default()
    };
    let start_ms = sim_config.start_ms;
    let sim = Simulator::new(sim_config);
    let planted = sim.planted().to_vec();
    let producer = simulate::producer(&config.kafka)?;
    let acked = services.ingest_metrics.clone();
    let pace = Pace {
        rate: 0.0,
        // The embedded broker keeps 5 MiB per partition; Informs are about 2 KB.
        ahead: Some((Box::new(move || acked.handled()), 1_500)),
    };
    let begin = Instant::now();
    let produced = simulate::produce(sim, &producer, &config.ingest.input_topic, &pace).await?;

    let (ingest, detect) = (
        services.ingest_metrics.clone(),
        services.detect_metrics.clone(),
    );
    let ingest_done = wait_until(
        "ingest",
        Duration::from_secs(300),
        produced.messages,
        || ingest.handled(),
    )
    .await?;
    let records = ingest.messages(MessageResult::Record);
    let detect_done = wait_until("detect", Duration::from_secs(300), records, || {
        detect.records_seen()
    })
    .await?;
    services
        .settle(Duration::from_millis(
            2_000 + config.detect.partition_idle_ms * 2,
        ))
        .await;
    if !options.linger.is_zero() {
        eprintln!(
            "demo: input done; serving /metrics for {:?} more",
            options.linger
        );
        tokio::time::sleep(options.linger).await;
    }
    let (alerts, unreadable_alerts) = services.stop().await?;
    let counts = report::Counts::read(&ingest, &detect);
    Ok(DemoReport {
        devices: options.devices,
        duration_ms: options.duration_ms,
        start_ms,
        seed: options.seed,
        broker: broker.name().to_owned(),
        planted,
        simulated: produced.messages,
        simulated_transfers: produced.transfers,
        simulated_bytes: produced.bytes,
        simulate_seconds: produced.seconds,
        records,
        transfer_records: counts.transfer_records,
        dlq: counts.dlq,
        skipped: counts.skipped,
        ingest_seconds: (ingest_done - begin).as_secs_f64(),
        detected: counts.detected,
        late: counts.late,
        checkpoints: counts.checkpoints,
        checkpoint_bytes: counts.checkpoint_bytes,
        detect_seconds: (detect_done - begin).as_secs_f64(),
        alerts,
        unreadable_alerts,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}
