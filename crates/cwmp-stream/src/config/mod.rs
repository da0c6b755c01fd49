//! Service configuration: defaults, then a TOML file, then `CWMP__SECTION__KEY`
//! environment variables, then command-line flags. Typed fields for what the service
//! relies on; raw librdkafka property maps for what it passes through, applied last.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use cwmp_inform::Limits;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod problems;
pub use problems::Problem;

/// Prefix of environment variables: `CWMP__INGEST__DELIVERY=exactly-once`.
pub const ENV_PREFIX: &str = "CWMP__";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
    pub detect: DetectServiceConfig,
    /// The extractor's bounds (`[limits]`), as `cwmp_inform` defines them.
    pub limits: Limits,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `group.instance.id` of every group consumer (static membership): a stable
    /// identity per instance (a StatefulSet pod's name) lets a restarted instance
    /// take its partitions back at once instead of after the dead one's session
    /// timeout. Empty: dynamic membership. Must be unique within each group.
    pub group_instance_id: String,
    /// librdkafka properties for every client (TLS, SASL, client.id …).
    #[serde(deserialize_with = "properties")]
    pub client: BTreeMap<String, String>,
    /// librdkafka properties for consumers only, applied after `client`.
    #[serde(deserialize_with = "properties")]
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for producers only, applied after `client`.
    #[serde(deserialize_with = "properties")]
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".to_owned(),
            group_instance_id: String::new(),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// librdkafka takes every property as a string; TOML and the environment may give
/// numbers or booleans (`linger.ms = 5`, `CWMP__KAFKA__PRODUCER__LINGER_MS=5`).
fn properties<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Bool(bool),
        Int(i64),
        Uint(u64),
        Float(f64),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Uint(u) => u.to_string(),
                Scalar::Float(f) => f.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// How outputs and input offsets are tied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// An input offset is stored only after every output it caused is acknowledged;
    /// a crash replays the unacknowledged tail (bounded duplicates, no loss).
    AtLeastOnce,
    /// Outputs and input offsets commit in one Kafka transaction; downstream readers
    /// use `isolation.level=read_committed`.
    ExactlyOnce,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::ExactlyOnce => "exactly-once",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub input_topic: String,
    pub output_topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    pub delivery: Delivery,
    /// Exactly-once only: the producer's `transactional.id`; must be unique per
    /// instance and stable across its restarts (the pod name, say). Empty means
    /// `<group_id>-<HOSTNAME>`.
    pub transactional_id: String,
    /// Most messages handed to an extraction task at once.
    pub batch_max_messages: usize,
    /// Exactly-once only: longest wait to fill a transaction before committing it.
    pub transaction_max_ms: u64,
    /// Most input messages consumed but not yet acknowledged (backpressure bound).
    pub max_in_flight: usize,
    /// On SIGTERM/SIGINT: how long to wait for in-flight outputs before exiting.
    pub drain_timeout_ms: u64,
    /// `/readyz` turns unready when there is lag and nothing was consumed for this long.
    pub stall_timeout_ms: u64,
    /// The table that attributes transfer results to the device of their session.
    pub sessions: crate::ingest::sessions::SessionsConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            input_topic: "cwmp.informs.raw".to_owned(),
            output_topic: "cwmp.events".to_owned(),
            dlq_topic: "cwmp.informs.dlq".to_owned(),
            group_id: "cwmp-ingest".to_owned(),
            delivery: Delivery::AtLeastOnce,
            transactional_id: String::new(),
            batch_max_messages: 256,
            transaction_max_ms: 100,
            max_in_flight: 20_000,
            drain_timeout_ms: 20_000,
            stall_timeout_ms: 60_000,
            sessions: Default::default(),
        }
    }
}

/// Which part of the detect service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Worker and fleet stage in one process.
    All,
    /// Per-device detectors and partial aggregates (scale with `detect.input_topic` partitions).
    Worker,
    /// Merges partial aggregates and decides fleet alerts.
    Fleet,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::All => "all",
            Stage::Worker => "worker",
            Stage::Fleet => "fleet",
        })
    }
}

