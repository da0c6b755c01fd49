//! Settings that do not hold together are refused with a message, never a panic.

use cwmp_detect::{DetectConfig, Fleet, Pipeline, Worker};

#[test]
fn inconsistent_settings_are_refused_by_every_constructor() {
    let cases: Vec<(&str, DetectConfig)> = vec![
        (
            "slide_ms",
            DetectConfig {
                slide_ms: 0,
                ..DetectConfig::default()
            },
        ),
        (
            "multiple of slide_ms",
            DetectConfig {
                window_ms: 90_000,
                ..DetectConfig::default()
            },
        ),
        (
            "allowed_lateness_ms",
            DetectConfig {
                allowed_lateness_ms: -1,
                ..DetectConfig::default()
            },
        ),
        (
            "scopes",
            DetectConfig {
                scopes: Vec::new(),
                ..DetectConfig::default()
            },
        ),
    ];
    let silence = |f: fn(&mut cwmp_detect::InformSilenceConfig)| {
        let mut c = DetectConfig::default();
        f(&mut c.inform_silence);
        c
    };
    let mut cases = cases;
    cases.extend([
        (
            "inform_silence.grace_factor",
            silence(|s| s.grace_factor = 0.5),
        ),
        (
            "at most 72 hours",
            silence(|s| s.max_interval_ms = 7 * 86_400_000),
        ),
        (
            "inform_silence.window_ms",
            silence(|s| s.window_ms = 90_000),
        ),
        (
            "inform_silence.network_prefix_v4",
            silence(|s| s.network_prefix_v4 = 33),
        ),
        (
            "inform_silence.resolve_share",
            silence(|s| s.resolve_share = 0.0),
        ),
        (
            "inform_silence.scopes",
            silence(|s| s.scopes = vec![cwmp_detect::Scope::Campaign]),
        ),
    ]);
    for (says, config) in cases {
        let err = Worker::new(config.clone()).expect_err(says).to_string();
        assert!(err.contains(says), "{err}");
        assert!(Fleet::new(config.clone()).is_err(), "{says}");
        assert!(Pipeline::new(config).is_err(), "{says}");
    }
    assert!(Pipeline::new(DetectConfig::default()).is_ok());
}
