//! A small seeded fleet for the scenario tests: periodic informs, stray boots and
//! planted incidents, as Observations in arrival order.

use cwmp_detect::{Kinds, Observation, SourcePos};

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
/// 2026-11-24T00:00:00Z.
pub const T0: i64 = 1_795_478_400_000;
pub const BOOT: u8 = cwmp_detect::Kinds::BOOT;

/// xorshift64*: deterministic, no dependencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub class: String,
    pub acs: String,
    pub sw: String,
    /// `remote_addr`: 256 devices per /24, in fleet order.
    pub addr: String,
    pub period: i64,
    pub phase: i64,
}

/// `(OUI, ProductClass, devices, periodic interval)` per model.
pub const MODELS: &[(&str, &str, usize, i64)] = &[
    ("202BC1", "BM632w", 1500, HOUR),
    ("00D09E", "HG8245H", 1200, HOUR),
    ("A0F3C1", "Archer-C7", 800, 2 * HOUR),
    ("001E80", "SmallCell", 500, HOUR),
];

pub fn fleet(seed: u64) -> Vec<Device> {
    let mut rng = Rng::new(seed);
    let mut devices = Vec::new();
    for (m, &(oui, class, n, period)) in MODELS.iter().enumerate() {
        for i in 0..n {
            devices.push(Device {
                id: format!("{oui}-{class}-SN{m}{i:06}"),
                class: format!("{oui} {class}"),
                acs: format!("acs-{}", i % 3),
                sw: format!("{class}-V{}", 1 + i % 2),
                addr: format!("10.{m}.{}.{}", i / 256, i % 256),
                period,
                phase: rng.below(period as u64) as i64,
            });
        }
    }
    devices
}

pub fn inform(d: &Device, time_ms: i64, kinds: &[u8], retry: bool) -> Observation {
    let mut bits = Kinds::default();
    for &k in kinds {
        bits = Kinds::from_bits(bits.bits() | k);
    }
    Observation {
        device_id: d.id.clone(),
        time_ms,
        product_class: d.class.clone(),
        acs: Some(d.acs.clone()),
        software_version: Some(d.sw.clone()),
        retry,
        kinds: bits,
        source: None,
        command_key: None,
        transfer: None,
        remote_addr: Some(d.addr.clone()),
        inform_interval_s: None,
    }
}

/// A firmware-upgrade boot of campaign `key`, on version `sw`.
pub fn upgrade_boot(d: &Device, time_ms: i64, key: &str, sw: &str) -> Observation {
    let mut o = inform(
        d,
        time_ms,
        &[Kinds::BOOT, Kinds::TRANSFER_COMPLETE, Kinds::M_DOWNLOAD],
        false,
    );
    o.command_key = Some(key.to_owned());
    o.software_version = Some(sw.to_owned());
    o
}

/// The TransferComplete of campaign `key` with `code` (0 = success).
pub fn transfer(d: &Device, time_ms: i64, key: &str, code: u32) -> Observation {
    let mut o = inform(d, time_ms, &[], false);
    o.transfer = Some(cwmp_detect::TransferObs {
        command_key: key.to_owned(),
        code: Some(code),
        autonomous: false,
    });
    o
}

/// Periodic informs of every device in `[from, to)`, and stray boots (each device
/// boots with probability `boot_per_day` per day).
pub fn background(devices: &[Device], from: i64, to: i64, seed: u64) -> Vec<Observation> {
    let mut rng = Rng::new(seed ^ 0xBACC);
    let mut out = Vec::new();
    for d in devices {
        let mut t = from + d.phase;
        while t < to {
            out.push(inform(d, t, &[Kinds::PERIODIC], false));
            t += d.period;
        }
        let days = (to - from) as f64 / (24 * HOUR) as f64;
        if rng.chance(0.01 * days) {
            let at = from + rng.below((to - from) as u64) as i64;
            out.push(inform(d, at, &[Kinds::BOOT], false));
        }
    }
    out
}

/// Sorts into arrival order (event time plus a few seconds of jitter) and numbers
/// the sources like a raw topic would.
pub fn arrival(mut obs: Vec<Observation>, seed: u64) -> Vec<Observation> {
    let mut rng = Rng::new(seed ^ 0xA771);
    let mut keyed: Vec<(i64, usize, Observation)> = obs
        .drain(..)
        .enumerate()
        .map(|(i, o)| (o.time_ms + rng.below(5_000) as i64, i, o))
        .collect();
    keyed.sort_by_key(|(k, i, _)| (*k, *i));
    keyed
        .into_iter()
        .enumerate()
        .map(|(offset, (_, _, mut o))| {
            o.source = Some(SourcePos {
                topic: "cwmp.informs.raw".into(),
                partition: 0,
                offset: offset as i64,
            });
            o
        })
        .collect()
}

pub fn class_devices<'a>(devices: &'a [Device], class: &str) -> Vec<&'a Device> {
    devices.iter().filter(|d| d.class == class).collect()
}

/// An outage: the devices whose `remote_addr` starts with `prefix` send nothing in
/// `[from, to)`, then each informs within five minutes of `to`: with `1 BOOT` when
/// the power came back (`boot`), else a retried `2 PERIODIC` (the network did).
pub fn outage(
    obs: Vec<Observation>,
    devices: &[Device],
    prefix: &str,
    span: (i64, i64),
    boot: bool,
    seed: u64,
) -> Vec<Observation> {
    outage_of(
        obs,
        devices,
        |d| d.addr.starts_with(prefix),
        span,
        boot,
        seed,
    )
}

/// [`outage`] of the devices `dark` picks.
pub fn outage_of(
    mut obs: Vec<Observation>,
    devices: &[Device],
    dark: impl Fn(&Device) -> bool,
    (from, to): (i64, i64),
    boot: bool,
    seed: u64,
) -> Vec<Observation> {
    let ids: std::collections::HashSet<&str> = devices
        .iter()
        .filter(|d| dark(d))
        .map(|d| d.id.as_str())
        .collect();
    obs.retain(|o| !(ids.contains(o.device_id.as_str()) && o.time_ms >= from && o.time_ms < to));
    let mut rng = Rng::new(seed ^ 0x07a6e);
    for d in devices.iter().filter(|d| dark(d)) {
        let at = to + rng.below(5 * MIN as u64) as i64;
        obs.push(if boot {
            inform(d, at, &[Kinds::BOOT], false)
        } else {
            inform(d, at, &[Kinds::PERIODIC], true)
        });
    }
    obs
}
