//! Repeated client errors at a bounded rate.
//!
//! While a broker is unreachable librdkafka reports the same failure on every poll,
//! from its log callback, its error callback and the consumer loop: tens of lines a
//! second that bury everything else. Each kind of message (a librdkafka facility or
//! an error code, a bounded set) is logged the first time; repeats within
//! [`WINDOW`] are counted, and the first one after the window is logged with how
//! many were suppressed (Vector's internal-log rate limiting is the model). The
//! outage itself shows in `/readyz` and the `…_client_errors_total` metric, and its
//! end is logged once ([`Outage`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long repeats of one kind of message are counted instead of logged.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Kinds followed at once; beyond, a new kind is logged unlimited (the kinds are
/// facilities and error codes, so this is never reached in practice).
const MAX_KINDS: usize = 512;

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Log it; `suppressed` repeats were not logged since the last line of its kind.
    Log { suppressed: u64 },
    /// A repeat within the window: counted, not logged.
    Suppress,
}

#[derive(Debug)]
struct Kind {
    logged_at: Instant,
    suppressed: u64,
}

/// A rate limiter over kinds of messages.
#[derive(Debug)]
pub struct Limiter {
    kinds: Mutex<HashMap<String, Kind>>,
    /// `cwmp_log_suppressed_total` (in [`crate::metrics::process_registry`]).
    suppressed: prometheus::IntCounter,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            kinds: Mutex::default(),
            suppressed: prometheus::IntCounter::new(
                "cwmp_log_suppressed_total",
                "Repeated client log lines and errors not logged (at most one line per kind per 10 s; the next line says how many).",
            )
            .expect("valid metric"),
        }
    }
}

impl Limiter {
    /// Whether an occurrence of `kind` at `now` is logged.
    pub fn check_at(&self, kind: &str, now: Instant) -> Decision {
        let Ok(mut kinds) = self.kinds.lock() else {
            return Decision::Log { suppressed: 0 };
        };
        match kinds.get_mut(kind) {
            Some(k) if now.duration_since(k.logged_at) < WINDOW => {
                k.suppressed += 1;
                self.suppressed.inc();
                Decision::Suppress
            }
            Some(k) => {
                let suppressed = std::mem::take(&mut k.suppressed);
                k.logged_at = now;
                Decision::Log { suppressed }
            }
            None => {
                if kinds.len() < MAX_KINDS {
                    kinds.insert(
                        kind.to_owned(),
                        Kind {
                            logged_at: now,
                            suppressed: 0,
                        },
                    );
                }
                Decision::Log { suppressed: 0 }
            }
        }
    }

    /// Repeats suppressed so far, over all kinds.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }

    /// The counter of suppressed repeats, for a registry.
    pub fn counter(&self) -> &prometheus::IntCounter {
        &self.suppressed
    }
}

/// The process's limiter: every client of every service shares it, so that one
/// outage seen by several clients is still a few lines.
pub fn limiter() -> &'static Limiter {
    static LIMITER: std::sync::OnceLock<Limiter> = std::sync::OnceLock::new();
    LIMITER.get_or_init(Limiter::default)
}

/// Logs through `emit` unless `kind` repeats within the window; `emit` gets the
/// count of repeats suppressed since its last line.
pub fn limited(kind: &str, emit: impl FnOnce(u64)) {
    if let Decision::Log { suppressed } = limiter().check_at(kind, Instant::now()) {
        emit(suppressed);
    }
}

/// Whether the brokers are reachable, as a consumer's callbacks see it: down on an
/// all-brokers-down error, up again when its statistics show a broker up. The
/// recovery is logged once, with how long it lasted.
#[derive(Debug, Default)]
pub struct Outage {
    since: Mutex<Option<Instant>>,
}

impl Outage {
    /// All brokers are down; returns true when this starts an outage.
    pub fn down(&self) -> bool {
        match self.since.lock() {
            Ok(mut since) if since.is_none() => {
                *since = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// A broker is up; returns how long the outage lasted when this ends one.
    pub fn up(&self) -> Option<Duration> {
        self.since.lock().ok()?.take().map(|t| t.elapsed())
    }

    pub fn is_down(&self) -> bool {
        self.since.lock().map(|s| s.is_some()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_logged_once_per_window_with_what_was_suppressed() {
        let l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(l.check_at("FAIL", t0), Decision::Log { suppressed: 0 });
        // Forty a second for the whole window: none logged.
        for i in 1..400 {
            let at = t0 + Duration::from_millis(i * 25);
            assert_eq!(l.check_at("FAIL", at), Decision::Suppress, "{i}");
        }
        // Another kind is not held back by the first.
        assert_eq!(
            l.check_at("AllBrokersDown", t0 + Duration::from_secs(1)),
            Decision::Log { suppressed: 0 }
        );
        assert_eq!(
            l.check_at("FAIL", t0 + WINDOW),
            Decision::Log { suppressed: 399 }
        );
        assert_eq!(l.suppressed(), 399);
        // Once quiet, the next occurrence is logged with nothing suppressed.
        assert_eq!(
            l.check_at("FAIL", t0 + WINDOW * 5),
            Decision::Log { suppressed: 0 }
        );
    }

    #[test]
    fn an_outage_starts_once_and_ends_once() {
        let o = Outage::default();
        assert!(o.up().is_none(), "no outage to end");
        assert!(o.down());
        assert!(!o.down(), "already down");
        assert!(o.is_down());
        assert!(o.up().is_some());
        assert!(o.up().is_none(), "ended once");
        assert!(!o.is_down());
    }
}
