//! `cwmp-stream`: the command line over the services in the library.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cwmp_inform::{Charset, Limits, Options};
use cwmp_stream::config::{Config, Delivery};
use cwmp_stream::{detect, extract, health, http, ingest, metrics, shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "cwmp-stream",
    version,
    about = "Stream processor for TR-069 (CWMP) Inform traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract EventRecords from Informs in files: one JSON line per message.
    ///
    /// Each PATH is a file holding one message (the raw POST body, or a JSON
    /// envelope), or a directory whose files are read in name order. With
    /// --envelopes, each line of FILE is a JSON envelope. Exit status: 0 when every
    /// message gave a record, 1 when some were rejected, 2 on a usage or I/O error.
    Extract(ExtractArgs),
    /// Consume raw Informs from Kafka, produce EventRecords (and dead letters).
    ///
    /// Configuration layers: defaults, --config FILE (TOML), CWMP__SECTION__KEY
    /// environment variables, then these flags. Metrics on /metrics, liveness on
    /// /healthz, readiness on /readyz. SIGTERM drains in-flight messages and exits 0.
    Ingest(IngestArgs),
    /// Watch EventRecords for fleet trouble: boot storms, ACS mass reboots, reboot
    /// loops, wake-up storms, bootstrap waves, retry storms.
    ///
    /// On Kafka: workers consume detect.input_topic and publish partial aggregates;
    /// the fleet stage merges them; both publish alerts (--stage picks what this
    /// process runs; all by default). With --replay FILE (EventRecord NDJSON, `-` for
    /// standard input) the whole pipeline runs in process and prints the alerts as
    /// NDJSON in decision order; a summary goes to standard error.
    Detect(DetectArgs),
    /// Simulate a CPE fleet and produce its raw Informs to a broker.
    ///
    /// Informs carry the headers an ACS front-end sets (cwmp-received-at = the
    /// simulated clock, cwmp-acs, cwmp-remote-addr, content-type) and are keyed by
    /// session. Deterministic from --seed. A progress bar on a terminal, plain
    /// lines otherwise.
    Simulate(SimulateArgs),
    /// The whole pipeline in one process on an embedded broker: simulate → ingest →
    /// detect, then a report of what was planted and what was found.
    Demo(DemoArgs),
    /// Validate a configuration file (with the environment applied) and print the
    /// effective configuration, secrets redacted. Exit 0 when valid, 2 when not.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Delivery semantics (ingest.delivery).
    #[arg(long, value_parser = ["at-least-once", "exactly-once"])]
    delivery: Option<String>,
    /// Consumer group (ingest.group_id).
    #[arg(long)]
    group_id: Option<String>,
    /// Metrics listener address, empty to disable (metrics.listen).
    #[arg(long)]
    metrics_listen: Option<String>,
}

impl IngestArgs {
    /// The flags as a partial TOML document, the last configuration layer.
    fn overrides(&self) -> anyhow::Result<String> {
        overrides(&[
            ("kafka", "brokers", &self.brokers),
            ("ingest", "delivery", &self.delivery),
            ("ingest", "group_id", &self.group_id),
            ("metrics", "listen", &self.metrics_listen),
        ])
    }
}

/// Flags as a partial TOML document (section, key, value), the last configuration layer.
fn overrides(flags: &[(&str, &str, &Option<String>)]) -> anyhow::Result<String> {
    let mut doc = toml::Table::new();
    for (section, key, value) in flags {
        if let Some(v) = value {
            let table = doc
                .entry((*section).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = table {
                t.insert((*key).to_owned(), toml::Value::String(v.clone()));
            }
        }
    }
    Ok(toml::to_string(&doc)?)
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20_000)]
    devices: usize,
    /// Simulated time to cover (90s, 15m, 4h, 1h30m).
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    duration: i64,
    /// Seed: the same seed gives the same informs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A planted incident, kind@offset[:key=value,...] (repeatable): power_cut,
    /// acs_reboot, reboot_loop, wakeup_storm, factory_reset_wave; options model, acs,
    /// share, spread, count, every, for. E.g. power_cut@2h:model=HG8245H,share=0.8
    #[arg(long = "scenario", value_parser = parse_scenario)]
    scenarios: Vec<cwmp_sim::Scenario>,
}

fn parse_duration(text: &str) -> Result<i64, String> {
    cwmp_sim::parse_duration_ms(text).map_err(|e| e.to_string())
}

fn parse_scenario(text: &str) -> Result<cwmp_sim::Scenario, String> {
    text.parse()
        .map_err(|e: cwmp_sim::ScenarioError| e.to_string())
}

