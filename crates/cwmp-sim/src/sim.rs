//! The fleet and its Informs on a simulated clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{catalog, Model};
use crate::scenario::{Scenario, ScenarioKind};
use crate::wire::{write_inform, InformSpec};

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub devices: usize,
    /// Simulated time to cover.
    pub duration_ms: i64,
    /// Simulated clock at the start (epoch ms).
    pub start_ms: i64,
    pub seed: u64,
    /// ACS front-ends the devices are spread over.
    pub acs_count: usize,
    pub scenarios: Vec<Scenario>,
    pub models: Vec<Model>,
    /// Stray boots per device per day (background noise).
    pub stray_boots_per_day: f64,
    /// Chance per device and day of an autonomous transfer (a CPE fetching a file by
    /// itself): `10 AUTONOMOUS TRANSFER COMPLETE`, then `AutonomousTransferComplete`.
    pub autonomous_transfers_per_day: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            devices: 10_000,
            duration_ms: 3 * 3_600_000,
            // 2026-11-24T00:00:00Z
            start_ms: 1_795_478_400_000,
            seed: 1,
            acs_count: 3,
            scenarios: Vec::new(),
            models: catalog(),
            stray_boots_per_day: 0.01,
            autonomous_transfers_per_day: 0.02,
        }
    }
}

/// What a simulated message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRpc {
    Inform,
    /// The result of a `Download`, after the Inform of the same session.
    TransferComplete,
    /// A transfer the CPE made by itself, after the Inform of the same session.
    AutonomousTransferComplete,
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub model: usize,
    pub serial: String,
    /// GenieACS-style id, as ingest will key it.
    pub device_id: String,
    pub software_version: usize,
    pub acs: usize,
    pub period_ms: i64,
    pub remote_addr: String,
    /// From this simulated time on, the device runs this software version (after a
    /// firmware rollout).
    pub upgraded: Option<(i64, String)>,
}

/// One raw Inform, as an ACS front-end would publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    /// The front-end's Kafka key: its session id.
    pub key: String,
    pub body: Vec<u8>,
    pub received_at_ms: i64,
    pub acs: String,
    pub remote_addr: String,
    pub content_type: &'static str,
    /// Index of the device in [`Simulator::devices`].
    pub device: usize,
    pub rpc: SimRpc,
}

/// A planted incident and the devices it touched.
#[derive(Debug, Clone, PartialEq)]
pub struct Planted {
    pub scenario: Scenario,
    /// Simulated time span (epoch ms) in which its informs fall.
    pub from_ms: i64,
    pub to_ms: i64,
    pub devices: Vec<String>,
    /// Product classes (`"<OUI> <ProductClass>"`) of those devices.
    pub product_classes: Vec<String>,
    /// The median periodic interval of those devices (their cadence).
    pub period_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedInform {
    device: usize,
    events: Vec<(&'static str, String)>,
    retry: u32,
    /// The transfer result the same session reports after the Inform.
    transfer: Option<PlannedTransfer>,
}

/// A `TransferComplete` (or autonomous one) to send after an Inform.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedTransfer {
    command_key: String,
    fault: u32,
    autonomous: bool,
    /// When the download started.
    start_ms: i64,
}

/// A transfer result waiting to be sent in the session its Inform opened.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FollowUp {
    device: usize,
    key: String,
    session_id: u64,
    transfer: PlannedTransfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Periodic(usize),
    Wakeup(usize),
    Planned(usize),
    FollowUp(usize),
}

/// The CWMP fault strings of the transfer faults the simulator reports.
fn fault_string(code: u32) -> &'static str {
    match code {
        0 => "",
        9010 => "Download failure",
        9011 => "Upload failure",
        9012 => "File transfer server authentication failure",
        9016 => "File transfer failure: unable to join multicast group",
        9017 => "File transfer failure: unable to access file",
        9018 => "File transfer failure: file corrupted",
        9019 => "File transfer failure: file authentication failure",
        _ => "Transfer failure",
    }
}

/// Counters of what was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub informs: u64,
    pub bytes: u64,
    pub boots: u64,
    pub retries: u64,
}

/// The fleet, deterministic from the seed; an iterator over its Informs in
/// simulated-time order.
#[derive(Debug)]
pub struct Simulator {
    config: SimConfig,
    devices: Vec<Device>,
    queue: BinaryHeap<Reverse<(i64, u64, Item)>>,
    planned: Vec<PlannedInform>,
    follow_ups: Vec<FollowUp>,
    plants: Vec<Planted>,
    rng: ChaCha8Rng,
    seq: u64,
    sessions: u64,
    stats: SimStats,
    /// Per device: the spans in which it sends nothing (planted outages).
    dark: Vec<Vec<(i64, i64)>>,
}

