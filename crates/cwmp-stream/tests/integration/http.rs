//! The operations listener: /metrics, /healthz, /readyz over real HTTP.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use cwmp_stream::health::Health;
use cwmp_stream::http;
use cwmp_stream::ingest::IngestMetrics;
use tokio::sync::watch;

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness() {
    let metrics = IngestMetrics::new();
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let (stop_tx, stop) = watch::channel(false);
    let m = metrics.clone();
    let render: http::Render = Arc::new(move || m.render());
    let (addr, task) = http::serve("127.0.0.1:0", render, health.clone(), stop)
        .await
        .expect("bind");
    metrics.in_flight.set(7);

    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .expect("join");
    assert_eq!(status, 200);
    assert!(body.contains("cwmp_ingest_in_flight_messages 7"), "{body}");
    assert!(body.contains("# TYPE cwmp_ingest_ack_latency_seconds histogram"));

    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .expect("join");
    assert_eq!(status, 200);
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
        .await
        .expect("join");
    assert_eq!((status, body.trim()), (503, "no input partitions assigned"));
    health.set_assigned(4);
    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
        .await
        .expect("join");
    assert_eq!(status, 200);
    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/nope"))
        .await
        .expect("join");
    assert_eq!(status, 404);

    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("join");
}
