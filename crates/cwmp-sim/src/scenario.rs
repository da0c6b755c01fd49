//! Planted incidents: `kind@offset[:key=value,...]`, e.g.
//! `power_cut@2h:model=HG8245H,share=0.8` or `reboot_loop@90m:count=2`.

use std::fmt;

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioKind {
    /// A share of one model (or one ACS) boots within `spread`; sessions that fail
    /// are retried with CWMP back-off (`RetryCount` > 0).
    PowerCut,
    /// The ACS reboots a share of a model: `1 BOOT` + `M Reboot` with a command key.
    AcsReboot,
    /// `count` devices boot every `every` for `for`.
    RebootLoop,
    /// A share of a model wakes up (`13 WAKEUP`) every `every` for `for`.
    WakeupStorm,
    /// A share of a model is factory-reset: `0 BOOTSTRAP` + `1 BOOT`.
    FactoryResetWave,
    /// A share of the devices of one network (`network=100.64.32.0/22`), model or
    /// ACS front-end sends nothing for `for`; then, with `return=boot` (the power came
    /// back), each boots (`1 BOOT`) within `spread` (5 min by default) of the end, or,
    /// with `return=noboot` (the network came back), each informs again when its next
    /// periodic inform is due.
    Outage,
    /// A firmware campaign on a share of a model within `spread`: each device boots
    /// into version `to` with `1 BOOT` + `7 TRANSFER COMPLETE` + `M Download` (command
    /// key = the campaign), then sends `TransferComplete` in the same session; a
    /// `fail` share report `fault` instead, do not boot, and keep their version.
    FirmwareRollout,
}

impl ScenarioKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::PowerCut => "power_cut",
            ScenarioKind::AcsReboot => "acs_reboot",
            ScenarioKind::RebootLoop => "reboot_loop",
            ScenarioKind::WakeupStorm => "wakeup_storm",
            ScenarioKind::FactoryResetWave => "factory_reset_wave",
            ScenarioKind::FirmwareRollout => "firmware_rollout",
            ScenarioKind::Outage => "outage",
        }
    }
}

/// One planted incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub kind: ScenarioKind,
    /// When it starts, from the simulation start.
    pub at_ms: i64,
    /// Devices whose product class (or OUI) contains this; all when empty.
    pub model: String,
    /// Devices of this ACS front-end only; all when empty.
    pub acs: String,
    pub share: f64,
    pub spread_ms: i64,
    pub count: usize,
    pub every_ms: i64,
    pub for_ms: i64,
    /// `firmware_rollout`: the share of devices whose transfer fails ...
    pub fail: f64,
    /// ... with this fault code ...
    pub fault: u32,
    /// ... while the others come back with this software version (empty: the
    /// model's current one).
    pub to: String,
    /// `outage`: devices whose address is in this IPv4 network (`a.b.c.d/len`);
    /// all when empty.
    pub network: String,
    /// `outage`: the devices come back with a boot (power) or without (network).
    pub return_boot: bool,
}

/// A scenario that cannot be parsed: the message says which part and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// `90s`, `15m`, `2h`, `1h30m`, or plain milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, ScenarioError> {
    let bad = || {
        ScenarioError(format!(
            "{text:?} is not a duration (use e.g. 90s, 15m, 2h, 1h30m)"
        ))
    };
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(ms) = text.parse::<i64>() {
        return if ms >= 0 { Ok(ms) } else { Err(bad()) };
    }
    let mut total = 0i64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

impl std::str::FromStr for Scenario {
    type Err = ScenarioError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (head, options) = text.split_once(':').unwrap_or((text, ""));
        let (kind, at) = head.split_once('@').ok_or_else(|| {
            ScenarioError(format!("{text:?}: expected kind@offset[:key=value,...]"))
        })?;
        let kind = match kind {
            "power_cut" => ScenarioKind::PowerCut,
            "acs_reboot" => ScenarioKind::AcsReboot,
            "reboot_loop" => ScenarioKind::RebootLoop,
            "wakeup_storm" => ScenarioKind::WakeupStorm,
            "factory_reset_wave" => ScenarioKind::FactoryResetWave,
            "firmware_rollout" => ScenarioKind::FirmwareRollout,
            "outage" => ScenarioKind::Outage,
            other => {
                return Err(ScenarioError(format!(
                    "unknown scenario {other:?} (power_cut, acs_reboot, reboot_loop, wakeup_storm, factory_reset_wave, firmware_rollout, outage)"
                )))
            }
        };
        let mut s = Scenario::defaults(kind, parse_duration_ms(at)?);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| ScenarioError(format!("{option:?}: expected key=value")))?;
            let number = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| ScenarioError(format!("{key}={v:?} is not a number")))
            };
            match key {
                "model" => s.model = value.to_owned(),
                "acs" => s.acs = value.to_owned(),
                "share" => {
                    s.share = number(value)?;
                    if s.share > 1.0 {
                        return Err(ScenarioError(format!("share={value} is more than 1")));
                    }
                }
                "spread" => s.spread_ms = parse_duration_ms(value)?.max(1),
                "count" => s.count = number(value)? as usize,
                "every" => s.every_ms = parse_duration_ms(value)?.max(1_000),
                "for" => s.for_ms = parse_duration_ms(value)?,
                "fail" => {
                    s.fail = number(value)?;
                    if s.fail > 1.0 {
                        return Err(ScenarioError(format!("fail={value} is more than 1")));
                    }
                }
                "fault" => {
                    s.fault = value
                        .parse()
                        .ok()
                        .filter(|&f: &u32| f > 0)
                        .ok_or_else(|| {
                            ScenarioError(format!("fault={value:?} is not a fault code (9010, say)"))
                        })?
                }
                "to" => s.to = value.to_owned(),
                "network" => {
                    if parse_network(value).is_none() {
                        return Err(ScenarioError(format!(
                            "network={value:?} is not an IPv4 network (100.64.32.0/22, say)"
                        )));
                    }
                    s.network = value.to_owned();
                }
                "return" => {
                    s.return_boot = match value {
                        "boot" => true,
                        "noboot" => false,
                        _ => {
                            return Err(ScenarioError(format!(
                                "return={value:?}: expected boot or noboot"
                            )))
                        }
                    }
                }
                other => {
                    return Err(ScenarioError(format!(
                        "unknown option {other:?} (model, acs, network, share, spread, count, every, for, fail, fault, to, return)"
                    )))
                }
            }
        }
        Ok(s)
    }
}

