//! `cwmp-stream`: the command line over the services in the library.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use anyhow::Context;
use clap::Parser;
use cwmp_inform::Options;
use cwmp_stream::config::{Config, Delivery};
use cwmp_stream::{detect, extract, health, http, ingest, shutdown, telemetry};
use tokio::sync::watch;

mod cli;
use cli::{Cli, Command, DemoArgs, DetectArgs, ExtractArgs, IngestArgs, SimulateArgs};

fn run_extract(args: &ExtractArgs) -> anyhow::Result<u8> {
    let options = Options {
        limits: args.limits,
        charset: args.charset,
    };
    let stdout = io::stdout().lock();
    let out = io::BufWriter::with_capacity(256 * 1024, stdout);
    let tally = match &args.envelopes {
        Some(file) => extract::extract_envelopes(file, &options, out),
        None => extract::extract_paths(&args.paths, &options, out),
    }
    .context("writing results")?;
    Ok(tally.exit_code())
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

/// The start-up every Kafka service shares: logs, the async runtime, signals, health
/// and the metrics listener; then `service` until a signal stops it.
fn run_service<M, F, Fut>(
    config: &Config,
    stall_timeout_ms: u64,
    metrics: M,
    render: fn(&M) -> String,
    service: F,
) -> anyhow::Result<u8>
where
    M: Clone + Send + Sync + 'static,
    F: FnOnce(M, Arc<health::Health>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    telemetry::init(&config.log);
    runtime()?.block_on(async {
        let stop = shutdown::on_signals();
        let health = Arc::new(health::Health::new(Duration::from_millis(stall_timeout_ms)));
        let registry = metrics.clone();
        let server =
            serve_metrics(config, Arc::new(move || render(&registry)), &health, &stop).await?;
        let result = service(metrics, health, stop).await;
        if let Some(task) = server {
            task.abort();
        }
        result
    })?;
    Ok(0)
}

fn run_ingest(args: &IngestArgs) -> anyhow::Result<u8> {
    let config = Config::load(args.config.as_deref(), Some(&args.overrides()?))?;
    run_service(
        &config,
        config.ingest.stall_timeout_ms,
        ingest::IngestMetrics::new(),
        ingest::IngestMetrics::render,
        |metrics, health, stop| ingest::run(&config, metrics, health, stop),
    )
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
        let summary = detect::replay::replay(&config.detect.rules, input, out, io::stderr())
            .context("replaying")?;
        eprintln!(
            "replayed {} records: {} accepted, {} late, {} duplicate, {} invalid; {} alert transitions",
            summary.records, summary.accepted, summary.late, summary.duplicate, summary.invalid, summary.alerts
        );
        return Ok(0);
    }
    run_service(
        &config,
        config.detect.stall_timeout_ms,
        detect::DetectMetrics::new(),
        detect::DetectMetrics::render,
        |metrics, health, stop| detect::run(&config, metrics, health, stop),
    )
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
    runtime()?.block_on(async {
        let kafka = cwmp_stream::config::KafkaConfig {
            brokers: args.brokers.clone(),
            ..Default::default()
        };
        let producer = cwmp_stream::simulate::producer(&kafka)?;
        let pace = cwmp_stream::simulate::Pace {
            rate: args.rate,
            ahead: None,
        };
        let produced = cwmp_stream::simulate::produce(sim, &producer, &args.topic, &pace).await?;
        eprintln!(
            "simulate: {} messages ({} informs, {} transfer results; {:.1} MB) to {} in {:.1} s ({:.0} messages/s)",
            produced.messages,
            produced.messages - produced.transfers,
            produced.transfers,
            produced.bytes as f64 / 1e6,
            args.topic,
            produced.seconds,
            produced.messages as f64 / produced.seconds.max(1e-9)
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
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "cwmp-stream: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
