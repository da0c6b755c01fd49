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
    for (says, config) in cases {
        let err = Worker::new(config.clone()).expect_err(says).to_string();
        assert!(err.contains(says), "{err}");
        assert!(Fleet::new(config.clone()).is_err(), "{says}");
        assert!(Pipeline::new(config).is_err(), "{says}");
    }
    assert!(Pipeline::new(DetectConfig::default()).is_ok());
}