impl Scenario {
    /// The command key of a firmware campaign: what its `M Download` events and
    /// `TransferComplete`s carry.
    pub fn campaign_key(&self) -> String {
        let to = if self.to.is_empty() {
            "current"
        } else {
            &self.to
        };
        format!("fw-{to}-{}", self.at_ms / 60_000)
    }

    /// The defaults of each kind.
    pub fn defaults(kind: ScenarioKind, at_ms: i64) -> Scenario {
        let base = Scenario {
            kind,
            at_ms,
            model: String::new(),
            acs: String::new(),
            share: 0.8,
            spread_ms: 3 * 60_000,
            count: 1,
            every_ms: 8 * 60_000,
            for_ms: 3_600_000,
            fail: 0.0,
            fault: 9010,
            to: String::new(),
            network: String::new(),
            return_boot: false,
        };
        match kind {
            ScenarioKind::PowerCut => base,
            ScenarioKind::AcsReboot => Scenario {
                share: 0.5,
                spread_ms: 10 * 60_000,
                ..base
            },
            ScenarioKind::RebootLoop => base,
            ScenarioKind::WakeupStorm => Scenario {
                model: "Cavium eNB".into(),
                share: 1.0,
                every_ms: 6 * 60_000,
                ..base
            },
            ScenarioKind::FactoryResetWave => Scenario {
                share: 0.2,
                spread_ms: 5 * 60_000,
                ..base
            },
            ScenarioKind::FirmwareRollout => Scenario {
                share: 0.5,
                spread_ms: 10 * 60_000,
                fail: 0.1,
                ..base
            },
            ScenarioKind::Outage => Scenario {
                share: 1.0,
                // 0: 5 min with return=boot (see `ScenarioKind::Outage`).
                spread_ms: 0,
                for_ms: 150 * 60_000,
                ..base
            },
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}m", self.kind.as_str(), self.at_ms / 60_000)?;
        if !self.model.is_empty() {
            write!(f, " model={}", self.model)?;
        }
        if !self.acs.is_empty() {
            write!(f, " acs={}", self.acs)?;
        }
        if self.kind == ScenarioKind::FirmwareRollout && self.fail > 0.0 {
            write!(f, " fail={}", self.fail)?;
        }
        if self.kind == ScenarioKind::Outage {
            if !self.network.is_empty() {
                write!(f, " network={}", self.network)?;
            }
            write!(
                f,
                " for={}m return={}",
                self.for_ms / 60_000,
                if self.return_boot { "boot" } else { "noboot" }
            )?;
        }
        Ok(())
    }
}

/// `a.b.c.d/len` as (network, mask).
pub fn parse_network(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|&l| l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some((u32::from(addr) & mask, mask))
}

/// Whether `addr` (an IPv4 address) is in `network` (`a.b.c.d/len`).
pub fn in_network(network: &str, addr: &str) -> bool {
    match (parse_network(network), addr.parse::<std::net::Ipv4Addr>()) {
        (Some((net, mask)), Ok(a)) => u32::from(a) & mask == net,
        _ => false,
    }
}

#[cfg(test)]
mod outage_tests {
    use super::*;

    #[test]
    fn outages_parse_with_their_options_and_refuse_bad_ones() {
        let s: Scenario = "outage@2h:network=100.64.32.0/22,for=3h,return=boot"
            .parse()
            .expect("parses");
        assert_eq!(s.kind, ScenarioKind::Outage);
        assert_eq!(
            (s.at_ms, s.for_ms, s.return_boot),
            (7_200_000, 10_800_000, true)
        );
        assert_eq!(s.share, 1.0);
        assert!(in_network(&s.network, "100.64.35.9"));
        assert!(!in_network(&s.network, "100.64.36.9"));
        for bad in [
            "outage@2h:network=100.64.0.0",
            "outage@2h:network=banana/24",
            "outage@2h:return=maybe",
        ] {
            assert!(bad.parse::<Scenario>().is_err(), "{bad}");
        }
    }
}
