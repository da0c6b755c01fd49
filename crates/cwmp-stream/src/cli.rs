//! The command line: subcommands, their flags, and flags as a configuration layer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cwmp_inform::{Charset, Limits};

#[derive(Debug, Parser)]
#[command(
    name = "cwmp-stream",
    version,
    about = "Stream processor for TR-069 (CWMP) Inform traffic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
pub struct IngestArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Delivery semantics (ingest.delivery).
    #[arg(long, value_parser = ["at-least-once", "exactly-once"])]
    pub delivery: Option<String>,
    /// Consumer group (ingest.group_id).
    #[arg(long)]
    pub group_id: Option<String>,
    /// Metrics listener address, empty to disable (metrics.listen).
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

impl IngestArgs {
    /// The flags as a partial TOML document, the last configuration layer.
    pub fn overrides(&self) -> anyhow::Result<String> {
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
pub struct SimArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 20_000)]
    pub devices: usize,
    /// Simulated time to cover (90s, 15m, 4h, 1h30m).
    #[arg(long, default_value = "5h", value_parser = parse_duration)]
    pub duration: i64,
    /// Seed: the same seed gives the same informs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A planted incident, kind@offset[:key=value,...] (repeatable): power_cut,
    /// acs_reboot, reboot_loop, wakeup_storm, factory_reset_wave, firmware_rollout,
    /// outage; options model, acs, share, spread, count, every, for, for
    /// firmware_rollout fail, fault, to, and for outage network (a.b.c.d/len) and
    /// return (boot or noboot). E.g. power_cut@2h:model=HG8245H,share=0.8 or
    /// outage@1h:network=100.64.4.0/22,for=150m,return=noboot
    #[arg(long = "scenario", value_parser = parse_scenario)]
    pub scenarios: Vec<cwmp_sim::Scenario>,
}

fn parse_duration(text: &str) -> Result<i64, String> {
    cwmp_sim::parse_duration_ms(text).map_err(|e| e.to_string())
}

fn parse_scenario(text: &str) -> Result<cwmp_sim::Scenario, String> {
    text.parse()
        .map_err(|e: cwmp_sim::ScenarioError| e.to_string())
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "localhost:9092")]
    pub brokers: String,
    /// The raw topic.
    #[arg(long, default_value = "cwmp.informs.raw")]
    pub topic: String,
    /// Informs per second of wall time; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Use this broker instead of the embedded one.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Where to serve /metrics while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Keep running (and serving /metrics) this long after the input is done, e.g.
    /// 5m, for a Prometheus or Grafana to look at.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub linger: i64,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// TOML configuration file (the [detect] and [detect.rules] sections, and [kafka]).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Replay EventRecord NDJSON in process instead of consuming Kafka.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long, conflicts_with = "replay")]
    pub brokers: Option<String>,
    /// What this process runs (detect.stage).
    #[arg(long, value_parser = ["all", "worker", "fleet"], conflicts_with = "replay")]
    pub stage: Option<String>,
    /// Metrics listener address, empty to disable (metrics.listen).
    #[arg(long, conflicts_with = "replay")]
    pub metrics_listen: Option<String>,
}

impl DetectArgs {
    pub fn overrides(&self) -> anyhow::Result<String> {
        overrides(&[
            ("kafka", "brokers", &self.brokers),
            ("detect", "stage", &self.stage),
            ("metrics", "listen", &self.metrics_listen),
        ])
    }
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Files or directories holding one message each.
    #[arg(required_unless_present = "envelopes", conflicts_with = "envelopes")]
    pub paths: Vec<PathBuf>,
    /// A file with one JSON envelope per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub envelopes: Option<PathBuf>,
    #[command(flatten)]
    pub limits: Limits,
    /// Charset of raw bodies when neither a BOM nor the XML declaration says (as an
    /// HTTP Content-Type charset would): utf-8, iso-8859-1 or windows-1252.
    #[arg(long, value_parser = parse_charset)]
    pub charset: Option<Charset>,
}

fn parse_charset(label: &str) -> Result<Charset, String> {
    Charset::from_label(label.as_bytes()).ok_or_else(|| {
        format!("unsupported charset {label:?} (use utf-8, iso-8859-1 or windows-1252)")
    })
}
