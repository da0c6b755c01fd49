//! The demo's report: what was planted, what each stage did, which alerts opened
//! and the incident behind each.

use cwmp_detect::{Alert, AlertKind, AlertState, Scope};
use cwmp_sim::{Planted, ScenarioKind};

use crate::detect::metrics::{DetectMetrics, DetectStage, RecordResult};
use crate::ingest::metrics::MessageResult;
use crate::ingest::IngestMetrics;
use cwmp_detect::Verdict;

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub devices: usize,
    pub duration_ms: i64,
    pub start_ms: i64,
    pub seed: u64,
    pub broker: String,
    pub planted: Vec<Planted>,
    /// Messages simulated: Informs, and the transfer results among them.
    pub simulated: u64,
    pub simulated_transfers: u64,
    pub simulated_bytes: u64,
    pub simulate_seconds: f64,
    pub records: u64,
    /// Transfer results among the records.
    pub transfer_records: u64,
    pub dlq: u64,
    pub skipped: u64,
    pub ingest_seconds: f64,
    pub detected: u64,
    pub late: u64,
    /// Detector checkpoints written (worker and fleet stage) and their bytes.
    pub checkpoints: u64,
    pub checkpoint_bytes: u64,
    pub detect_seconds: f64,
    pub alerts: Vec<Alert>,
    /// Messages on the alert topic that could not be read as alerts.
    pub unreadable_alerts: u64,
    pub wall_seconds: f64,
}

/// One `inform_silence` incident of the run.
#[derive(Debug, Clone, Copy)]
pub struct Silence<'a> {
    pub open: &'a Alert,
    pub last: &'a Alert,
    pub outage: Option<&'a Planted>,
}

/// The services' counts the report shows, read once they have stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub dlq: u64,
    pub skipped: u64,
    pub transfer_records: u64,
    pub detected: u64,
    pub late: u64,
    pub checkpoints: u64,
    pub checkpoint_bytes: u64,
}

impl Counts {
    pub(super) fn read(ingest: &IngestMetrics, detect: &DetectMetrics) -> Self {
        Counts {
            dlq: ingest.messages(MessageResult::Dlq),
            skipped: ingest.messages(MessageResult::Skipped),
            transfer_records: cwmp_record::TransferResult::ALL
                .iter()
                .map(|&r| ingest.transfers(r))
                .sum(),
            detected: detect.records_seen(),
            late: detect.records(RecordResult::Judged(Verdict::Late)),
            checkpoints: DetectStage::ALL
                .iter()
                .map(|&s| detect.state.checkpoints(s))
                .sum(),
            checkpoint_bytes: DetectStage::ALL
                .iter()
                .map(|&s| detect.state.checkpoint_bytes(s))
                .sum(),
        }
    }
}

/// The alert kinds a planted incident explains.
fn explains(kind: ScenarioKind) -> &'static [AlertKind] {
    match kind {
        ScenarioKind::PowerCut => &[AlertKind::BootStorm, AlertKind::RetryStorm],
        ScenarioKind::AcsReboot => &[AlertKind::AcsMassReboot],
        ScenarioKind::RebootLoop => &[AlertKind::RebootLoop],
        ScenarioKind::WakeupStorm => &[AlertKind::WakeupRate],
        ScenarioKind::FactoryResetWave => &[AlertKind::BootstrapWave, AlertKind::BootStorm],
        ScenarioKind::FirmwareRollout => &[AlertKind::FirmwareRollout, AlertKind::RolloutFailure],
        // Devices coming back with a boot are a boot storm (that names the silence).
        ScenarioKind::Outage => &[AlertKind::InformSilence, AlertKind::BootStorm],
    }
}

