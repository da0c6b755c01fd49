//! The librdkafka properties the services set, each with the reason beside it.
//!
//! A client gets ours first and the passthrough maps (`[kafka.client]`, then
//! `[kafka.consumer]` or `[kafka.producer]`) last, so an operator can override
//! anything. The properties our guarantees rest on are listed here once, and
//! [`overridden`] names every passthrough key that overrides one of them
//! (`check-config` warns about each).

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use crate::config::KafkaConfig;

/// Set on every client: lag, queue depth and `/readyz` come from these statistics.
const STATISTICS: (&str, &str) = ("statistics.interval.ms", "5000");

/// At-least-once consumption: the service stores an offset only after every output
/// of that input is acknowledged; librdkafka auto-commits what is stored.
pub const STORE_AFTER_ACK: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    // Offsets are stored by the service after the outputs are acknowledged.
    ("enable.auto.offset.store", "false"),
    ("auto.commit.interval.ms", "1000"),
    // A new group reads the topic from its start: nothing published before is lost.
    ("auto.offset.reset", "earliest"),
];

/// Exactly-once consumption: offsets commit inside the producer's transaction only,
/// and only committed inputs are read.
pub const TRANSACTIONAL_CONSUMER: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("isolation.level", "read_committed"),
    ("auto.offset.reset", "earliest"),
];

/// The detect stages: offsets are committed by the service, at checkpoints, once
/// the state and every output before them are acknowledged.
pub const COMMIT_AT_CHECKPOINT: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    // A new group reads the topic from its start: nothing published before is lost.
    ("auto.offset.reset", "earliest"),
];

/// How the services' group consumers share partitions.
pub const GROUP_MEMBERSHIP: &[(&str, &str)] = &[
    // Incremental (cooperative) rebalancing: a member joining or leaving moves only
    // the partitions that change owner; the others keep being consumed, with their
    // in-memory state (sessions, detector clocks), instead of all stopping.
    ("partition.assignment.strategy", "cooperative-sticky"),
];

/// The detect worker's watermark waits only for partitions that have a backlog: it
/// needs end-of-partition events (`true`); other consumers turn them off.
pub const PARTITION_EOF: &str = "enable.partition.eof";

/// What every producer's delivery guarantees rest on.
pub const PRODUCER_GUARANTEES: &[(&str, &str)] = &[
    // Keeps per-partition order across retries, without duplicates.
    ("enable.idempotence", "true"),
    // An output not delivered in 5 minutes fails the service rather than hanging.
    ("message.timeout.ms", "300000"),
];

/// Throughput tuning for small records; the passthrough may change these freely.
pub const PRODUCER_TUNING: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "200000"),
];

/// Exactly-once producing, besides the `transactional.id`.
pub const TRANSACTIONAL_PRODUCER: &[(&str, &str)] = &[
    ("transaction.timeout.ms", "60000"),
    // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
    ("message.timeout.ms", "60000"),
];

/// The producer settings of every service: guarantees, then tuning.
pub fn producer_defaults() -> Vec<(&'static str, &'static str)> {
    [PRODUCER_GUARANTEES, PRODUCER_TUNING].concat()
}

/// Keys set from the configuration rather than from a constant.
const CONSUMER_IDENTITY: &[&str] = &["bootstrap.servers", "group.id"];
const PRODUCER_IDENTITY: &[&str] = &["bootstrap.servers", "transactional.id"];

/// Consumer keys the service manages: overriding one may break delivery or health.
pub fn managed_consumer_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = CONSUMER_IDENTITY.to_vec();
    keys.push(STATISTICS.0);
    keys.push(PARTITION_EOF);
    keys.extend(
        STORE_AFTER_ACK
            .iter()
            .chain(TRANSACTIONAL_CONSUMER)
            .chain(COMMIT_AT_CHECKPOINT)
            .map(|(k, _)| *k),
    );
    dedup(keys)
}