const ACS_NAMES: &[&str] = &["acs-eu-1", "acs-eu-2", "acs-us-1", "acs-us-2", "acs-ap-1"];

pub fn acs_name(i: usize) -> String {
    match ACS_NAMES.get(i) {
        Some(n) => (*n).to_owned(),
        None => format!("acs-{}", i + 1),
    }
}

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let total: u32 = config.models.iter().map(|m| m.weight).sum::<u32>().max(1);
        let mut devices = Vec::with_capacity(config.devices);
        for i in 0..config.devices {
            let mut pick = rng.random_range(0..total);
            let mut model = 0;
            for (m, spec) in config.models.iter().enumerate() {
                if pick < spec.weight {
                    model = m;
                    break;
                }
                pick -= spec.weight;
            }
            let spec = &config.models[model];
            let serial = format!("{}{:07X}", spec.serial_prefix, i);
            // Most devices run the first (current) firmware.
            let sw = if spec.software_versions.len() > 1 && rng.random_bool(0.3) {
                rng.random_range(1..spec.software_versions.len())
            } else {
                0
            };
            devices.push(Device {
                model,
                device_id: cwmp_record::device_id(spec.oui, spec.product_class, &serial),
                serial,
                software_version: sw,
                acs: rng.random_range(0..config.acs_count.max(1)),
                period_ms: spec.periodic_s * 1000,
                remote_addr: format!("100.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 255, i & 255),
                upgraded: None,
            });
        }
        let mut sim = Simulator {
            devices,
            queue: BinaryHeap::new(),
            planned: Vec::new(),
            follow_ups: Vec::new(),
            plants: Vec::new(),
            rng,
            seq: 0,
            sessions: 0,
            stats: SimStats::default(),
            dark: Vec::new(),
            config,
        };
        sim.schedule_background();
        let scenarios = sim.config.scenarios.clone();
        for s in scenarios {
            sim.plant(&s);
        }
        sim
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn models(&self) -> &[Model] {
        &self.config.models
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The planted incidents (after construction, complete).
    /// About how many informs the run gives: each device's periodic ones (planted
    /// incidents and noise add a few). For progress bars, not for counting.
    pub fn expected_informs(&self) -> u64 {
        self.devices
            .iter()
            .map(|d| (self.config.duration_ms / d.period_ms.max(1)) as u64 + 1)
            .sum()
    }

    pub fn planted(&self) -> &[Planted] {
        &self.plants
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    fn push(&mut self, time: i64, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((time, self.seq, item)));
    }

    fn plan(&mut self, time: i64, device: usize, events: Vec<(&'static str, String)>, retry: u32) {
        self.plan_session(time, device, events, retry, None);
    }

    fn plan_session(
        &mut self,
        time: i64,
        device: usize,
        events: Vec<(&'static str, String)>,
        retry: u32,
        transfer: Option<PlannedTransfer>,
    ) {
        self.planned.push(PlannedInform {
            device,
            events,
            retry,
            transfer,
        });
        let idx = self.planned.len() - 1;
        self.push(time, Item::Planned(idx));
    }

    fn schedule_background(&mut self) {
        let start = self.config.start_ms;
        let days = self.config.duration_ms as f64 / 86_400_000.0;
        let p_stray = (self.config.stray_boots_per_day * days).clamp(0.0, 1.0);
        for d in 0..self.devices.len() {
            let period = self.devices[d].period_ms.max(1000);
            let phase = self.rng.random_range(0..period);
            self.push(start + phase, Item::Periodic(d));
            let wake = self.config.models[self.devices[d].model].wakeup_s * 1000;
            if wake > 0 {
                let phase = self.rng.random_range(0..wake);
                self.push(start + phase, Item::Wakeup(d));
            }
            if self.rng.random_bool(p_stray) {
                let at = start + self.rng.random_range(0..self.config.duration_ms.max(1));
                self.plan(at, d, vec![("1 BOOT", String::new())], 0);
            }
        }
        // Drawn from a stream of their own, so that adding them changed nothing else
        // a seed gives.
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x6175_746f_6e6f_6d6f);
        let p_auto = (self.config.autonomous_transfers_per_day * days).clamp(0.0, 1.0);
        for d in 0..self.devices.len() {
            if rng.random_bool(p_auto) {
                let at = start + rng.random_range(0..self.config.duration_ms.max(1));
                let transfer = PlannedTransfer {
                    command_key: String::new(),
                    fault: 0,
                    autonomous: true,
                    start_ms: at - rng.random_range(10_000..120_000),
                };
                self.plan_session(
                    at,
                    d,
                    vec![("10 AUTONOMOUS TRANSFER COMPLETE", String::new())],
                    0,
                    Some(transfer),
                );
            }
        }
    }

    fn matches(&self, s: &Scenario, d: &Device) -> bool {
        let m = &self.config.models[d.model];
        (s.model.is_empty() || m.product_class.contains(&s.model) || m.oui == s.model)
            && (s.acs.is_empty() || acs_name(d.acs) == s.acs)
            && (s.network.is_empty() || crate::scenario::in_network(&s.network, &d.remote_addr))
    }

    /// Plans one incident's informs.
    fn plant(&mut self, s: &Scenario) {
        let start = self.config.start_ms.saturating_add(s.at_ms);
        let candidates: Vec<usize> = (0..self.devices.len())
            .filter(|&d| self.matches(s, &self.devices[d]))
            .collect();
        let chosen: Vec<usize> = match s.kind {
            ScenarioKind::RebootLoop => {
                // Spread over the candidates, deterministically.
                let step = (candidates.len() / s.count.max(1)).max(1);
                candidates
                    .iter()
                    .step_by(step)
                    .take(s.count)
                    .copied()
                    .collect()
            }
            _ => candidates
                .into_iter()
                .filter(|_| self.rng.random_bool(s.share))
                .collect(),
        };
        let mut to = start;
        for &d in &chosen {
            match s.kind {
                ScenarioKind::PowerCut => {
                    let mut t = start + self.rng.random_range(0..s.spread_ms.max(1));
                    // Front-ends are overloaded: some sessions fail and the CPE retries
                    // with CWMP back-off (5-10 s, then 10-20 s, ...).
                    let mut retry = 0;
                    loop {
                        self.plan(t, d, vec![("1 BOOT", String::new())], retry);
                        to = to.max(t);
                        if retry >= 3 || !self.rng.random_bool(0.2) {
                            break;
                        }
                        retry += 1;
                        let base = 5_000i64 << (retry - 1);
                        t += self.rng.random_range(base..2 * base);
                    }
                }
                ScenarioKind::AcsReboot => {
                    let t = start + self.rng.random_range(0..s.spread_ms.max(1));
                    let key = format!("reboot-{}", s.at_ms / 60_000);
                    self.plan(t, d, vec![("1 BOOT", String::new()), ("M Reboot", key)], 0);
                    to = to.max(t);
                }
                ScenarioKind::FactoryResetWave => {
                    let t = start + self.rng.random_range(0..s.spread_ms.max(1));
                    self.plan(
                        t,
                        d,
                        vec![("0 BOOTSTRAP", String::new()), ("1 BOOT", String::new())],
                        0,
                    );
                    to = to.max(t);
                }
                ScenarioKind::FirmwareRollout => {
                    let t = start + self.rng.random_range(0..s.spread_ms.max(1));
                    let key = s.campaign_key();
                    let fails = self.rng.random_bool(s.fail);
                    let download = self.rng.random_range(60_000..240_000);
                    let mut events = vec![
                        ("7 TRANSFER COMPLETE", String::new()),
                        ("M Download", key.clone()),
                    ];
                    if !fails {
                        // The image is applied across a reboot.
                        events.insert(0, ("1 BOOT", String::new()));
                        let model = &self.config.models[self.devices[d].model];
                        let to = if s.to.is_empty() {
                            model
                                .software_versions
                                .first()
                                .copied()
                                .unwrap_or("")
                                .to_owned()
                        } else {
                            s.to.clone()
                        };
                        self.devices[d].upgraded = Some((t, to));
                    }
                    let transfer = PlannedTransfer {
                        command_key: key,
                        fault: if fails { s.fault } else { 0 },
                        autonomous: false,
                        start_ms: t - download,
                    };
                    self.plan_session(t, d, events, 0, Some(transfer));
                    to = to.max(t);
                }
                ScenarioKind::Outage => {
                    let end = start.saturating_add(s.for_ms);
                    if self.dark.is_empty() {
                        self.dark = vec![Vec::new(); self.devices.len()];
                    }
                    if s.return_boot {
                        // The power comes back: every device boots within the spread,
                        // and sends nothing before its boot.
                        let spread = if s.spread_ms == 0 {
                            5 * 60_000
                        } else {
                            s.spread_ms
                        };
                        let t = end + self.rng.random_range(0..spread.max(1));
                        self.dark[d].push((start, t));
                        self.plan(t, d, vec![("1 BOOT", String::new())], 0);
                        to = to.max(t);
                    } else {
                        self.dark[d].push((start, end));
                        // The network comes back: the device informs when its next
                        // periodic inform is due, as if nothing had happened.
                        to = to.max(end + self.devices[d].period_ms);
                    }
                }
                ScenarioKind::RebootLoop | ScenarioKind::WakeupStorm => {
                    let (code, jitter) = match s.kind {
                        ScenarioKind::RebootLoop => ("1 BOOT", 20_000),
                        _ => ("13 WAKEUP", s.every_ms / 2),
                    };
                    let mut t = start + self.rng.random_range(0..jitter.max(1));
                    // Nothing is planted past the end of the simulation.
                    let until = start
                        .saturating_add(s.for_ms)
                        .min(self.config.start_ms.saturating_add(self.config.duration_ms));
                    while t < until {
                        self.plan(t, d, vec![(code, String::new())], 0);
                        to = to.max(t);
                        t += s.every_ms;
                    }
                }
            }
        }
        let mut classes: Vec<String> = chosen
            .iter()
            .map(|&d| {
                let m = &self.config.models[self.devices[d].model];
                format!("{} {}", m.oui, m.product_class)
            })
            .collect();
        classes.sort();
        classes.dedup();
        self.plants.push(Planted {
            scenario: s.clone(),
            from_ms: start,
            to_ms: to,
            devices: chosen
                .iter()
                .map(|&d| self.devices[d].device_id.clone())
                .collect(),
            product_classes: classes,
            period_ms: {
                let mut periods: Vec<i64> =
                    chosen.iter().map(|&d| self.devices[d].period_ms).collect();
                periods.sort_unstable();
                periods.get(periods.len() / 2).copied().unwrap_or(0)
            },
        });
    }

    fn message(
        &mut self,
        time: i64,
        device: usize,
        events: &[(&str, String)],
        retry: u32,
    ) -> SimMessage {
        self.sessions += 1;
        let d = &self.devices[device];
        let model = &self.config.models[d.model];
        let booting = events
            .iter()
            .any(|(c, _)| *c == "1 BOOT" || *c == "0 BOOTSTRAP");
        // Clocks are not set yet right after a boot on some firmwares.
        let current_time = if booting && model.oui == "00147F" {
            "0001-01-01T00:00:00Z".to_owned()
        } else {
            format_utc(time)
        };
        let events: Vec<(&str, &str)> = events.iter().map(|(c, k)| (*c, k.as_str())).collect();
        let software_version = match &d.upgraded {
            Some((since, version)) if time >= *since => version.as_str(),
            _ => model
                .software_versions
                .get(d.software_version)
                .copied()
                .unwrap_or(""),
        };
        let body = write_inform(&InformSpec {
            model,
            serial: &d.serial,
            software_version,
            events: &events,
            retry_count: retry,
            current_time: &current_time,
            session_id: self.sessions,
            external_ip: &d.remote_addr,
            parameter_key: "",
            periodic_interval: model
                .carries_interval
                .then(|| (d.period_ms / 1000).to_string())
                .as_deref(),
        });
        self.stats.informs += 1;
        self.stats.bytes += body.len() as u64;
        if booting {
            self.stats.boots += 1;
        }
        if retry > 0 {
            self.stats.retries += 1;
        }
        let acs = acs_name(d.acs);
        SimMessage {
            key: format!(
                "{acs}/{:016x}",
                self.sessions.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ),
            body,
            // A few hundred ms from the CPE's send to the front-end's receipt.
            received_at_ms: time + (self.sessions % 500) as i64,
            acs,
            remote_addr: d.remote_addr.clone(),
            content_type: "text/xml; charset=utf-8",
            device,
            rpc: SimRpc::Inform,
        }
    }

    /// The transfer result of a session whose Inform was sent at `time`.
    fn transfer_message(&mut self, time: i64, f: &FollowUp) -> SimMessage {
        let d = &self.devices[f.device];
        let model = &self.config.models[d.model];
        let t = &f.transfer;
        let start_time = format_utc(t.start_ms);
        let complete_time = format_utc(time);
        let target = format!("{}.bin", model.product_class.replace(' ', "_"));
        let body = crate::wire::write_transfer_complete(&crate::wire::TransferSpec {
            model,
            session_id: f.session_id,
            command_key: &t.command_key,
            fault_code: t.fault,
            fault_string: fault_string(t.fault),
            start_time: &start_time,
            complete_time: &complete_time,
            autonomous: t.autonomous.then_some(crate::wire::AutonomousSpec {
                transfer_url: "http://fw.example.net/images/latest.bin",
                file_type: "1 Firmware Upgrade Image",
                file_size: 16_777_216,
                target_file_name: &target,
            }),
        });
        self.stats.bytes += body.len() as u64;
        SimMessage {
            key: f.key.clone(),
            body,
            received_at_ms: time,
            acs: acs_name(d.acs),
            remote_addr: d.remote_addr.clone(),
            content_type: "text/xml; charset=utf-8",
            device: f.device,
            rpc: if t.autonomous {
                SimRpc::AutonomousTransferComplete
            } else {
                SimRpc::TransferComplete
            },
        }
    }
}

impl Simulator {
    /// Whether `device` is in a planted outage at `time`.
    fn is_dark(&self, device: usize, time: i64) -> bool {
        self.dark
            .get(device)
            .is_some_and(|spans| spans.iter().any(|&(from, to)| time >= from && time < to))
    }

    fn device_of(&self, item: Item) -> usize {
        match item {
            Item::Periodic(d) | Item::Wakeup(d) => d,
            Item::Planned(i) => self.planned[i].device,
            Item::FollowUp(i) => self.follow_ups[i].device,
        }
    }
}

impl Iterator for Simulator {
    type Item = SimMessage;

    fn next(&mut self) -> Option<SimMessage> {
        loop {
            let message = self.step()?;
            if let Some(message) = message {
                return Some(message);
            }
        }
    }
}

impl Simulator {
    /// The next item: `Some(None)` when it sent nothing (its device was dark).
    fn step(&mut self) -> Option<Option<SimMessage>> {
        let end = self.config.start_ms + self.config.duration_ms;
        let Reverse((time, _, item)) = self.queue.pop()?;
        if time >= end {
            self.queue.clear();
            return None;
        }
        if self.is_dark(self.device_of(item), time) {
            // Nothing gets through; the schedules go on.
            match item {
                Item::Periodic(d) => {
                    let period = self.devices[d].period_ms.max(1000);
                    self.push(time + period, Item::Periodic(d));
                }
                Item::Wakeup(d) => {
                    let every = self.config.models[self.devices[d].model].wakeup_s * 1000;
                    self.push(time + every.max(1000), Item::Wakeup(d));
                }
                Item::Planned(_) | Item::FollowUp(_) => {}
            }
            return Some(None);
        }
        Some(match item {
            Item::Periodic(d) => {
                let period = self.devices[d].period_ms.max(1000);
                self.push(time + period, Item::Periodic(d));
                // Background noise: value changes ride along, connection requests
                // come in their own sessions.
                let roll: f64 = self.rng.random();
                let events: Vec<(&'static str, String)> = if roll < 0.05 {
                    vec![
                        ("2 PERIODIC", String::new()),
                        ("4 VALUE CHANGE", String::new()),
                    ]
                } else if roll < 0.07 {
                    vec![("6 CONNECTION REQUEST", String::new())]
                } else {
                    vec![("2 PERIODIC", String::new())]
                };
                Some(self.message(time, d, &events, 0))
            }
            Item::Wakeup(d) => {
                let every = self.config.models[self.devices[d].model].wakeup_s * 1000;
                self.push(time + every.max(1000), Item::Wakeup(d));
                Some(self.message(time, d, &[("13 WAKEUP", String::new())], 0))
            }
            Item::Planned(i) => {
                let p = std::mem::replace(
                    &mut self.planned[i],
                    PlannedInform {
                        device: 0,
                        events: Vec::new(),
                        retry: 0,
                        transfer: None,
                    },
                );
                let message = self.message(time, p.device, &p.events, p.retry);
                if let Some(transfer) = p.transfer {
                    // Same session, so same key: it reaches ingest after its Inform.
                    self.follow_ups.push(FollowUp {
                        device: p.device,
                        key: message.key.clone(),
                        session_id: self.sessions,
                        transfer,
                    });
                    let idx = self.follow_ups.len() - 1;
                    self.push(message.received_at_ms + 1_000, Item::FollowUp(idx));
                }
                Some(message)
            }
            Item::FollowUp(i) => {
                let f = self.follow_ups[i].clone();
                Some(self.transfer_message(time, &f))
            }
        })
    }
}

/// `2026-11-24T10:00:00Z` from epoch ms.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