/// Where the detect stages keep their detector state between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// Per-partition checkpoints in compacted Kafka topics (`detect.state_topic`,
    /// `detect.fleet_state_topic`), restored when a partition is assigned.
    Kafka,
    /// In memory only: a restart or a rebalance starts the moved partitions cold.
    Memory,
}

impl fmt::Display for StateBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateBackend::Kafka => "kafka",
            StateBackend::Memory => "memory",
        })
    }
}

/// The longest checkpoint interval with exactly-once detect: half the
/// transaction timeout (`transaction.timeout.ms`, 60 s), so that a slow checkpoint
/// still commits in time.
pub const MAX_TRANSACTION_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectServiceConfig {
    /// EventRecords (ingest's output).
    pub input_topic: String,
    /// Partial window aggregates, worker → fleet stage.
    pub aggregates_topic: String,
    pub alerts_topic: String,
    /// Consumer group of the workers.
    pub group_id: String,
    /// Consumer group of the fleet stage.
    pub fleet_group_id: String,
    pub stage: Stage,
    /// Most records handed to the detectors at once.
    pub batch_max_messages: usize,
    /// A worker's watermark waits for every assigned partition, except one that has
    /// been caught up (at its end, nothing new) for this long (wall time).
    pub partition_idle_ms: u64,
    /// On SIGTERM/SIGINT: how long to wait for outputs before exiting.
    pub drain_timeout_ms: u64,
    /// `/readyz` turns unready when there is lag and nothing was consumed for this long.
    pub stall_timeout_ms: u64,
    /// Where detector state is kept: `kafka` (checkpoints, survives restarts and
    /// rebalances) or `memory`.
    pub state: StateBackend,
    /// The workers' checkpoints: compacted, as many partitions as `input_topic`.
    pub state_topic: String,
    /// The fleet stage's checkpoints: compacted, as many partitions as `aggregates_topic`.
    pub fleet_state_topic: String,
    /// How often (wall time) each stage checkpoints the partitions that changed and
    /// commits their input offsets; a restart replays at most this much input.
    pub checkpoint_interval_ms: u64,
    /// Replication factor of the state topics the service creates; -1 takes the
    /// broker's default.
    pub state_topic_replication: i32,
    /// `at-least-once`: outputs are acknowledged before each checkpoint commits its
    /// offsets (a kill resends what followed the last one). `exactly-once`: the
    /// outputs, the checkpoint and the input offsets since the last checkpoint
    /// commit in one Kafka transaction (readers of the aggregates and alerts use
    /// `isolation.level=read_committed`). Needs `state = "kafka"`.
    pub delivery: Delivery,
    /// Exactly-once only: the producer's `transactional.id` prefix, one per
    /// instance and stable across its restarts; the stage is appended. Empty means
    /// `<group_id>-<HOSTNAME>` (the pod name on Kubernetes).
    pub transactional_id: String,
    /// Detector thresholds and windows (`[detect.rules]`, `[detect.rules.boot_storm]`, …).
    pub rules: cwmp_detect::DetectConfig,
}