#[derive(Debug, Args)]
struct SimulateArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "localhost:9092")]
    brokers: String,
    /// The raw topic.
    #[arg(long, default_value = "cwmp.informs.raw")]
    topic: String,
    /// Informs per second of wall time; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Use this broker instead of the embedded one.
    #[arg(long)]
    brokers: Option<String>,
    /// Where to serve /metrics while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_listen: String,
    /// Keep running (and serving /metrics) this long after the input is done, e.g.
    /// 5m, for a Prometheus or Grafana to look at.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    linger: i64,
}

#[derive(Debug, Args)]
struct DetectArgs {
    /// TOML configuration file (the [detect] and [detect.rules] sections, and [kafka]).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replay EventRecord NDJSON in process instead of consuming Kafka.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long, conflicts_with = "replay")]
    brokers: Option<String>,
    /// What this process runs (detect.stage).
    #[arg(long, value_parser = ["all", "worker", "fleet"], conflicts_with = "replay")]
    stage: Option<String>,
    /// Metrics listener address, empty to disable (metrics.listen).
    #[arg(long, conflicts_with = "replay")]
    metrics_listen: Option<String>,
}

impl DetectArgs {
    fn overrides(&self) -> anyhow::Result<String> {
        overrides(&[
            ("kafka", "brokers", &self.brokers),
            ("detect", "stage", &self.stage),
            ("metrics", "listen", &self.metrics_listen),
        ])
    }
}

#[derive(Debug, Args)]
struct ExtractArgs {
    /// Files or directories holding one message each.
    #[arg(required_unless_present = "envelopes", conflicts_with = "envelopes")]
    paths: Vec<PathBuf>,
    /// A file with one JSON envelope per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    envelopes: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Charset of raw bodies when neither a BOM nor the XML declaration says (as an
    /// HTTP Content-Type charset would): utf-8, iso-8859-1 or windows-1252.
    #[arg(long, value_parser = parse_charset)]
    charset: Option<Charset>,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Largest accepted message in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Deepest accepted element nesting.
    #[arg(long, default_value_t = Limits::default().max_depth)]
    max_depth: usize,
    /// Most event codes in one Inform.
    #[arg(long, default_value_t = Limits::default().max_events)]
    max_events: usize,
    /// Most parameters in one Inform.
    #[arg(long, default_value_t = Limits::default().max_params)]
    max_params: usize,
}

impl From<&LimitArgs> for Limits {
    fn from(a: &LimitArgs) -> Self {
        Limits {
            max_message_bytes: a.max_message_bytes,
            max_depth: a.max_depth,
            max_events: a.max_events,
            max_params: a.max_params,
        }
    }
}

fn parse_charset(label: &str) -> Result<Charset, String> {
    Charset::from_label(label.as_bytes()).ok_or_else(|| {
        format!("unsupported charset {label:?} (use utf-8, iso-8859-1 or windows-1252)")
    })
}

