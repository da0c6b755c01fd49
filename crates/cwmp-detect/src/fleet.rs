//! The fleet stage: merges partial aggregates from every worker and decides the
//! fleet alerts (`boot_storm`, `acs_mass_reboot`, `bootstrap_wave`, `wakeup_rate`
//! per product class, `retry_storm`).
//!
//! A window is decided once every input partition has closed it (partitions a
//! worker reports idle — caught up and empty — are not waited for). Keys are evaluated in sorted order
//! and `event_time_ms` is the window end plus the allowed lateness — the earliest
//! event time at which the window can be decided — so the alerts do not depend on
//! how the input was partitioned among workers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::aggregate::{
    merge_samples, AggregateMessage, Measure, Partial, SilenceCounts, Transfers, MAX_SAMPLES,
};
use crate::config::{DetectConfig, StormConfig};
use crate::time::floor;
use crate::{Alert, AlertKind, AlertState, Scope};

/// One window's merged counts, per scope and key.
pub type WindowCounts = BTreeMap<(Scope, String), Partial>;

/// Picks one measure out of a partial.
type MeasureOf = fn(&Partial) -> &Measure;

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStats {
    pub partials: u64,
    /// Partials for windows already decided (a worker far behind the others).
    pub late_partials: u64,
    pub windows_decided: u64,
    /// Campaigns followed now.
    pub campaigns: u64,
    /// Campaign partials dropped because `rollout_failure.max_campaigns` were
    /// followed already.
    pub campaigns_overflow: u64,
    /// Partials a worker sent again (after its restore) and that were taken already.
    pub duplicate_partials: u64,
}

/// One campaign over its life so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CampaignState {
    totals: Transfers,
    /// End of the last window that brought results.
    last_activity_ms: i64,
    open: Option<OpenFleet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenFleet {
    id: String,
    peak: u64,
    below: u32,
}

/// Per silence scope and key: tracked devices, recent overdue counts, the baseline
/// and any open `inform_silence`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SilenceKey {
    tracked: i64,
    /// (slide start, devices that became overdue in it), within the silence window.
    recent: VecDeque<(i64, u64)>,
    baseline: f64,
    last_window: Option<i64>,
    open: Option<OpenSilence>,
    /// The last resolved alert: its id and the end of the window that resolved it.
    resolved: Option<(String, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenSilence {
    id: String,
    /// Devices overdue since it opened (those of the opening window included).
    overdue: u64,
    returned_boot: u64,
    returned_no_boot: u64,
    forgotten: u64,
    peak: u64,
    samples: Vec<String>,
}

/// Per kind, scope and key: the baseline and any open alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    baseline: f64,
    /// The last window folded into the baseline (or skipped while open).
    last_window: i64,
    first_window: i64,
    open: Option<OpenFleet>,
}

/// The fleet stage's state machine. Pure: no clock, no I/O.
///
/// Everything but the configuration is its state, which [`Fleet::snapshot`] writes
/// and [`Fleet::restore`] reads back (see [`crate::snapshot`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct Fleet {
    #[serde(skip)]
    config: DetectConfig,
    #[serde(skip)]
    alpha: f64,
    /// Per (aggregates partition, input partition): closed until. A worker's partials
    /// precede its close on each aggregates partition, but partitions are consumed
    /// in no particular interleaving, so a close counts only for its own partition.
    closed: BTreeMap<(i32, i32), i64>,
    idle: BTreeSet<(i32, i32)>,
    /// The aggregates partitions this instance consumes.
    owned: Vec<i32>,
    partition_count: i32,
    pending: BTreeMap<i64, WindowCounts>,
    next_window: Option<i64>,
    states: BTreeMap<(AlertKind, Scope, String), KeyState>,
    stats: FleetStats,
    /// The last decided window that had data: its start and merged partials.
    last_window: Option<(i64, WindowCounts)>,
    /// Per campaign key (`"<OUI> <ProductClass>/<CommandKey>"`).
    campaigns: BTreeMap<String, CampaignState>,
    /// Per (aggregates partition, input partition): the position (window, scope,
    /// key) of the last partial taken, for partials that name their partition.
    taken: BTreeMap<(i32, i32), (i64, Scope, String)>,
    /// `inform_silence` per scope and key.
    silences: BTreeMap<(Scope, String), SilenceKey>,
}