impl Default for DetectServiceConfig {
    fn default() -> Self {
        DetectServiceConfig {
            input_topic: "cwmp.events".to_owned(),
            aggregates_topic: "cwmp.aggregates".to_owned(),
            alerts_topic: "cwmp.alerts".to_owned(),
            group_id: "cwmp-detect".to_owned(),
            fleet_group_id: "cwmp-detect-fleet".to_owned(),
            stage: Stage::All,
            batch_max_messages: 1024,
            partition_idle_ms: 3_000,
            drain_timeout_ms: 20_000,
            stall_timeout_ms: 60_000,
            state: StateBackend::Kafka,
            state_topic: "cwmp.detect-state".to_owned(),
            fleet_state_topic: "cwmp.detect-fleet-state".to_owned(),
            checkpoint_interval_ms: 10_000,
            state_topic_replication: -1,
            delivery: Delivery::AtLeastOnce,
            transactional_id: String::new(),
            rules: cwmp_detect::DetectConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics`, `/healthz`, `/readyz` listener; empty disables it.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "0.0.0.0:9464".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `cwmp_stream=debug,rdkafka=warn` …
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Why a configuration was refused: every problem found, not only the first.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(message: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![Problem::new("", message)],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} configuration problems:", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Layers defaults, the file (when given), the environment, and `overrides`
    /// (already-parsed flags, as a partial TOML document). Reports every problem at
    /// once: unknown keys (with the nearest known one) and values of the wrong kind
    /// with their file line or variable, then each section's value errors, then what
    /// [`Config::validate`] refuses.
    pub fn load(file: Option<&Path>, overrides: Option<&str>) -> Result<Config, ConfigError> {
        let known = toml::Table::try_from(Config::default())
            .map(problems::Known::new)
            .map_err(|e| ConfigError::one(format!("the defaults do not serialize: {e}")))?;
        let mut found = Vec::new();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let mut text = String::new();
        if let Some(path) = file {
            text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ConfigError::one(format!(
                        "config file {} not found",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(ConfigError::one(format!(
                        "config file {}: {e}",
                        path.display()
                    )))
                }
            };
            found.extend(known.check_file(&path.display().to_string(), &text));
            figment = figment.merge(Toml::file(path));
        }
        // vars() would panic on a variable that is not Unicode: skip those (none of
        // ours can be one; figment reads vars_os too).
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        found.extend(known.check_env(ENV_PREFIX, vars));
        figment = figment.merge(env_provider());
        if let Some(flags) = overrides {
            figment = figment.merge(Toml::string(flags));
        }
        // Section by section, so that a bad value in one does not hide another's.
        let mut config = Config::default();
        let file_name = file.map(|p| p.display().to_string()).unwrap_or_default();
        let mut section = |name: &str, result: Result<(), figment::Error>| {
            if let Err(errors) = result {
                for e in errors {
                    let problem = figment_problem(name, &e, &file_name, &text);
                    // Already said, with its line, by the key check.
                    if !found
                        .iter()
                        .any(|p: &Problem| !p.key.is_empty() && problem.key.starts_with(&p.key))
                    {
                        found.push(problem);
                    }
                }
            }
        };
        // Each top-level table into its field of `config`.
        macro_rules! sections {
            ($($name:ident),*) => {$(
                section(
                    stringify!($name),
                    figment
                        .extract_inner(stringify!($name))
                        .map(|v| config.$name = v),
                );
            )*};
        }
        sections!(kafka, ingest, detect, limits, metrics, log);
        // Top-level keys the sections do not cover.
        if let Err(errors) = figment.extract::<Config>() {
            for e in errors {
                if e.path.len() <= 1 && matches!(e.kind, figment::error::Kind::UnknownField(..)) {
                    section("", Err(e));
                }
            }
        }
        config.normalize();
        if let Err(e) = config.validate() {
            found.extend(e.problems.into_iter().map(|p| locate(p, &file_name, &text)));
        }
        if found.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems: found })
        }
    }

    /// Passthrough keys from the environment arrive as `ssl_ca_location`; librdkafka
    /// names use dots (and none has an underscore), so turn them back.
    fn normalize(&mut self) {
        for map in [
            &mut self.kafka.client,
            &mut self.kafka.consumer,
            &mut self.kafka.producer,
        ] {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, v)| (k.replace('_', "."), v))
                .collect();
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers is empty".to_owned());
        }
        for (name, value) in [
            ("ingest.input_topic", &self.ingest.input_topic),
            ("ingest.output_topic", &self.ingest.output_topic),
            ("ingest.dlq_topic", &self.ingest.dlq_topic),
            ("ingest.group_id", &self.ingest.group_id),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{name} is empty"));
            }
        }
        if self.ingest.input_topic == self.ingest.output_topic
            || self.ingest.input_topic == self.ingest.dlq_topic
        {
            problems
                .push("ingest.input_topic must differ from the output and DLQ topics".to_owned());
        }
        if self.ingest.batch_max_messages == 0 || self.ingest.max_in_flight == 0 {
            problems.push(
                "ingest.batch_max_messages and ingest.max_in_flight must be at least 1".to_owned(),
            );
        }
        let l = &self.limits;
        if l.max_message_bytes == 0 || l.max_depth < 4 || l.max_events == 0 || l.max_params == 0 {
            problems.push(
                "limits: max_message_bytes, max_events and max_params must be at least 1, max_depth at least 4"
                    .to_owned(),
            );
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            problems.push(format!(
                "metrics.listen {:?} is not an address:port",
                self.metrics.listen
            ));
        }
        if let Err(why) = check_log_filter(&self.log.level) {
            problems.push(format!("log.level {:?}: {why}", self.log.level));
        }
        let d = &self.detect;
        for (name, value) in [
            ("detect.input_topic", &d.input_topic),
            ("detect.aggregates_topic", &d.aggregates_topic),
            ("detect.alerts_topic", &d.alerts_topic),
            ("detect.group_id", &d.group_id),
            ("detect.fleet_group_id", &d.fleet_group_id),
            ("detect.state_topic", &d.state_topic),
            ("detect.fleet_state_topic", &d.fleet_state_topic),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{name} is empty"));
            }
        }
        if d.group_id == d.fleet_group_id {
            problems.push("detect.group_id and detect.fleet_group_id must differ".to_owned());
        }
        if d.batch_max_messages == 0 {
            problems.push("detect.batch_max_messages must be at least 1".to_owned());
        }
        let topics = [
            &d.input_topic,
            &d.aggregates_topic,
            &d.alerts_topic,
            &d.state_topic,
            &d.fleet_state_topic,
        ];
        for (i, a) in topics.iter().enumerate() {
            if topics[i + 1..].contains(a) {
                problems.push(format!(
                    "detect: topic {a:?} is named twice (input, aggregates, alerts, state and fleet state topics must differ)"
                ));
            }
        }
        // A checkpoint written into a topic of records would corrupt it for every reader.
        for (name, state) in [
            ("detect.state_topic", &d.state_topic),
            ("detect.fleet_state_topic", &d.fleet_state_topic),
        ] {
            let i = &self.ingest;
            if [&i.input_topic, &i.output_topic, &i.dlq_topic].contains(&state) {
                problems.push(format!("{name} {state:?} is one of ingest's topics"));
            }
        }
        if d.checkpoint_interval_ms < 100 {
            problems.push("detect.checkpoint_interval_ms must be at least 100".to_owned());
        }
        if d.state_topic_replication == 0 || d.state_topic_replication < -1 {
            problems.push(
                "detect.state_topic_replication must be -1 (the broker's default) or at least 1"
                    .to_owned(),
            );
        }
        if d.delivery == Delivery::ExactlyOnce {
            if d.state != StateBackend::Kafka {
                problems.push(
                    "detect.delivery = \"exactly-once\" needs detect.state = \"kafka\" (the checkpoint commits in the transaction)"
                        .to_owned(),
                );
            }
            if d.checkpoint_interval_ms > MAX_TRANSACTION_MS {
                problems.push(format!(
                    "detect.checkpoint_interval_ms must be at most {MAX_TRANSACTION_MS} with detect.delivery = \"exactly-once\" (a transaction stays open from one checkpoint to the next, and the broker aborts one open for 60 s)"
                ));
            }
        }
        problems.extend(crate::kafka::properties::refused(&self.kafka));
        if let Err(err) = d.rules.validate() {
            problems.push(format!("detect.rules: {}", err.0));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: problems
                    .into_iter()
                    .map(|message| Problem::new("", message))
                    .collect(),
            })
        }
    }

    /// Passthrough properties that override what the service manages (see
    /// [`crate::kafka::properties`]).
    pub fn overridden_managed_keys(&self) -> Vec<String> {
        crate::kafka::properties::overridden(&self.kafka)
    }

    /// The effective configuration as TOML, with secrets replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        for map in [
            &mut shown.kafka.client,
            &mut shown.kafka.consumer,
            &mut shown.kafka.producer,
        ] {
            for (key, value) in map.iter_mut() {
                if is_secret(key) {
                    *value = "<redacted>".to_owned();
                }
            }
        }
        toml::to_string_pretty(&shown).map_err(|e| ConfigError::one(e.to_string()))
    }
}

/// Level names a log filter directive may end with.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Checks a `tracing` filter the way a person means it. `EnvFilter` takes a bare
/// word it does not know as a *target* (so `warning` or `verbose` would silence
/// every log line): here a bare word must be a level, and `target=level` must end
/// with one.
fn check_log_filter(filter: &str) -> Result<(), String> {
    let level_ok = |l: &str| {
        let l = l.trim().to_ascii_lowercase();
        LOG_LEVELS.contains(&l.as_str()) || matches!(l.as_str(), "0" | "1" | "2" | "3" | "4" | "5")
    };
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None if directive.contains('[') => continue,
            None => directive,
        };
        if !level_ok(level) {
            return Err(format!(
                "{level:?} is not a level (use one of {}, or target=level)",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| format!("not a valid filter: {e}"))
}

/// Whether a librdkafka property holds a secret (passwords, private keys, tokens).
/// File locations are not secrets.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with(".location") {
        return false;
    }
    [
        "password",
        "secret",
        "token",
        "key.pem",
        "sasl.oauthbearer.config",
        "sasl.jaas",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// A problem of [`Config::validate`], which starts with the key it is about
/// (`log.level "warning": …`): where that key was set, the variable or the line.
fn locate(mut p: Problem, file: &str, text: &str) -> Problem {
    let first = p.message.split([' ', ':']).next().unwrap_or_default();
    let path: Vec<String> = first.split('.').map(str::to_owned).collect();
    if path.len() < 2
        || !path
            .iter()
            .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return p;
    }
    p.key = first.to_owned();
    let var = format!("{ENV_PREFIX}{}", path.join("__").to_ascii_uppercase());
    p.place = if std::env::var_os(&var).is_some() {
        Some(format!("environment variable {var}"))
    } else {
        problems::line_of_key(text, &path).map(|n| format!("{file} line {n}"))
    };
    p
}

/// A figment error as a [`Problem`]: its key, and where the value came from (the
/// file's line, or the environment variable).
fn figment_problem(section: &str, e: &figment::Error, file: &str, text: &str) -> Problem {
    // `extract_inner(section)` appends the section to the path instead of prepending it.
    let mut inner = e.path.clone();
    if !section.is_empty() && inner.last().map(String::as_str) == Some(section) {
        inner.pop();
    }
    let mut path: Vec<String> = Vec::new();
    if !section.is_empty() {
        path.push(section.to_owned());
    }
    path.extend(inner);
    // An unknown field is reported at its table; name the field itself.
    if let figment::error::Kind::UnknownField(field, _) = &e.kind {
        path.push(field.clone());
    }
    let key = path.join(".");
    let message = match &e.kind {
        figment::error::Kind::UnknownField(..) => format!("{key} is unknown"),
        kind => format!("{key}: {kind}").replace("``", "`"),
    };
    let place = e.metadata.as_ref().and_then(|m| match &m.source {
        // Named as the user wrote it, not as figment resolved it.
        Some(figment::Source::File(_)) => Some(match problems::line_of_key(text, &path) {
            Some(n) => format!("{file} line {n}"),
            None => file.to_owned(),
        }),
        _ if m.name.contains("environment") => Some(format!(
            "environment variable {ENV_PREFIX}{}",
            path.join("__").to_ascii_uppercase()
        )),
        _ => None,
    });
    Problem {
        key,
        message,
        place,
    }
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).split("__")
}

