//! `cwmp-stream detect --replay FILE`: EventRecord NDJSON through worker and fleet
//! stage in one process; alerts as NDJSON, in decision order.

use std::io::{BufRead, Write};

use cwmp_detect::{DetectConfig, Observation, Pipeline, Verdict};

/// What a replay saw, for the summary on stderr.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub records: u64,
    pub accepted: u64,
    pub late: u64,
    pub duplicate: u64,
    pub invalid: u64,
    pub alerts: u64,
}

/// Reads records from `input`, writes alerts to `out`, reports bad lines to `errors`.
pub fn replay(
    config: &DetectConfig,
    input: impl BufRead,
    mut out: impl Write,
    mut errors: impl Write,
) -> std::io::Result<ReplaySummary> {
    let mut pipeline = Pipeline::new(config.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut summary = ReplaySummary::default();
    let mut alerts = Vec::new();
    for (i, line) in input.split(b'\n').enumerate() {
        let mut line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.records += 1;
        match Observation::from_json(&mut line) {
            Ok(obs) => match pipeline.observe(&obs, &mut alerts) {
                Verdict::Accepted => summary.accepted += 1,
                Verdict::Late => summary.late += 1,
                Verdict::Duplicate => summary.duplicate += 1,
            },
            Err(err) => {
                summary.invalid += 1;
                writeln!(errors, "line {}: {} ({err})", i + 1, err.kind())?;
            }
        }
        for alert in alerts.drain(..) {
            summary.alerts += 1;
            out.write_all(alert.to_json().as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(summary)
}
