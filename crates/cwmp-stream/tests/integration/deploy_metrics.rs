//! Every PromQL expression in the Grafana dashboards and the Prometheus rules parses,
//! and every metric it reads is one the services register (or a recording rule the
//! rules define). An unknown metric fails the build.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cwmp_stream::detect::DetectMetrics;
use cwmp_stream::ingest::IngestMetrics;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use yaml_rust2::YamlLoader;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Metric names as Prometheus sees them (histograms as `_bucket`, `_sum`, `_count`).
fn registered() -> BTreeSet<String> {
    let ingest = IngestMetrics::new();
    let detect = DetectMetrics::new();
    // Vectors without a label set yet are not gathered: give the lazy ones one.
    let mut window = std::collections::BTreeMap::new();
    window.insert(
        (cwmp_detect::Scope::Fleet, "all".to_owned()),
        cwmp_detect::aggregate::Partial::default(),
    );
    detect.set_window(0, &window);
    let mut names = BTreeSet::new();
    for family in ingest
        .registry
        .gather()
        .into_iter()
        .chain(detect.registry.gather())
        .chain(cwmp_stream::metrics::process_registry().gather())
    {
        let name = family.name().to_owned();
        if family.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    // Series Prometheus itself makes: per target, and per alert of the rules.
    names.insert("up".to_owned());
    names.insert("ALERTS".to_owned());
    names
}

struct Selectors(BTreeSet<String>);

impl ExprVisitor for Selectors {
    type Error = ();
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        match expr {
            Expr::VectorSelector(vs) => {
                if let Some(n) = &vs.name {
                    self.0.insert(n.clone());
                }
            }
            Expr::MatrixSelector(ms) => {
                if let Some(n) = &ms.vs.name {
                    self.0.insert(n.clone());
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

/// Metric names an expression reads; panics with the expression when it does not parse.
fn metrics_of(origin: &str, expr: &str) -> BTreeSet<String> {
    // Grafana's variables, as Grafana would substitute them.
    let expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$namespace", ".*")
        .replace("$job", ".*")
        .replace("$pod", ".*");
    let ast = parser::parse(&expr).unwrap_or_else(|e| panic!("{origin}: {e}\n{expr}"));
    let mut v = Selectors(BTreeSet::new());
    let _ = walk_expr(&mut v, &ast);
    v.0
}

fn rules() -> Vec<(String, Option<String>, String)> {
    let text = std::fs::read_to_string(deploy().join("prometheus/rules.yml")).expect("rules.yml");
    let docs = YamlLoader::load_from_str(&text).expect("rules.yml is YAML");
    let mut out = Vec::new();
    for group in docs[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("named rule");
            let record = rule["record"].as_str().map(str::to_owned);
            let expr = rule["expr"].as_str().expect("expr").to_owned();
            out.push((format!("rules.yml {name}"), record, expr));
        }
    }
    out
}

fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, file: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "expr" {
                        if let Some(e) = v.as_str() {
                            out.push((file.to_owned(), e.to_owned()));
                        }
                    }
                    walk(v, file, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, file, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let dir = deploy().join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "ingest, fleet health and internals dashboards"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            json.get("__inputs").is_none(),
            "{name}: no __inputs export block"
        );
        let vars = json["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{name}: a ${{datasource}} variable"
        );
        assert!(
            !text.contains("\"uid\": \"prometheus\""),
            "{name}: panels use ${{datasource}}"
        );
        walk(&json, &name, &mut out);
    }
    out
}

#[test]
fn every_metric_in_rules_and_dashboards_is_registered() {
    let known = registered();
    let rules = rules();
    let recorded: BTreeSet<String> = rules.iter().filter_map(|(_, r, _)| r.clone()).collect();
    let mut checked = 0;
    let mut unknown = Vec::new();
    for (origin, expr) in rules
        .iter()
        .map(|(o, _, e)| (o.clone(), e.clone()))
        .chain(dashboard_exprs())
    {
        let metrics = metrics_of(&origin, &expr);
        assert!(!metrics.is_empty(), "{origin}: reads no metric: {expr}");
        for m in metrics {
            checked += 1;
            if !known.contains(&m) && !recorded.contains(&m) {
                unknown.push(format!("{origin}: {m}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the code does not register:\n{}",
        unknown.join("\n")
    );
    assert!(checked > 40, "{checked}");
}

#[test]
fn an_unknown_metric_is_caught() {
    let known = registered();
    let metrics = metrics_of("test", "sum(rate(cwmp_ingest_mesages_total[5m]))");
    assert!(metrics.iter().any(|m| !known.contains(m)));
}

/// Label names each selector of an expression filters on, by metric.
struct Filters(Vec<(String, BTreeSet<String>)>);

impl ExprVisitor for Filters {
    type Error = ();
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let labels = vs
            .matchers
            .matchers
            .iter()
            .map(|m| m.name.clone())
            .collect();
        self.0.push((vs.name.clone().unwrap_or_default(), labels));
        Ok(true)
    }
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = deploy().join("grafana/dashboards");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards")
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("read");
            (
                e.file_name().to_string_lossy().into_owned(),
                serde_json::from_str(&text).expect("JSON"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The threshold step at which a panel turns red.
fn red_at(panel: &serde_json::Value) -> Option<f64> {
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()?
        .iter()
        .find(|s| s["color"] == "red")?["value"]
        .as_f64()
}

/// The number an alert compares its first expression against (`… > 0.05`).
fn alert_threshold(name: &str) -> f64 {
    let (_, _, expr) = rules()
        .into_iter()
        .find(|(o, _, _)| o == &format!("rules.yml {name}"))
        .expect("the alert");
    let first = expr.lines().next().unwrap_or_default().to_owned();
    let number = first
        .split_once('>')
        .map(|(_, n)| n.split_whitespace().next().unwrap_or_default().to_owned())
        .expect("a > comparison");
    number.parse().expect("a number")
}

/// The on-call's first questions: which release, which pod (variables every workload
/// feeds), what is open (an open-alerts panel, alert annotations), is it red (the
/// alert rules' thresholds), what to do (a description on every panel).
#[test]
fn dashboards_answer_the_on_calls_first_questions() {
    for (name, d) in dashboards() {
        let vars: Vec<&serde_json::Value> = d["templating"]["list"]
            .as_array()
            .expect("vars")
            .iter()
            .collect();
        for v in ["namespace", "job", "pod"] {
            let var = vars
                .iter()
                .find(|x| x["name"] == v)
                .unwrap_or_else(|| panic!("{name}: variable {v}"));
            assert!(
                var["definition"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("label_values(cwmp_build_info"),
                "{name}: ${v} from cwmp_build_info, which every workload exports"
            );
        }
        let annotations = d["annotations"]["list"].as_array().expect("annotations");
        assert!(
            annotations.iter().any(|a| a["expr"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ALERTS{")),
            "{name}: alert annotations"
        );
        let panels = d["panels"].as_array().expect("panels");
        assert!(
            panels.iter().filter(|p| p["type"] == "row").count() >= 2,
            "{name}: rows"
        );
        assert!(
            panels.iter().any(|p| p["title"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Open alerts")),
            "{name}: an open-alerts panel"
        );
        for p in panels.iter().filter(|p| p["type"] != "row") {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                p["description"].as_str().unwrap_or_default().len() > 40,
                "{name}: {title}: a description that says what to do"
            );
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(
                    !expr.contains(") / 5"),
                    "{name}: {title}: a hard-coded window length"
                );
                let ast = parser::parse(
                    &expr
                        .replace("$__rate_interval", "5m")
                        .replace("$namespace", ".*")
                        .replace("$job", ".*")
                        .replace("$pod", ".*"),
                )
                .expect("parses");
                let mut f = Filters(Vec::new());
                let _ = walk_expr(&mut f, &ast);
                for (metric, labels) in f.0 {
                    let want: &[&str] = if metric == "ALERTS" {
                        &["namespace", "job"]
                    } else {
                        &["namespace", "job", "pod"]
                    };
                    assert!(
                        want.iter().all(|l| labels.contains(*l)),
                        "{name}: {title}: {metric} filtered by {want:?}, got {labels:?}"
                    );
                }
            }
        }
    }
    // Red where the alert fires.
    let panel = |file: &str, title: &str| -> serde_json::Value {
        let (_, d) = dashboards()
            .into_iter()
            .find(|(n, _)| n == file)
            .expect("dashboard");
        d["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .find(|p| p["title"] == title)
            .cloned()
            .unwrap_or_else(|| panic!("{file}: {title}"))
    };
    for (file, title, alert, above) in [
        ("ingest.json", "DLQ share", "CwmpDlqShareHigh", 0.0),
        (
            "ingest.json",
            "Consumer lag (messages)",
            "CwmpConsumerLagGrowing",
            0.0,
        ),
        (
            "internals.json",
            "Late record share",
            "CwmpDetectLateRecordsHigh",
            0.0,
        ),
        // Integer counts: red at the first value the alert fires on.
        (
            "fleet-health.json",
            "Active reboot loops",
            "CwmpRebootLoops",
            1.0,
        ),
        (
            "fleet-health.json",
            "Active boot storms",
            "CwmpBootStormActive",
            1.0,
        ),
        (
            "fleet-health.json",
            "Failing firmware campaigns",
            "CwmpRolloutFailing",
            1.0,
        ),
    ] {
        let red = red_at(&panel(file, title));
        assert_eq!(
            red,
            Some(alert_threshold(alert) + above),
            "{file}: {title} turns red where {alert} fires"
        );
    }
}