/// Producer keys the service manages (tuning is not among them).
pub fn managed_producer_keys() -> Vec<&'static str> {
    let mut keys: Vec<&str> = PRODUCER_IDENTITY.to_vec();
    keys.push(STATISTICS.0);
    keys.extend(
        PRODUCER_GUARANTEES
            .iter()
            .chain(TRANSACTIONAL_PRODUCER)
            .map(|(k, _)| *k),
    );
    dedup(keys)
}

fn dedup(mut keys: Vec<&'static str>) -> Vec<&'static str> {
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Passthrough keys that override a managed property, as `kafka.SECTION."key"`.
pub fn overridden(kafka: &KafkaConfig) -> Vec<String> {
    let consumer = managed_consumer_keys();
    let producer = managed_producer_keys();
    let client = dedup([consumer.clone(), producer.clone()].concat());
    let mut out = Vec::new();
    for (section, map, managed) in [
        ("client", &kafka.client, &client),
        ("consumer", &kafka.consumer, &consumer),
        ("producer", &kafka.producer, &producer),
    ] {
        for key in map.keys() {
            if managed.contains(&key.as_str()) {
                out.push(format!("kafka.{section}.\"{key}\""));
            }
        }
    }
    out
}

/// Passthrough properties librdkafka itself refuses (an unknown name, a value of the
/// wrong type such as `5.24288e+07` for an integer), one message per key naming it.
/// Each is set on a fresh librdkafka configuration, so every bad key is reported,
/// not only the first; nothing connects.
pub fn refused(kafka: &KafkaConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (section, map) in [
        ("client", &kafka.client),
        ("consumer", &kafka.consumer),
        ("producer", &kafka.producer),
    ] {
        for (key, value) in map {
            let mut one = ClientConfig::new();
            one.set(key, value);
            if let Err(err) = one.create_native_config() {
                let why = match &err {
                    rdkafka::error::KafkaError::ClientConfig(_, description, _, _) => {
                        description.clone()
                    }
                    other => other.to_string(),
                };
                out.push(format!(
                    "kafka.{section}.\"{key}\" = {value:?} is refused by librdkafka: {why}"
                ));
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    // Checks across properties (fetch.max.bytes >= message.max.bytes, SASL without
    // credentials, say) happen when a client is made: make one of each, without
    // bootstrap servers, so that nothing connects, and drop it. Files (`*.location`)
    // are left out: they exist where the service runs (a mounted CA), not
    // necessarily where its configuration is checked; the service reads them when
    // it starts and fails with librdkafka's message if one is missing.
    let mut consumer = consumer_config(kafka, "cwmp-check-config", STORE_AFTER_ACK);
    let mut producer = producer_config(kafka, &producer_defaults());
    for (what, config) in [("consumer", &mut consumer), ("producer", &mut producer)] {
        let files: Vec<String> = config
            .config_map()
            .keys()
            .filter(|k| k.ends_with(".location"))
            .map(|k| k.to_string())
            .collect();
        for key in files {
            config.remove(&key);
        }
        config
            .remove("bootstrap.servers")
            .set_log_level(RDKafkaLogLevel::Emerg);
        let made = match what {
            "consumer" => config.create::<rdkafka::consumer::BaseConsumer>().map(drop),
            _ => config.create::<rdkafka::producer::BaseProducer>().map(drop),
        };
        if let Err(err) = made {
            out.push(format!(
                "the Kafka {what} configuration (ours, then [kafka.client] and [kafka.{what}]) is refused by librdkafka: {err}"
            ));
        }
    }
    out
}

/// Consumer properties: ours first, the passthrough maps last.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("group.id", group_id);
    layer(c, ours, kafka.client.iter().chain(&kafka.consumer))
}

/// Producer properties: ours first, the passthrough maps last.
pub fn producer_config(kafka: &KafkaConfig, ours: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers);
    layer(c, ours, kafka.client.iter().chain(&kafka.producer))
}

fn layer<'p>(
    mut c: ClientConfig,
    ours: &[(&str, &str)],
    passthrough: impl Iterator<Item = (&'p String, &'p String)>,
) -> ClientConfig {
    c.set(STATISTICS.0, STATISTICS.1);
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in passthrough {
        c.set(k, v);
    }
    c.set_log_level(log_level(&c));
    c
}

/// Info, or Debug when librdkafka's `debug` contexts are asked for in a passthrough
/// map (otherwise the debug lines they turn on would be filtered out).
fn log_level(c: &ClientConfig) -> RDKafkaLogLevel {
    if c.get("debug").is_some_and(|d| !d.is_empty()) {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_we_set_is_managed_or_tuning() {
        let consumer = managed_consumer_keys();
        for (k, _) in STORE_AFTER_ACK.iter().chain(TRANSACTIONAL_CONSUMER) {
            assert!(consumer.contains(k), "{k}");
        }
        assert!(consumer.contains(&PARTITION_EOF));
        let producer = managed_producer_keys();
        for (k, _) in PRODUCER_GUARANTEES.iter().chain(TRANSACTIONAL_PRODUCER) {
            assert!(producer.contains(k), "{k}");
        }
        for (k, _) in PRODUCER_TUNING {
            assert!(!producer.contains(k), "{k} is tuning, free to override");
        }
    }

    #[test]
    fn overrides_are_named_by_section() {
        let mut kafka = KafkaConfig::default();
        for key in [
            "auto.offset.reset",
            "enable.partition.eof",
            "fetch.max.bytes",
        ] {
            kafka.consumer.insert(key.into(), "x".into());
        }
        for key in ["message.timeout.ms", "transaction.timeout.ms", "linger.ms"] {
            kafka.producer.insert(key.into(), "1".into());
        }
        kafka.client.insert("group.id".into(), "g".into());
        assert_eq!(
            overridden(&kafka),
            [
                "kafka.client.\"group.id\"",
                "kafka.consumer.\"auto.offset.reset\"",
                "kafka.consumer.\"enable.partition.eof\"",
                "kafka.producer.\"message.timeout.ms\"",
                "kafka.producer.\"transaction.timeout.ms\"",
            ]
        );
    }

    #[test]
    fn librdkafka_judges_every_raw_property() {
        let mut kafka = KafkaConfig::default();
        // TLS and SASL are built in (ssl-vendored): the example's settings pass.
        kafka
            .client
            .insert("security.protocol".into(), "SASL_SSL".into());
        kafka
            .client
            .insert("sasl.mechanisms".into(), "SCRAM-SHA-512".into());
        kafka.client.insert("sasl.username".into(), "cwmp".into());
        kafka.client.insert("sasl.password".into(), "secret".into());
        kafka.producer.insert("batch.size".into(), "1000000".into());
        assert_eq!(refused(&kafka), Vec::<String>::new());
        // Every unknown or ill-typed key is named, not only the first.
        let mut bad = kafka.clone();
        bad.client.insert("bogus.property".into(), "1".into());
        bad.producer.insert("linger.ms".into(), "soon".into());
        let r = refused(&bad);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].starts_with("kafka.client.\"bogus.property\""), "{r:?}");
        assert!(r[1].starts_with("kafka.producer.\"linger.ms\""), "{r:?}");
        // What only a client checks: a float rendered as 5.24288e+07 reads as 5.
        let mut cross = kafka.clone();
        cross
            .consumer
            .insert("fetch.max.bytes".into(), "5.24288e+07".into());
        let r = refused(&cross);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].contains("consumer") && r[0].contains("fetch.max.bytes"),
            "{r:?}"
        );
    }

    #[test]
    fn passthrough_wins() {
        let mut kafka = KafkaConfig::default();
        kafka.producer.insert("linger.ms".into(), "20".into());
        let c = producer_config(&kafka, &producer_defaults());
        assert_eq!(c.get("linger.ms"), Some("20"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
    }
}
