//! `cwmp-stream simulate`: a simulated fleet's raw Informs to the raw topic, as ACS
//! front-ends publish them (the input contract's headers, see [`crate::input`];
//! keyed by session).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use cwmp_sim::{SimMessage, Simulator};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::config::KafkaConfig;
use crate::input::{H_ACS, H_CONTENT_TYPE, H_RECEIVED_AT, H_REMOTE_ADDR};
use crate::kafka::{delivered, enqueue};

/// The simulator's producer: order kept across retries, small records batched.
const PRODUCER: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("enable.idempotence", "true"),
];

/// A producer for [`produce`] (used by `simulate` and by the demo).
pub fn producer(kafka: &KafkaConfig) -> anyhow::Result<FutureProducer> {
    crate::kafka::producer_config(kafka, PRODUCER)
        .create()
        .context("creating the simulator's producer")
}

/// How fast to go, and how far ahead of a consumer.
pub struct Pace {
    /// Informs per second of wall time; 0 = as fast as possible.
    pub rate: f64,
    /// Wait while more than `max_ahead` messages are produced but not yet consumed
    /// downstream (the demo's embedded broker keeps only 5 MiB per partition).
    pub ahead: Option<(Box<dyn Fn() -> u64 + Send + Sync>, u64)>,
}

impl std::fmt::Debug for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pace")
            .field("rate", &self.rate)
            .field("max_ahead", &self.ahead.as_ref().map(|a| a.1))
            .finish()
    }
}

/// What a run produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Produced {
    /// Every message: Informs and the transfer results that follow some of them.
    pub messages: u64,
    /// `TransferComplete` and `AutonomousTransferComplete` messages among them.
    pub transfers: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Progress: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    start: Instant,
}

impl Progress {
    fn new(label: &str, expected: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(expected);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} messages ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress {
            bar,
            last_line: Instant::now(),
            start: Instant::now(),
        }
    }

    fn update(&mut self, done: u64, sim_time_ms: i64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                let secs = self.start.elapsed().as_secs_f64();
                eprintln!(
                    "simulate: {done} messages, simulated clock {}, {:.0} messages/s",
                    cwmp_sim::format_utc(sim_time_ms),
                    done as f64 / secs.max(1e-9)
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn record<'a>(
    topic: &'a str,
    m: &'a SimMessage,
    received: &'a str,
) -> FutureRecord<'a, [u8], [u8]> {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: H_RECEIVED_AT,
            value: Some(received),
        })
        .insert(Header {
            key: H_ACS,
            value: Some(&m.acs),
        })
        .insert(Header {
            key: H_REMOTE_ADDR,
            value: Some(&m.remote_addr),
        })
        .insert(Header {
            key: H_CONTENT_TYPE,
            value: Some(m.content_type),
        });
    FutureRecord::to(topic)
        .key(m.key.as_bytes())
        .payload(m.body.as_slice())
        .headers(headers)
        .timestamp(m.received_at_ms)
}

/// Produces every message of `sim` to `topic`; waits for every delivery.
pub async fn produce<C: rdkafka::ClientContext + 'static>(
    sim: Simulator,
    producer: &FutureProducer<C>,
    topic: &str,
    pace: &Pace,
) -> anyhow::Result<Produced> {
    let expected = sim.expected_informs();
    let start = Instant::now();
    let mut progress = Progress::new("simulate", expected);
    let mut pending: std::collections::VecDeque<DeliveryFuture> = std::collections::VecDeque::new();
    let mut produced = Produced::default();
    for m in sim {
        if pace.rate > 0.0 {
            let due = Duration::from_secs_f64(produced.messages as f64 / pace.rate);
            let elapsed = start.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        if let Some((consumed, max_ahead)) = &pace.ahead {
            while produced.messages > consumed() + max_ahead {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let received = m.received_at_ms.to_string();
        let delivery = enqueue(producer, record(topic, &m, &received))
            .await
            .context("producing an Inform")?;
        pending.push_back(delivery);
        produced.messages += 1;
        if m.rpc != cwmp_sim::SimRpc::Inform {
            produced.transfers += 1;
        }
        produced.bytes += m.body.len() as u64;
        // Keep the number of outstanding deliveries bounded.
        while pending.len() > 50_000 {
            if let Some(d) = pending.pop_front() {
                check(d).await?;
            }
        }
        if produced.messages % 1024 == 0 {
            progress.update(produced.messages, m.received_at_ms);
        }
    }
    for d in pending {
        check(d).await?;
    }
    progress.finish();
    produced.seconds = start.elapsed().as_secs_f64();
    Ok(produced)
}

async fn check(delivery: DeliveryFuture) -> anyhow::Result<()> {
    delivered(delivery)
        .await
        .context("an Inform was not delivered")
}
