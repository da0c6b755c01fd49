//! `cwmp-stream demo`: simulate → ingest → detect (worker and fleet stage) in one
//! process, all through a Kafka-protocol broker — librdkafka's mock cluster embedded
//! in the process, or a real one — then a report of what was planted and found.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use cwmp_detect::{Alert, AlertKind, AlertState, Scope};
use cwmp_sim::{Planted, Scenario, ScenarioKind, SimConfig, Simulator};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use tokio::sync::watch;

use crate::config::{Config, Stage};
use crate::detect::DetectMetrics;
use crate::health::Health;
use crate::metrics::IngestMetrics;
use crate::simulate::{self, Pace};

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
            duration_ms: 4 * 3_600_000,
            seed: 1,
            brokers: None,
            scenarios: Vec::new(),
            metrics_listen: "127.0.0.1:9464".to_owned(),
            linger: Duration::ZERO,
        }
    }
}

/// A power cut on the biggest product line, one device in a reboot loop, and an ACS
/// reboot campaign (which must not look like a storm), after a calm first hour.
pub fn default_scenarios() -> Vec<Scenario> {
    [
        "power_cut@90m:model=HG8245H",
        "reboot_loop@60m",
        "acs_reboot@150m:model=SpeedTouch",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub devices: usize,
    pub duration_ms: i64,
    pub start_ms: i64,
    pub seed: u64,
    pub broker: String,
    pub planted: Vec<Planted>,
    pub simulated: u64,
    pub simulated_bytes: u64,
    pub simulate_seconds: f64,
    pub records: u64,
    pub dlq: u64,
    pub skipped: u64,
    pub ingest_seconds: f64,
    pub detected: u64,
    pub late: u64,
    pub detect_seconds: f64,
    pub alerts: Vec<Alert>,
    /// Messages on the alert topic that could not be read as alerts.
    pub unreadable_alerts: u64,
    pub wall_seconds: f64,
}

const RAW: &str = "cwmp.informs.raw";

fn ingested(m: &IngestMetrics) -> u64 {
    ["record", "dlq", "skipped"]
        .iter()
        .map(|r| m.messages.with_label_values(&[r]).get())
        .sum()
}

fn detected(m: &DetectMetrics) -> u64 {
    ["accepted", "late", "duplicate", "invalid"]
        .iter()
        .map(|r| m.records.with_label_values(&[r]).get())
        .sum()
}

async fn create_topics(
    config: &Config,
    mock: Option<&MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
) -> anyhow::Result<()> {
    let topics = [
        // One raw partition: the demo's clock runs an hour of simulated time per
        // second or so, and ingest consuming several raw partitions a few
        // milliseconds apart would skew event time by minutes — far beyond the
        // detectors' 30 s of allowed lateness. (At real speed, that skew is noise.)
        (config.ingest.input_topic.as_str(), 1),
        (config.ingest.output_topic.as_str(), 8),
        (config.ingest.dlq_topic.as_str(), 1),
        (config.detect.aggregates_topic.as_str(), 4),
        (config.detect.alerts_topic.as_str(), 1),
    ];
    match mock {
        Some(mock) => {
            for (name, partitions) in topics {
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

/// Runs the demo; prints where `/metrics` is served, and progress, on stderr.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoReport> {
    let wall = Instant::now();
    let mock = match &options.brokers {
        Some(_) => None,
        None => Some(MockCluster::new(1).context("starting the embedded broker")?),
    };
    let brokers = match (&options.brokers, &mock) {
        (Some(b), _) => b.clone(),
        (None, Some(m)) => m.bootstrap_servers(),
        (None, None) => anyhow::bail!("no broker"),
    };
    let mut config = Config::default();
    config.kafka.brokers = brokers.clone();
    config.metrics.listen = String::new();
    config.detect.stage = Stage::All;
    config.detect.partition_idle_ms = 1_000;
    if mock.is_some() {
        // The mock broker holds an empty fetch for the whole fetch.wait.max.ms.
        config
            .kafka
            .consumer
            .insert("fetch.wait.max.ms".into(), "10".into());
    }
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    create_topics(&config, mock.as_ref()).await?;

    let ingest_metrics = IngestMetrics::new();
    let detect_metrics = DetectMetrics::new();
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let (stop_tx, stop) = watch::channel(false);
    let render: crate::http::Render = {
        let (i, d) = (ingest_metrics.clone(), detect_metrics.clone());
        Arc::new(move || format!("{}{}", i.render(), d.render()))
    };
    let server = match crate::http::serve(
        &options.metrics_listen,
        render.clone(),
        health.clone(),
        stop.clone(),
    )
    .await
    {
        Ok(s) => s,
        // Taken (another demo?): any free port will do.
        Err(_) => crate::http::serve("127.0.0.1:0", render, health.clone(), stop.clone())
            .await
            .context("serving /metrics")?,
    };
    eprintln!(
        "demo: metrics at http://{}/metrics, broker {}",
        server.0,
        if mock.is_some() {
            "embedded (librdkafka mock cluster)"
        } else {
            brokers.as_str()
        }
    );

    let ingest = {
        let (config, metrics, health, stop) = (
            config.clone(),
            ingest_metrics.clone(),
            health.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { crate::ingest::run(&config, metrics, health, stop).await })
    };
    let detect = {
        let (config, metrics, stop) = (config.clone(), detect_metrics.clone(), stop.clone());
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        tokio::spawn(async move { crate::detect::run(&config, metrics, health, stop).await })
    };
    let alerts = Arc::new(Mutex::new(Vec::<Alert>::new()));
    let collector = {
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
        let (alerts, mut stop) = (alerts.clone(), stop.clone());
        // Returns how many messages on the alert topic were not alerts (or not
        // readable): the report says so rather than dropping them quietly.
        tokio::spawn(async move {
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
        })
    };

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
    let expected: u64 = sim
        .devices()
        .iter()
        .map(|d| (options.duration_ms / d.period_ms.max(1)) as u64 + 1)
        .sum();
    let producer: FutureProducer = crate::kafka::producer_config(
        &config.kafka,
        &[
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("enable.idempotence", "true"),
        ],
    )
    .create()
    .context("creating the simulator's producer")?;
    let acked = ingest_metrics.clone();
    let pace = Pace {
        rate: 0.0,
        // The embedded broker keeps 5 MiB per partition; Informs are about 2 KB.
        ahead: Some((Box::new(move || ingested(&acked)), 1_500)),
    };
    let begin = Instant::now();
    let produced = simulate::produce(sim, &producer, RAW, &pace, expected).await?;
    let ingest_done = wait_until("ingest", Duration::from_secs(300), produced.informs, || {
        ingested(&ingest_metrics)
    })
    .await?;
    let records = ingest_metrics.messages.with_label_values(&["record"]).get();
    let detect_done = wait_until("detect", Duration::from_secs(300), records, || {
        detected(&detect_metrics)
    })
    .await?;
    // Let idle partitions release the watermark and the fleet stage decide.
    let mut seen = usize::MAX;
    let mut quiet_since = Instant::now();
    loop {
        let n = alerts.lock().map(|a| a.len()).unwrap_or(0);
        if n != seen {
            seen = n;
            quiet_since = Instant::now();
        }
        if quiet_since.elapsed()
            > Duration::from_millis(2_000 + config.detect.partition_idle_ms * 2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !options.linger.is_zero() {
        eprintln!(
            "demo: input done; serving /metrics for {:?} more",
            options.linger
        );
        tokio::time::sleep(options.linger).await;
    }
    let _ = stop_tx.send(true);
    ingest.await.context("ingest task")??;
    detect.await.context("detect task")??;
    let unreadable_alerts = collector.await.unwrap_or(u64::MAX);
    server.1.abort();
    let alerts = alerts.lock().map(|a| a.clone()).unwrap_or_default();
    Ok(DemoReport {
        devices: options.devices,
        duration_ms: options.duration_ms,
        start_ms,
        seed: options.seed,
        broker: if mock.is_some() {
            "embedded".into()
        } else {
            brokers
        },
        planted,
        simulated: produced.informs,
        simulated_bytes: produced.bytes,
        simulate_seconds: produced.seconds,
        records,
        dlq: ingest_metrics.messages.with_label_values(&["dlq"]).get(),
        skipped: ingest_metrics
            .messages
            .with_label_values(&["skipped"])
            .get(),
        ingest_seconds: (ingest_done - begin).as_secs_f64(),
        detected: detected(&detect_metrics),
        late: detect_metrics.records.with_label_values(&["late"]).get(),
        detect_seconds: (detect_done - begin).as_secs_f64(),
        alerts,
        unreadable_alerts,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}

/// The alert kinds a planted incident explains.
fn explains(kind: ScenarioKind) -> &'static [AlertKind] {
    match kind {
        ScenarioKind::PowerCut => &[AlertKind::BootStorm, AlertKind::RetryStorm],
        ScenarioKind::AcsReboot => &[AlertKind::AcsMassReboot],
        ScenarioKind::RebootLoop => &[AlertKind::RebootLoop],
        ScenarioKind::WakeupStorm => &[AlertKind::WakeupRate],
        ScenarioKind::FactoryResetWave => &[AlertKind::BootstrapWave, AlertKind::BootStorm],
    }
}

impl DemoReport {
    /// The planted incident behind an alert, if any.
    pub fn cause(&self, alert: &Alert) -> Option<&Planted> {
        self.planted.iter().find(|p| {
            explains(p.scenario.kind).contains(&alert.kind)
                && alert.window_end_ms >= p.from_ms
                && alert.window_start_ms <= p.to_ms + 10 * 60_000
                && match alert.scope {
                    Scope::Device => p.devices.contains(&alert.key),
                    Scope::ProductClass => p.product_classes.contains(&alert.key),
                    _ => true,
                }
        })
    }

    /// Opening transitions, in decision order.
    pub fn opened(&self) -> Vec<&Alert> {
        let mut open: Vec<&Alert> = self
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Open)
            .collect();
        open.sort_by(|a, b| (a.event_time_ms, &a.id).cmp(&(b.event_time_ms, &b.id)));
        open
    }

    /// Alerts no planted incident explains: there should be none.
    pub fn unexpected(&self) -> Vec<&Alert> {
        self.opened()
            .into_iter()
            .filter(|a| self.cause(a).is_none())
            .collect()
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let rate = |n: u64, s: f64| n as f64 / s.max(1e-9);
        let since = |ms: i64| {
            let m = (ms - self.start_ms) / 60_000;
            format!("+{}h{:02}m", m / 60, m % 60)
        };
        let mut out = String::new();
        out.push_str(&format!(
            "cwmp-stream demo: {} devices, {}h{:02}m simulated from {}, seed {}, broker {}\n\n",
            self.devices,
            self.duration_ms / 3_600_000,
            self.duration_ms % 3_600_000 / 60_000,
            cwmp_sim::format_utc(self.start_ms),
            self.seed,
            self.broker
        ));
        out.push_str("planted:\n");
        for p in &self.planted {
            out.push_str(&format!(
                "  {:<40} {:>6} devices  {}\n",
                p.scenario.to_string(),
                p.devices.len(),
                since(p.from_ms)
            ));
        }
        out.push_str(&format!(
            "\n{:<10} {:>10}  {:>12}\n{:<10} {:>10}  {:>10.0}/s  ({:.1} MB of XML)\n{:<10} {:>10}  {:>10.0}/s  ({} records, {} DLQ, {} skipped)\n{:<10} {:>10}  {:>10.0}/s  ({} late)\n",
            "stage", "informs", "throughput",
            "simulate", self.simulated, rate(self.simulated, self.simulate_seconds), self.simulated_bytes as f64 / 1e6,
            "ingest", self.records + self.dlq + self.skipped, rate(self.records + self.dlq + self.skipped, self.ingest_seconds), self.records, self.dlq, self.skipped,
            "detect", self.detected, rate(self.detected, self.detect_seconds), self.late,
        ));
        out.push_str(&format!("(stages run concurrently; each rate is its count over the time to its last message)\n\nalerts opened ({}):\n", self.opened().len()));
        out.push_str(&format!(
            "  {:<16} {:<16} {:<34} {:>9} {:>8}  {}\n",
            "kind", "scope", "key", "opened", "devices", "planted by"
        ));
        for a in self.opened() {
            let peak = self
                .alerts
                .iter()
                .filter(|x| x.id == a.id)
                .map(|x| x.devices)
                .max()
                .unwrap_or(a.devices);
            let cause = self
                .cause(a)
                .map_or("UNEXPECTED".to_owned(), |p| p.scenario.to_string());
            out.push_str(&format!(
                "  {:<16} {:<16} {:<34} {:>9} {:>8}  {}\n",
                a.kind.as_str(),
                a.scope.as_str(),
                a.key,
                since(a.window_end_ms),
                peak,
                cause
            ));
        }
        if self.unreadable_alerts > 0 {
            out.push_str(&format!(
                "\n{} message(s) on the alert topic could not be read as alerts\n",
                self.unreadable_alerts
            ));
        }
        let unexpected = self.unexpected().len();
        out.push_str(&if unexpected == 0 {
            "\nevery alert matches a planted incident; nothing was raised where nothing was planted\n".to_owned()
        } else {
            format!("\n{unexpected} alert(s) match no planted incident\n")
        });
        out.push_str(&format!("finished in {:.1} s\n", self.wall_seconds));
        out
    }
}
