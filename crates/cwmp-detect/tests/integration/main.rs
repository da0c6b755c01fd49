//! cwmp-detect integration tests: seeded fleet scenarios, properties, JSON input.

mod config;
mod gen;
mod json;
mod properties;
mod restore;
mod scenarios;
mod silence;

use cwmp_detect::{Alert, DetectConfig, Observation, Pipeline};

/// Runs records through worker and fleet stage in one process.
pub fn run(obs: &[Observation]) -> Vec<Alert> {
    run_with(DetectConfig::default(), obs)
}

pub fn run_with(config: DetectConfig, obs: &[Observation]) -> Vec<Alert> {
    let mut pipeline = Pipeline::new(config).expect("valid config");
    let mut alerts = Vec::new();
    for o in obs {
        pipeline.observe(o, &mut alerts);
    }
    alerts
}

/// `kind state scope key` lines, for readable assertion failures.
pub fn summary(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} @{}",
                a.kind.as_str(),
                a.state.as_str(),
                a.scope.as_str(),
                a.key,
                (a.window_start_ms - gen::T0) / gen::MIN
            )
        })
        .collect()
}