#[cfg(test)]
// figment::Jail closures return figment::Error, which is large; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        c.validate().expect("defaults");
        assert_eq!(c.ingest.delivery, Delivery::AtLeastOnce);
        assert_eq!(c.ingest.input_topic, "cwmp.informs.raw");
    }

    #[test]
    fn layers_file_env_and_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                r#"
                [kafka]
                brokers = "file:9092"
                [kafka.client]
                "security.protocol" = "SASL_SSL"
                "sasl.mechanisms" = "PLAIN"
                "sasl.username" = "cwmp"
                "sasl.password" = "hunter2"
                [ingest]
                delivery = "exactly-once"
                group_id = "from-file"
                "#,
            )?;
            jail.set_env("CWMP__INGEST__GROUP_ID", "from-env");
            jail.set_env("CWMP__KAFKA__PRODUCER__LINGER_MS", "20");
            jail.set_env("CWMP__KAFKA__CONSUMER__AUTO_COMMIT_INTERVAL_MS", "200");
            jail.set_env("CWMP__KAFKA__CLIENT__SOCKET_KEEPALIVE_ENABLE", "true");
            let c = Config::load(
                Some(Path::new("c.toml")),
                Some("[kafka]\nbrokers = \"flag:9092\"\n"),
            )
            .expect("load");
            assert_eq!(c.kafka.brokers, "flag:9092");
            assert_eq!(c.ingest.group_id, "from-env");
            assert_eq!(c.ingest.delivery, Delivery::ExactlyOnce);
            assert_eq!(
                c.kafka.producer.get("linger.ms").map(String::as_str),
                Some("20")
            );
            let shown = c.to_redacted_toml().expect("toml");
            assert!(
                shown.contains("<redacted>") && !shown.contains("hunter2"),
                "{shown}"
            );
            assert!(shown.contains("SASL_SSL"));
            Ok(())
        });
    }

    #[test]
    fn refuses_bad_values_clearly() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[ingest]\ndelivery = \"twice\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), None).expect_err("bad delivery");
            assert!(
                err.to_string().contains("delivery") || err.to_string().contains("twice"),
                "{err}"
            );
            jail.create_file("typo.toml", "[ingest]\ninput_topik = \"x\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")), None).expect_err("unknown field");
            assert!(err.to_string().contains("input_topik"), "{err}");
            jail.create_file(
                "same.toml",
                "[ingest]\noutput_topic = \"cwmp.informs.raw\"\n",
            )?;
            let err = Config::load(Some(Path::new("same.toml")), None).expect_err("same topic");
            assert!(err.to_string().contains("differ"), "{err}");
            jail.create_file("state.toml", "[detect]\nstate = \"disk\"\n")?;
            let err = Config::load(Some(Path::new("state.toml")), None).expect_err("bad state");
            assert!(err.to_string().contains("disk"), "{err}");
            jail.create_file(
                "state-topic.toml",
                "[detect]\nstate_topic = \"cwmp.aggregates\"\ncheckpoint_interval_ms = 10\nstate_topic_replication = 0\n",
            )?;
            let err =
                Config::load(Some(Path::new("state-topic.toml")), None).expect_err("state topic");
            let shown = err.to_string();
            for want in [
                "detect.checkpoint_interval_ms must be at least 100",
                "detect.state_topic_replication",
                "cwmp.aggregates",
            ] {
                assert!(shown.contains(want), "{want}: {shown}");
            }
            jail.create_file(
                "eos.toml",
                "[detect]\ndelivery = \"exactly-once\"\nstate = \"memory\"\ncheckpoint_interval_ms = 45000\n",
            )?;
            let shown = Config::load(Some(Path::new("eos.toml")), None)
                .expect_err("exactly-once without state")
                .to_string();
            for want in [
                "needs detect.state = \"kafka\"",
                "checkpoint_interval_ms must be at most 30000",
            ] {
                assert!(shown.contains(want), "{want}: {shown}");
            }
            jail.create_file("eos-ok.toml", "[detect]\ndelivery = \"exactly-once\"\n")?;
            let c =
                Config::load(Some(Path::new("eos-ok.toml")), None).expect("exactly-once detect");
            assert_eq!(c.detect.delivery, Delivery::ExactlyOnce);
            let err = Config::load(Some(Path::new("missing.toml")), None).expect_err("missing");
            assert!(err.to_string().contains("not found"), "{err}");
            Ok(())
        });
    }

    /// Every problem at once, each with its key and where it was written, in the
    /// order they come: keys and kinds (with lines), then each section's first value
    /// error, then what validation refuses; the environment named as such.
    #[test]
    fn reports_every_problem_with_its_place() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "many.toml",
                "[ingest]\ninput_topc = \"x\"\ndelivery = \"twice\"\n\n[detect]\nbatch_max_messages = \"lots\"\n\n[log]\nlevel = \"warning\"\n",
            )?;
            jail.set_env("CWMP__METRICS__LISTN", "0.0.0.0:1");
            let err = Config::load(Some(Path::new("many.toml")), None).expect_err("refused");
            let shown: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
            assert_eq!(
                shown,
                vec![
                    "ingest.input_topc is unknown; did you mean input_topic? (in many.toml line 2)",
                    "detect.batch_max_messages must be an integer, not a string (in many.toml line 6)",
                    "metrics.listn is unknown; did you mean listen? (in environment variable CWMP__METRICS__LISTN)",
                    "ingest.delivery: unknown variant: found `twice`, expected `at-least-once` or `exactly-once` (in many.toml line 3)",
                    "log.level \"warning\": \"warning\" is not a level (use one of trace, debug, info, warn, error, off, or target=level) (in many.toml line 9)",
                ],
                "{err}"
            );
            assert!(
                err.to_string().starts_with("5 configuration problems:"),
                "{err}"
            );
            Ok(())
        });
    }

    /// `config/cwmp-stream.example.toml` says it shows the defaults: every key it sets
    /// has its default value, and it sets every key there is (the passthrough maps
    /// hold examples, which the file says are not defaults).
    #[test]
    fn the_example_file_shows_every_default() {
        let text = include_str!("../../../../config/cwmp-stream.example.toml");
        let mut example: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .expect("the example parses");
        example.normalize();
        example.kafka.client.clear();
        example.kafka.consumer.clear();
        example.kafka.producer.clear();
        assert_eq!(example, Config::default());

        fn missing(
            defaults: &toml::Table,
            example: &toml::Table,
            path: &str,
            out: &mut Vec<String>,
        ) {
            for (key, value) in defaults {
                let here = format!("{path}{key}");
                match (value, example.get(key)) {
                    (_, None) => out.push(here),
                    (toml::Value::Table(d), Some(toml::Value::Table(e))) => {
                        missing(d, e, &format!("{here}."), out)
                    }
                    _ => {}
                }
            }
        }
        let defaults = toml::Table::try_from(Config::default()).expect("defaults as TOML");
        let shown: toml::Table = toml::from_str(text).expect("the example is TOML");
        let mut out = Vec::new();
        missing(&defaults, &shown, "", &mut out);
        assert!(out.is_empty(), "the example does not show {out:?}");
    }

    #[test]
    fn log_filters_are_levels_a_person_means() {
        for good in [
            "info",
            "WARN",
            "cwmp_stream=debug,rdkafka=warn",
            "warn,librdkafka=off",
            "",
        ] {
            assert!(check_log_filter(good).is_ok(), "{good}");
        }
        for bad in ["warning", "verbose", "cwmp_stream=loud"] {
            let err = check_log_filter(bad).expect_err(bad);
            assert!(
                err.contains("is not a level") && err.contains("warn"),
                "{err}"
            );
        }
        let mut c = Config::default();
        c.log.level = "warning".into();
        let err = c.validate().expect_err("a typo in log.level");
        assert!(err.to_string().contains("log.level \"warning\""), "{err}");
    }

    #[test]
    fn secrets() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "ssl.keystore.password",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "ssl.key.location",
            "ssl.ca.location",
            "sasl.username",
            "linger.ms",
            "security.protocol",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn managed_overrides_are_reported() {
        let mut c = Config::default();
        c.kafka
            .consumer
            .insert("enable.auto.offset.store".into(), "true".into());
        assert_eq!(
            c.overridden_managed_keys(),
            vec!["kafka.consumer.\"enable.auto.offset.store\"".to_owned()]
        );
    }
}