fn run_extract(args: &ExtractArgs) -> anyhow::Result<u8> {
    let options = Options {
        limits: Limits::from(&args.limits),
        charset: args.charset,
    };
    let stdout = io::stdout().lock();
    let out = io::BufWriter::with_capacity(256 * 1024, stdout);
    let result = match &args.envelopes {
        Some(file) => extract::extract_envelopes(file, &options, out),
        None => extract::extract_paths(&args.paths, &options, out),
    };
    match result {
        Ok(tally) => Ok(tally.exit_code()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(err) => Err(err).context("writing results"),
    }
}

fn run_check_config(file: &std::path::Path) -> anyhow::Result<u8> {
    match Config::load(Some(file), None) {
        Ok(config) => {
            print!("{}", config.to_redacted_toml()?);
            for key in config.overridden_managed_keys() {
                eprintln!("warning: {key} overrides a property the service manages; delivery guarantees may not hold");
            }
            if config.ingest.delivery == Delivery::ExactlyOnce
                && config.ingest.transactional_id.is_empty()
            {
                eprintln!("note: ingest.transactional_id is empty; each instance uses <group_id>-$HOSTNAME");
            }
            Ok(0)
        }
        Err(err) => {
            eprintln!("cwmp-stream: invalid configuration: {err}");
            Ok(2)
        }
    }
}

/// Serves /metrics, /healthz and /readyz unless `metrics.listen` is empty.
async fn serve_metrics(
    config: &Config,
    render: http::Render,
    health: &Arc<health::Health>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if config.metrics.listen.is_empty() {
        return Ok(None);
    }
    let (addr, task) = http::serve(&config.metrics.listen, render, health.clone(), stop.clone())
        .await
        .with_context(|| format!("binding the metrics listener on {}", config.metrics.listen))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    Ok(Some(task))
}

fn run_ingest(args: &IngestArgs) -> anyhow::Result<u8> {
    let config = Config::load(args.config.as_deref(), Some(&args.overrides()?))?;
    telemetry::init(&config.log);
    runtime()?.block_on(async {
        let stop = shutdown::on_signals();
        let metrics = metrics::IngestMetrics::new();
        let health = Arc::new(health::Health::new(Duration::from_millis(
            config.ingest.stall_timeout_ms,
        )));
        let registry = metrics.clone();
        let server =
            serve_metrics(&config, Arc::new(move || registry.render()), &health, &stop).await?;
        let result = ingest::run(&config, metrics, health, stop).await;
        if let Some(task) = server {
            task.abort();
        }
        result
    })?;
    Ok(0)
}

fn run_detect(args: &DetectArgs) -> anyhow::Result<u8> {
    let config = Config::load(args.config.as_deref(), Some(&args.overrides()?))?;
    if let Some(file) = &args.replay {
        let input: Box<dyn io::BufRead> = if file.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            Box::new(io::BufReader::with_capacity(1 << 20, f))
        };
        let out = io::BufWriter::new(io::stdout().lock());
        let summary = match detect::replay::replay(&config.detect.rules, input, out, io::stderr()) {
            Ok(summary) => summary,
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(0),
            Err(err) => return Err(err).context("replaying"),
        };
        eprintln!(
            "replayed {} records: {} accepted, {} late, {} duplicate, {} invalid; {} alert transitions",
            summary.records, summary.accepted, summary.late, summary.duplicate, summary.invalid, summary.alerts
        );
        return Ok(0);
    }
    telemetry::init(&config.log);
    runtime()?.block_on(async {
        let stop = shutdown::on_signals();
        let metrics = detect::DetectMetrics::new();
        let health = Arc::new(health::Health::new(Duration::from_millis(
            config.detect.stall_timeout_ms,
        )));
        let registry = metrics.clone();
        let server =
            serve_metrics(&config, Arc::new(move || registry.render()), &health, &stop).await?;
        let result = detect::run(&config, metrics, health, stop).await;
        if let Some(task) = server {
            task.abort();
        }
        result
    })?;
    Ok(0)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_simulate(args: &SimulateArgs) -> anyhow::Result<u8> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        anyhow::bail!("--rate must be a non-negative number");
    }
    let sim = cwmp_sim::Simulator::new(cwmp_sim::SimConfig {
        devices: args.sim.devices,
        duration_ms: args.sim.duration,
        seed: args.sim.seed,
        scenarios: args.sim.scenarios.clone(),
        ..cwmp_sim::SimConfig::default()
    });
    for p in sim.planted() {
        eprintln!("planted: {} ({} devices)", p.scenario, p.devices.len());
    }
    let expected: u64 = sim
        .devices()
        .iter()
        .map(|d| (args.sim.duration / d.period_ms.max(1)) as u64 + 1)
        .sum();
    runtime()?.block_on(async {
        let kafka = cwmp_stream::config::KafkaConfig {
            brokers: args.brokers.clone(),
            ..Default::default()
        };
        let producer: rdkafka::producer::FutureProducer = cwmp_stream::kafka::producer_config(
            &kafka,
            &[
                ("linger.ms", "5"),
                ("compression.type", "lz4"),
                ("enable.idempotence", "true"),
            ],
        )
        .create()
        .context("creating the producer")?;
        let pace = cwmp_stream::simulate::Pace {
            rate: args.rate,
            ahead: None,
        };
        let produced =
            cwmp_stream::simulate::produce(sim, &producer, &args.topic, &pace, expected).await?;
        eprintln!(
            "simulate: {} informs ({:.1} MB) to {} in {:.1} s ({:.0} informs/s)",
            produced.informs,
            produced.bytes as f64 / 1e6,
            args.topic,
            produced.seconds,
            produced.informs as f64 / produced.seconds.max(1e-9)
        );
        anyhow::Ok(())
    })?;
    Ok(0)
}

fn run_demo(args: &DemoArgs) -> anyhow::Result<u8> {
    // Quiet service logs unless asked: the demo speaks through its report.
    if std::env::var_os("RUST_LOG").is_some() {
        telemetry::init(&cwmp_stream::config::LogConfig::default());
    }
    let options = cwmp_stream::demo::DemoOptions {
        devices: args.sim.devices,
        duration_ms: args.sim.duration,
        seed: args.sim.seed,
        brokers: args.brokers.clone(),
        scenarios: args.sim.scenarios.clone(),
        metrics_listen: args.metrics_listen.clone(),
        linger: Duration::from_millis(args.linger.max(0) as u64),
    };
    let report = runtime()?.block_on(cwmp_stream::demo::run(options))?;
    print!("{}", report.render());
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Extract(args) => run_extract(args),
        Command::Ingest(args) => run_ingest(args),
        Command::Detect(args) => run_detect(args),
        Command::Simulate(args) => run_simulate(args),
        Command::Demo(args) => run_demo(args),
        Command::CheckConfig { file } => run_check_config(file),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = writeln!(io::stderr(), "cwmp-stream: {err:#}");
            ExitCode::from(2)
        }
    }
}
