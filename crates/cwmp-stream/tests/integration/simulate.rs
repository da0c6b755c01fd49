//! `cwmp-stream simulate` produces what an ACS front-end would, to any broker.

use std::process::Command;
use std::time::Duration;

use rdkafka::message::Message;

use crate::kafka_util::{header, read_topic, Broker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_produces_informs_with_front_end_headers() {
    let broker = Broker::start();
    let topic = format!("simulate-{}.raw", std::process::id());
    broker.create_topic(&topic, 4).await;
    let out = Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
        .args([
            "simulate",
            "--devices",
            "200",
            "--duration",
            "2h",
            "--seed",
            "7",
        ])
        .args([
            "--scenario",
            "reboot_loop@30m:count=2",
            "--brokers",
            &broker.bootstrap,
            "--topic",
            &topic,
        ])
        .output()
        .expect("run simulate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("planted: reboot_loop@30m (2 devices)"),
        "{stderr}"
    );
    let produced: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("simulate: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a summary line");
    let messages = tokio::task::block_in_place(|| {
        read_topic(&broker, &topic, produced, false, Duration::from_secs(60))
    });
    assert_eq!(messages.len(), produced);
    let mut boots = 0;
    for m in &messages {
        let received: i64 = header(m, "cwmp-received-at")
            .expect("received-at")
            .parse()
            .expect("ms");
        assert!(received >= 1_795_478_400_000);
        assert!(header(m, "cwmp-acs").is_some_and(|a| a.starts_with("acs-")));
        assert!(header(m, "cwmp-remote-addr").is_some());
        assert!(header(m, "content-type").is_some_and(|c| c.starts_with("text/xml")));
        let body = m.payload().expect("body");
        let inform = match cwmp_inform::extract_message(body, &cwmp_inform::Options::default()) {
            Ok(cwmp_inform::Message::Inform(inform)) => inform,
            // A transfer result follows its session's Inform, under the same key.
            Ok(cwmp_inform::Message::Transfer(_)) => continue,
            Err(err) => panic!("not an Inform: {err}"),
        };
        if inform.events.iter().any(|e| e.code == "1 BOOT") {
            boots += 1;
        }
        assert!(m.key().is_some());
    }
    // Two looping devices boot every 8 minutes for an hour.
    assert!(boots >= 14, "{boots}");
}

#[test]
fn bad_scenarios_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
        .args(["simulate", "--scenario", "meteor@1h"])
        .output()
        .expect("run simulate");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
}