impl DemoReport {
    /// The planted incident behind an alert, if any.
    pub fn cause(&self, alert: &Alert) -> Option<&Planted> {
        self.planted.iter().find(|p| {
            explains(p.scenario.kind).contains(&alert.kind)
                && alert.window_end_ms >= p.from_ms
                && alert.window_start_ms <= p.to_ms + 10 * 60_000
                && match alert.scope {
                    Scope::Device => p.devices.contains(&alert.key),
                    Scope::ProductClass => p.product_classes.contains(&alert.key),
                    Scope::Campaign => p
                        .product_classes
                        .iter()
                        .any(|c| alert.key.starts_with(&format!("{c}/"))),
                    // A /24 inside the planted network.
                    Scope::Network => {
                        p.scenario.network.is_empty()
                            || alert.key.split_once('/').is_some_and(|(addr, _)| {
                                cwmp_sim::scenario::in_network(&p.scenario.network, addr)
                            })
                    }
                    Scope::Acs => p.scenario.acs.is_empty() || p.scenario.acs == alert.key,
                    _ => true,
                }
                && (alert.kind != AlertKind::BootStorm
                    || p.scenario.kind != ScenarioKind::Outage
                    || p.scenario.return_boot)
        })
    }

    /// Opening transitions, in decision order.
    pub fn opened(&self) -> Vec<&Alert> {
        let mut open: Vec<&Alert> = self
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Open)
            .collect();
        open.sort_by(|a, b| (a.event_time_ms, &a.id).cmp(&(b.event_time_ms, &b.id)));
        open
    }

    /// Each `inform_silence` incident: its opening, its last transition and the
    /// planted outage behind it.
    pub fn silences(&self) -> Vec<Silence<'_>> {
        self.opened()
            .into_iter()
            .filter(|a| a.kind == AlertKind::InformSilence)
            .map(|open| Silence {
                open,
                last: self
                    .alerts
                    .iter()
                    .rfind(|a| a.id == open.id)
                    .unwrap_or(open),
                outage: self.cause(open),
            })
            .collect()
    }

    /// Alerts no planted incident explains: there should be none.
    pub fn unexpected(&self) -> Vec<&Alert> {
        self.opened()
            .into_iter()
            .filter(|a| self.cause(a).is_none())
            .collect()
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let rate = |n: u64, s: f64| n as f64 / s.max(1e-9);
        let since = |ms: i64| {
            let m = (ms - self.start_ms) / 60_000;
            format!("+{}h{:02}m", m / 60, m % 60)
        };
        let mut out = String::new();
        out.push_str(&format!(
            "cwmp-stream demo: {} devices, {}h{:02}m simulated from {}, seed {}, broker {}\n\n",
            self.devices,
            self.duration_ms / 3_600_000,
            self.duration_ms % 3_600_000 / 60_000,
            cwmp_sim::format_utc(self.start_ms),
            self.seed,
            self.broker
        ));
        out.push_str("planted:\n");
        for p in &self.planted {
            out.push_str(&format!(
                "  {:<48} {:>6} devices  {}\n",
                p.scenario.to_string(),
                p.devices.len(),
                since(p.from_ms)
            ));
        }
        out.push_str(&format!(
            "\n{:<10} {:>10}  {:>12}\n{:<10} {:>10}  {:>10.0}/s  ({:.1} MB of XML; {} transfer results)\n{:<10} {:>10}  {:>10.0}/s  ({} records of which {} transfer results, {} DLQ, {} skipped)\n{:<10} {:>10}  {:>10.0}/s  ({} late; state: {} checkpoints, {:.1} MB)\n",
            "stage", "messages", "throughput",
            "simulate", self.simulated, rate(self.simulated, self.simulate_seconds), self.simulated_bytes as f64 / 1e6, self.simulated_transfers,
            "ingest", self.records + self.dlq + self.skipped, rate(self.records + self.dlq + self.skipped, self.ingest_seconds), self.records, self.transfer_records, self.dlq, self.skipped,
            "detect", self.detected, rate(self.detected, self.detect_seconds), self.late, self.checkpoints, self.checkpoint_bytes as f64 / 1e6,
        ));
        out.push_str(&format!("(stages run concurrently; each rate is its count over the time to its last message)\n\nalerts opened ({}):\n", self.opened().len()));
        out.push_str(&format!(
            "  {:<16} {:<16} {:<34} {:>9} {:>8}  {}\n",
            "kind", "scope", "key", "opened", "devices", "planted by"
        ));
        for a in self.opened() {
            let peak = self
                .alerts
                .iter()
                .filter(|x| x.id == a.id)
                .map(|x| x.devices)
                .max()
                .unwrap_or(a.devices);
            let cause = self
                .cause(a)
                .map_or("UNEXPECTED".to_owned(), |p| p.scenario.to_string());
            out.push_str(&format!(
                "  {:<16} {:<16} {:<34} {:>9} {:>8}  {}\n",
                a.kind.as_str(),
                a.scope.as_str(),
                a.key,
                since(a.window_end_ms),
                peak,
                cause
            ));
        }
        let rollouts: Vec<&Alert> = {
            // The last transition of each rollout_failure: the campaign's totals.
            let mut last: std::collections::BTreeMap<&str, &Alert> = Default::default();
            for a in self
                .alerts
                .iter()
                .filter(|a| a.kind == AlertKind::RolloutFailure)
            {
                last.insert(a.id.as_str(), a);
            }
            last.into_values().collect()
        };
        if !rollouts.is_empty() {
            out.push_str(
                "
firmware campaigns failing:
",
            );
        }
        for a in rollouts {
            let d = &a.detail;
            let faults: Vec<String> = d["results"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "success")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let versions = |field: &str| -> String {
                d[field]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k} ×{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "  {}: {} failed of {} results ({:.0} %; {}), {} upgrade boots; now on {}; failing devices still on {}; {}\n",
                a.key,
                d["failures"],
                d["failures"].as_u64().unwrap_or(0) + d["successes"].as_u64().unwrap_or(0),
                d["share"].as_f64().unwrap_or(0.0) * 100.0,
                faults.join(", "),
                d["upgrade_boots"],
                versions("versions_after"),
                versions("versions_before"),
                a.state.as_str(),
            ));
        }
        let silences = self.silences();
        if !silences.is_empty() {
            out.push_str(
                "
devices gone silent (inform_silence; opened after the outage began, in its devices' cadences):
",
            );
        }
        for s in silences {
            let after = |at: i64| {
                s.outage.map_or(String::new(), |p| {
                    format!(
                        " ({:.1} cadences)",
                        (at - p.from_ms) as f64 / p.period_ms.max(1) as f64
                    )
                })
            };
            out.push_str(&format!(
                "  {} {}: {} devices overdue, opened {}{}, {}
",
                s.open.scope.as_str(),
                s.open.key,
                s.last.devices,
                since(s.open.event_time_ms),
                after(s.open.event_time_ms),
                match s.last.state {
                    AlertState::Resolved => format!(
                        "resolved {} — {} came back {}",
                        since(s.last.event_time_ms),
                        s.last.detail["returned"],
                        if s.last.detail["came_back"] == "boot" {
                            "with a boot (power)"
                        } else {
                            "without a boot (network)"
                        }
                    ),
                    _ => "still open".to_owned(),
                }
            ));
        }
        if self.unreadable_alerts > 0 {
            out.push_str(&format!(
                "\n{} message(s) on the alert topic could not be read as alerts\n",
                self.unreadable_alerts
            ));
        }
        let unexpected = self.unexpected().len();
        out.push_str(&if unexpected == 0 {
            "\nevery alert matches a planted incident; nothing was raised where nothing was planted\n".to_owned()
        } else {
            format!("\n{unexpected} alert(s) match no planted incident\n")
        });
        out.push_str(&format!("finished in {:.1} s\n", self.wall_seconds));
        out
    }
}