impl Fleet {
    /// Refuses settings that do not hold together.
    pub fn new(config: DetectConfig) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        Ok(Fleet {
            alpha: config.baseline_alpha(),
            config,
            closed: BTreeMap::new(),
            idle: BTreeSet::new(),
            owned: vec![0],
            partition_count: 0,
            pending: BTreeMap::new(),
            next_window: None,
            states: BTreeMap::new(),
            stats: FleetStats::default(),
            last_window: None,
            campaigns: BTreeMap::new(),
            taken: BTreeMap::new(),
            silences: BTreeMap::new(),
        })
    }

    pub fn stats(&self) -> FleetStats {
        self.stats
    }

    /// Open fleet alerts, by kind.
    pub fn active(&self) -> BTreeMap<AlertKind, u64> {
        let mut active = BTreeMap::new();
        for ((kind, _, _), s) in &self.states {
            if s.open.is_some() {
                *active.entry(*kind).or_insert(0) += 1;
            }
        }
        let campaigns = self.campaigns.values().filter(|c| c.open.is_some()).count();
        if campaigns > 0 {
            active.insert(AlertKind::RolloutFailure, campaigns as u64);
        }
        let silences = self.silences.values().filter(|s| s.open.is_some()).count();
        if silences > 0 {
            active.insert(AlertKind::InformSilence, silences as u64);
        }
        active
    }

    /// Per silence scope: devices still silent in the scope's open `inform_silence`
    /// alerts (overdue since they opened, not back nor forgotten).
    pub fn silent_devices(&self) -> BTreeMap<Scope, u64> {
        let mut silent = BTreeMap::new();
        for ((scope, _), s) in &self.silences {
            if let Some(o) = &s.open {
                let back = o.returned_boot + o.returned_no_boot + o.forgotten;
                *silent.entry(*scope).or_insert(0) += o.overdue.saturating_sub(back);
            }
        }
        silent
    }

    /// The last decided window that had data: its start, and the merged counts per
    /// scope and key (for dashboards).
    pub fn last_window(&self) -> Option<(i64, &WindowCounts)> {
        self.last_window.as_ref().map(|(start, p)| (*start, p))
    }

    /// The end of the last decided window.
    pub fn decided_until(&self) -> Option<i64> {
        self.next_window
            .map(|n| n - self.config.slide_ms + self.config.window_ms)
    }

    /// After a restore: the configuration the state runs with.
    pub(crate) fn set_config(&mut self, config: DetectConfig) {
        self.alpha = config.baseline_alpha();
        self.config = config;
    }

    /// The aggregates partitions this instance owns (after a rebalance).
    pub fn set_partitions(&mut self, mut owned: Vec<i32>) {
        owned.sort_unstable();
        self.owned = owned;
    }

    /// Applies one message from aggregates partition `from`; appends the alerts it
    /// decides.
    pub fn apply(&mut self, from: i32, message: AggregateMessage, out: &mut Vec<Alert>) {
        match message {
            AggregateMessage::Partial(p) => {
                self.stats.partials += 1;
                if let Some(partition) = p.partition {
                    let at = (p.window_start_ms, p.scope, p.key.clone());
                    match self.taken.get_mut(&(from, partition)) {
                        Some(last) if at <= *last => {
                            self.stats.duplicate_partials += 1;
                            return;
                        }
                        Some(last) => *last = at,
                        None => {
                            self.taken.insert((from, partition), at);
                        }
                    }
                }
                if self.next_window.is_some_and(|n| p.window_start_ms < n) {
                    self.stats.late_partials += 1;
                    return;
                }
                let window = self.pending.entry(p.window_start_ms).or_default();
                match window.get_mut(&(p.scope, p.key.clone())) {
                    Some(merged) => merged.merge(&p),
                    None => {
                        window.insert((p.scope, p.key.clone()), p);
                    }
                }
            }
            AggregateMessage::Close(c) => {
                self.partition_count = self.partition_count.max(c.partition_count);
                for p in c.partitions {
                    if c.idle {
                        if !self.closed.contains_key(&(from, p)) {
                            self.idle.insert((from, p));
                        }
                        continue;
                    }
                    self.idle.remove(&(from, p));
                    let e = self.closed.entry((from, p)).or_insert(i64::MIN);
                    *e = (*e).max(c.closed_until_ms);
                }
                self.decide(out);
            }
        }
    }

    /// Every window ending at or before this is complete: every input partition
    /// has closed it, or is idle (caught up and empty).
    fn bound(&self) -> Option<i64> {
        let mut bound: Option<i64> = None;
        for &a in &self.owned {
            for p in 0..self.partition_count {
                if self.idle.contains(&(a, p)) {
                    continue;
                }
                let closed = *self.closed.get(&(a, p))?;
                bound = Some(bound.map_or(closed, |b| b.min(closed)));
            }
        }
        bound
    }

    fn decide(&mut self, out: &mut Vec<Alert>) {
        let Some(bound) = self.bound() else { return };
        let (window, slide) = (self.config.window_ms, self.config.slide_ms);
        let mut next = match self.next_window {
            Some(n) => n,
            None => match self.pending.keys().next() {
                Some(&first) => first,
                None => return,
            },
        };
        while next + window <= bound {
            let partials = self.pending.remove(&next).unwrap_or_default();
            let any_open = self.states.values().any(|s| s.open.is_some())
                || self.campaigns.values().any(|c| c.open.is_some())
                || self
                    .silences
                    .values()
                    .any(|s| s.open.is_some() || !s.recent.is_empty());
            if partials.is_empty() && !any_open {
                // Nothing to decide until the next window with data.
                let last = floor(bound - window, slide);
                next = match self.pending.keys().next() {
                    Some(&p) => p.min(last + slide),
                    None => last + slide,
                };
                continue;
            }
            self.evaluate(next, &partials, out);
            self.stats.windows_decided += 1;
            if !partials.is_empty() {
                self.last_window = Some((next, partials));
            }
            next += slide;
        }
        self.next_window = Some(next);
        // Partials that can never be decided (before the first window) are dropped.
        while let Some((&first, _)) = self.pending.first_key_value() {
            if first >= next {
                break;
            }
            self.pending.pop_first();
            self.stats.late_partials += 1;
        }
    }

    fn evaluate(
        &mut self,
        start: i64,
        partials: &BTreeMap<(Scope, String), Partial>,
        out: &mut Vec<Alert>,
    ) {
        let storms: [(AlertKind, StormConfig, MeasureOf); 4] = [
            (AlertKind::BootStorm, self.config.boot_storm, |p| &p.boot),
            (AlertKind::AcsMassReboot, self.config.acs_mass_reboot, |p| {
                &p.acs_reboot
            }),
            (
                AlertKind::FirmwareRollout,
                self.config.firmware_rollout,
                |p| &p.firmware_upgrade,
            ),
            (AlertKind::BootstrapWave, self.config.bootstrap_wave, |p| {
                &p.bootstrap
            }),
        ];
        for (kind, storm, measure) in storms {
            for (scope, key) in self.keys(kind, partials, |s| s != Scope::Campaign) {
                let p = partials.get(&(scope, key.clone()));
                let zero = Measure::default();
                let m = p.map_or(&zero, measure);
                let mut detail = serde_json::json!({"informs": p.map_or(0, |p| p.informs)});
                if kind == AlertKind::BootStorm {
                    if let Some(id) = self.silence_before(scope, &key, start) {
                        detail["follows"] = serde_json::Value::String(id);
                    }
                }
                self.step(
                    kind,
                    scope,
                    &key,
                    start,
                    m.devices as f64,
                    |baseline| {
                        let threshold =
                            (storm.min_devices as f64).max(storm.baseline_factor * baseline);
                        Decision {
                            fire: m.devices > 0 && m.devices as f64 >= threshold,
                            teach: calm(m.devices as f64, threshold, storm.min_devices as f64),
                            threshold,
                            devices: m.devices,
                            count: m.count,
                            samples: m.samples.clone(),
                            baseline: Some(baseline),
                            detail,
                        }
                    },
                    out,
                );
            }
        }

        let w = self.config.wakeup_rate;
        for (scope, key) in self.keys(AlertKind::WakeupRate, partials, |s| {
            s == Scope::ProductClass
        }) {
            let p = partials.get(&(scope, key.clone()));
            let zero = Measure::default();
            let m = p.map_or(&zero, |p| &p.wakeup);
            let first = self
                .states
                .get(&(AlertKind::WakeupRate, scope, key.clone()))
                .map_or(start, |s| s.first_window);
            let warm = start + self.config.window_ms - first >= w.class_warmup_ms;
            self.step(AlertKind::WakeupRate, scope, &key, start, m.count as f64, |baseline| {
                let threshold = w.class_factor * baseline;
                Decision {
                    fire: warm
                        && m.count > 0
                        && m.count as f64 >= threshold
                        && m.devices >= w.class_min_devices,
                    // Warming up, every window teaches: that is what warming up is.
                    teach: !warm || calm(m.count as f64, threshold, w.class_min_devices as f64),
                    threshold,
                    devices: m.devices,
                    count: m.count,
                    samples: m.samples.clone(),
                    baseline: Some(baseline),
                    detail: serde_json::json!({"min_devices": w.class_min_devices, "warmed_up": warm}),
                }
            }, out);
        }

        self.campaigns(start, partials, out);
        self.silence(start, partials, out);

        let r = self.config.retry_storm;
        for (scope, key) in self.keys(AlertKind::RetryStorm, partials, |s| s != Scope::Campaign) {
            let p = partials.get(&(scope, key.clone()));
            let zero = Measure::default();
            let m = p.map_or(&zero, |p| &p.retry);
            let informs = p.map_or(0, |p| p.informs);
            self.step(AlertKind::RetryStorm, scope, &key, start, 0.0, |_| {
                let threshold = r.min_share * informs as f64;
                Decision {
                    fire: informs >= r.min_informs && m.count > 0 && m.count as f64 >= threshold,
                    teach: false,
                    threshold,
                    devices: m.devices,
                    count: m.count,
                    samples: m.samples.clone(),
                    baseline: None,
                    detail: serde_json::json!({
                        "informs": informs,
                        "share": if informs == 0 { 0.0 } else { m.count as f64 / informs as f64 },
                    }),
                }
            }, out);
        }
    }

    /// Folds the window's campaign partials into each campaign and decides
    /// `rollout_failure`: failures over the campaign so far against
    /// max(`min_failures`, `share` × decided results).
    fn campaigns(
        &mut self,
        start: i64,
        partials: &BTreeMap<(Scope, String), Partial>,
        out: &mut Vec<Alert>,
    ) {
        let cfg = self.config.rollout_failure;
        let end = start + self.config.window_ms;
        let decided_at = end + self.config.allowed_lateness_ms;
        let mut active: BTreeSet<String> = BTreeSet::new();
        for ((scope, key), p) in partials {
            let (Scope::Campaign, Some(t)) = (scope, &p.transfers) else {
                continue;
            };
            if !self.campaigns.contains_key(key) && self.campaigns.len() >= cfg.max_campaigns {
                self.stats.campaigns_overflow += 1;
                continue;
            }
            let state = self
                .campaigns
                .entry(key.clone())
                .or_insert_with(|| CampaignState {
                    totals: Transfers {
                        product_class: t.product_class.clone(),
                        command_key: t.command_key.clone(),
                        ..Transfers::default()
                    },
                    last_activity_ms: end,
                    open: None,
                });
            state.totals.merge(t);
            if !t.results.is_empty() || t.silent_after_transfer > 0 {
                state.last_activity_ms = end;
            }
            active.insert(key.clone());
        }
        let mut expired = Vec::new();
        for (key, state) in self.campaigns.iter_mut() {
            let quiet = end - state.last_activity_ms;
            if !active.contains(key) && state.open.is_none() {
                if quiet >= cfg.expire_after_ms {
                    expired.push(key.clone());
                }
                continue;
            }
            let t = &state.totals;
            let (failures, decided) = (t.failures(), t.decided());
            let threshold = (cfg.min_failures as f64).max(cfg.share * decided as f64);
            let fire = failures > 0 && failures as f64 >= threshold && quiet < cfg.quiet_ms;
            let alert = |state_: AlertState, id: &str| Alert {
                schema: 1,
                id: id.to_owned(),
                kind: AlertKind::RolloutFailure,
                state: state_,
                scope: Scope::Campaign,
                key: key.clone(),
                window_start_ms: start,
                window_end_ms: end,
                event_time_ms: decided_at,
                devices: failures,
                count: failures,
                baseline: None,
                threshold,
                sample_devices: t.failed_samples.iter().take(MAX_SAMPLES).cloned().collect(),
                detail: serde_json::json!({
                    "product_class": t.product_class,
                    "command_key": t.command_key,
                    "results": t.results,
                    "successes": t.successes(),
                    "failures": failures,
                    "share": if decided == 0 { 0.0 } else { failures as f64 / decided as f64 },
                    "upgrade_boots": t.upgrade_boots,
                    "silent_after_transfer": t.silent_after_transfer,
                    "versions_before": t.versions_before,
                    "versions_after": t.versions_after,
                    "quiet": quiet >= cfg.quiet_ms,
                }),
            };
            match &mut state.open {
                None if fire => {
                    let id =
                        Alert::incident_id(AlertKind::RolloutFailure, Scope::Campaign, key, start);
                    out.push(alert(AlertState::Open, &id));
                    state.open = Some(OpenFleet {
                        id,
                        peak: failures,
                        below: 0,
                    });
                }
                None => {}
                Some(open) if fire && failures > open.peak => {
                    open.peak = failures;
                    out.push(alert(AlertState::Update, &open.id));
                }
                Some(_) if fire => {}
                Some(open) => {
                    out.push(alert(AlertState::Resolved, &open.id));
                    state.open = None;
                }
            }
        }
        for key in expired {
            self.campaigns.remove(&key);
        }
        self.stats.campaigns = self.campaigns.len() as u64;
    }

    /// The `inform_silence` of this scope and key open now, or resolved within the
    /// silence window before `start`: what a boot storm there follows.
    fn silence_before(&self, scope: Scope, key: &str, start: i64) -> Option<String> {
        let s = self.silences.get(&(scope, key.to_owned()))?;
        if let Some(open) = &s.open {
            return Some(open.id.clone());
        }
        let within = self.config.inform_silence.window_ms;
        s.resolved
            .as_ref()
            .filter(|(_, at)| start - at <= within)
            .map(|(id, _)| id.clone())
    }

    /// Decides `inform_silence` for every silence scope and key with news in this
    /// window's newest slide, a recent overdue count or an open alert.
    fn silence(
        &mut self,
        start: i64,
        partials: &BTreeMap<(Scope, String), Partial>,
        out: &mut Vec<Alert>,
    ) {
        let cfg = self.config.inform_silence.clone();
        let (alpha, slide) = (self.alpha, self.config.slide_ms);
        let end = start + self.config.window_ms;
        let decided_at = end + self.config.allowed_lateness_ms;
        let newest = end - slide;
        let mut keys: BTreeSet<(Scope, String)> = partials
            .iter()
            .filter(|(_, p)| p.silence.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for (k, s) in &self.silences {
            if s.open.is_some() || !s.recent.is_empty() {
                keys.insert(k.clone());
            }
        }
        let zero = SilenceCounts::default();
        for (scope, key) in keys {
            let counts = partials
                .get(&(scope, key.clone()))
                .and_then(|p| p.silence.as_deref())
                .unwrap_or(&zero);
            let state = self.silences.entry((scope, key.clone())).or_default();
            state.tracked += counts.tracked_delta;
            if counts.overdue > 0 {
                state.recent.push_back((newest, counts.overdue));
            }
            while state
                .recent
                .front()
                .is_some_and(|(at, _)| *at < end - cfg.window_ms)
            {
                state.recent.pop_front();
            }
            let in_window: u64 = state.recent.iter().map(|(_, n)| n).sum();
            if let (Some(last), None) = (state.last_window, &state.open) {
                let gap = (start - last) / slide;
                if gap > 1 {
                    state.baseline *= (1.0 - alpha).powi((gap - 1).min(i32::MAX as i64) as i32);
                }
            }
            state.last_window = Some(start);
            let tracked = state.tracked.max(0) as u64;
            let threshold = (cfg.min_devices as f64)
                .max(cfg.baseline_factor * state.baseline)
                .max(cfg.min_share * tracked as f64);
            let fire = in_window as f64 >= threshold;
            let alert = |state_: AlertState, id: &str, o: &OpenSilence, came_back: Option<&str>| {
                let back = o.returned_boot + o.returned_no_boot;
                let mut detail = serde_json::json!({
                    "tracked": tracked,
                    "overdue_in_window": in_window,
                    "share": if tracked == 0 { 0.0 } else { in_window as f64 / tracked as f64 },
                    "window_ms": cfg.window_ms,
                    "returned": back,
                    "returned_boot": o.returned_boot,
                    "returned_no_boot": o.returned_no_boot,
                    "forgotten": o.forgotten,
                });
                if let Some(how) = came_back {
                    detail["came_back"] = serde_json::Value::String(how.to_owned());
                }
                Alert {
                    schema: 1,
                    id: id.to_owned(),
                    kind: AlertKind::InformSilence,
                    state: state_,
                    scope,
                    key: key.clone(),
                    window_start_ms: start,
                    window_end_ms: end,
                    event_time_ms: decided_at,
                    devices: o.overdue,
                    count: in_window,
                    baseline: Some(state.baseline),
                    threshold,
                    sample_devices: o.samples.clone(),
                    detail,
                }
            };
            match state.open.take() {
                None if fire => {
                    let id = Alert::incident_id(AlertKind::InformSilence, scope, &key, start);
                    let o = OpenSilence {
                        id: id.clone(),
                        overdue: in_window,
                        returned_boot: 0,
                        returned_no_boot: 0,
                        forgotten: 0,
                        peak: in_window,
                        samples: Vec::new(),
                    };
                    out.push(alert(AlertState::Open, &id, &o, None));
                    state.open = Some(o);
                }
                None => {
                    if calm(in_window as f64, threshold, cfg.min_devices as f64) {
                        state.baseline += alpha * (in_window as f64 - state.baseline);
                    }
                }
                Some(mut o) => {
                    o.overdue += counts.overdue;
                    o.returned_boot += counts.returned_boot;
                    o.returned_no_boot += counts.returned_no_boot;
                    o.forgotten += counts.forgotten;
                    merge_samples(&mut o.samples, &counts.returned_samples);
                    let back = o.returned_boot + o.returned_no_boot + o.forgotten;
                    if back as f64 >= cfg.resolve_share * o.overdue as f64 {
                        let how = if o.returned_boot > o.returned_no_boot {
                            "boot"
                        } else if o.returned_no_boot > 0 {
                            "no_boot"
                        } else {
                            // Nobody came back within forget_after_ms.
                            "forgotten"
                        };
                        out.push(alert(AlertState::Resolved, &o.id, &o, Some(how)));
                        state.resolved = Some((o.id.clone(), end));
                        // Those devices are accounted for: they must not open it again.
                        state.recent.clear();
                    } else {
                        // It grows for a whole cadence, a little every slide: an
                        // update only when it has grown by half since the last one.
                        if o.overdue * 2 >= o.peak * 3 {
                            o.peak = o.overdue;
                            out.push(alert(AlertState::Update, &o.id, &o, None));
                        }
                        state.open = Some(o);
                    }
                }
            }
        }
        // Keys with nothing left to remember are dropped.
        self.silences.retain(|_, s| {
            s.open.is_some() || !s.recent.is_empty() || s.tracked > 0 || s.baseline >= 0.01
        });
    }

    /// Keys to evaluate for `kind`: those with data in this window, and those with an
    /// open alert — sorted.
    fn keys(
        &self,
        kind: AlertKind,
        partials: &BTreeMap<(Scope, String), Partial>,
        scope_ok: impl Fn(Scope) -> bool,
    ) -> Vec<(Scope, String)> {
        // A partial that carries only silence (a network key, a slide where the key's
        // devices went silent but none informed) is no data for the window detectors.
        let mut keys: BTreeSet<(Scope, String)> = partials
            .iter()
            .filter(|((s, _), p)| scope_ok(*s) && !p.silence_only())
            .map(|(k, _)| k.clone())
            .collect();
        for ((k, s, key), state) in &self.states {
            if *k == kind && state.open.is_some() {
                keys.insert((*s, key.clone()));
            }
        }
        keys.into_iter().collect()
    }

    /// One detector, one key, one window: baseline, transition, baseline update.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        kind: AlertKind,
        scope: Scope,
        key: &str,
        start: i64,
        value: f64,
        decide: impl FnOnce(f64) -> Decision,
        out: &mut Vec<Alert>,
    ) {
        let (alpha, slide) = (self.alpha, self.config.slide_ms);
        let end = start + self.config.window_ms;
        let decided_at = end + self.config.allowed_lateness_ms;
        let resolve_after = self.config.resolve_after_windows;
        let state = self
            .states
            .entry((kind, scope, key.to_owned()))
            .or_insert(KeyState {
                baseline: 0.0,
                last_window: start - slide,
                first_window: start,
                open: None,
            });
        // Windows with no data since the last update count as zeros.
        let gap = (start - state.last_window) / slide;
        if gap > 1 && state.open.is_none() {
            state.baseline *= (1.0 - alpha).powi((gap - 1).min(i32::MAX as i64) as i32);
        }
        let d = decide(state.baseline);
        let alert = |state: AlertState, id: &str| Alert {
            schema: 1,
            id: id.to_owned(),
            kind,
            state,
            scope,
            key: key.to_owned(),
            window_start_ms: start,
            window_end_ms: end,
            event_time_ms: decided_at,
            devices: d.devices,
            count: d.count,
            baseline: d.baseline,
            threshold: d.threshold,
            sample_devices: d.samples.clone(),
            detail: d.detail.clone(),
        };
        let size = if kind == AlertKind::WakeupRate || kind == AlertKind::RetryStorm {
            d.count
        } else {
            d.devices
        };
        match &mut state.open {
            None if d.fire => {
                let id = Alert::incident_id(kind, scope, key, start);
                out.push(alert(AlertState::Open, &id));
                state.open = Some(OpenFleet {
                    id,
                    peak: size,
                    below: 0,
                });
            }
            None if d.teach => {
                state.baseline += alpha * (value - state.baseline);
            }
            None => {}
            Some(open) if d.fire => {
                open.below = 0;
                if size > open.peak {
                    open.peak = size;
                    out.push(alert(AlertState::Update, &open.id));
                }
            }
            Some(open) => {
                open.below += 1;
                if open.below >= resolve_after {
                    out.push(alert(AlertState::Resolved, &open.id));
                    state.open = None;
                }
            }
        }
        state.last_window = start;
    }
}

/// Whether a window may teach the baseline. Open-alert windows never do, nor
/// does a window already at half the threshold (and at least the floor): an
/// incident that builds over minutes or hours must stay above its threshold, not
/// become the new normal on the way up.
fn calm(value: f64, threshold: f64, floor: f64) -> bool {
    value < (threshold / 2.0).max(floor)
}

struct Decision {
    fire: bool,
    teach: bool,
    threshold: f64,
    devices: u64,
    count: u64,
    samples: Vec<String>,
    baseline: Option<f64>,
    detail: serde_json::Value,
}
