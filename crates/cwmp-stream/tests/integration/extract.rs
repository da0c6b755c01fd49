//! `cwmp-stream extract`: the output contract other tools rely on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cwmp-stream"))
}

fn documents() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cwmp-inform/tests/documents")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cwmp-stream-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn good_files_exit_zero_with_records() {
    let good = documents().join("baseline-soap-env-prefixes.xml");
    let out = bin().arg("extract").arg(&good).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["device_id"], "202BC1-BM632w-8KA8WA1151100043");
    assert_eq!(got[0]["source"]["file"], good.to_string_lossy().as_ref());
    assert_eq!(got[0]["events"][1]["kind"], "m_reboot");
}

#[test]
fn a_directory_in_name_order_with_rejections_exits_one() {
    let out = bin().arg("extract").arg(documents()).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    // Files only: the `transfers/` folder inside is not descended into.
    let mut names: Vec<String> = std::fs::read_dir(documents())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        got.len(),
        names.len(),
        "one line per file, README and goldens included"
    );
    for (line, name) in got.iter().zip(&names) {
        assert_eq!(line["source"]["file"], name.as_str());
        let is_error = line.get("error").is_some();
        let expect_error = !name.ends_with(".xml") || name.contains("/error-");
        assert_eq!(is_error, expect_error, "{name}: {line}");
        if let Some(err) = line.get("error") {
            assert!(
                err["kind"].is_string() && err["message"].is_string() && err["offset"].is_u64()
            );
        }
    }
}

#[test]
fn envelopes_file_numbers_lines() {
    let dir = tempdir("envelopes");
    let body =
        std::fs::read_to_string(documents().join("baseline-soap-env-prefixes.xml")).expect("read");
    let path = dir.join("in.ndjson");
    let mut f = std::fs::File::create(&path).expect("create");
    let env = serde_json::json!({"received_at": 1_764_000_000_000_i64, "acs": "acs-eu-1", "remote_addr": "203.0.113.7", "body": body});
    writeln!(f, "{env}").expect("write");
    writeln!(f).expect("write");
    writeln!(f, "{{\"body\": \"<oops\"}}").expect("write");
    let env2 = serde_json::json!({"received_at": "2025-11-24T16:00:00Z", "body": body, "future_field": true});
    writeln!(f, "{env2}").expect("write");
    drop(f);
    let out = bin()
        .args(["extract", "--envelopes"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["source"]["line"], 1);
    assert_eq!(got[0]["acs"], "acs-eu-1");
    assert_eq!(got[0]["remote_addr"], "203.0.113.7");
    assert_eq!(got[0]["received_at_ms"], 1_764_000_000_000_i64);
    assert_eq!(got[1]["source"]["line"], 3);
    assert_eq!(got[1]["error"]["kind"], "malformed_xml");
    assert_eq!(got[2]["source"]["line"], 4);
    assert_eq!(got[2]["received_at_ms"], 1_764_000_000_000_i64);
}

#[test]
fn envelopes_from_stdin() {
    let body = std::fs::read_to_string(documents().join("no-header.xml")).expect("read");
    let mut child = bin()
        .args(["extract", "--envelopes", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let line = serde_json::json!({ "body": body }).to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(line.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        lines(&out)[0]["device_id"],
        "E48D8C-hAP%20mini-B7B20A1DE3F0"
    );
}

#[test]
fn io_and_usage_errors_exit_two() {
    let out = bin()
        .args(["extract", "/nonexistent/cwmp-stream"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(lines(&out)[0]["error"]["kind"], "io");
    let out = bin().arg("extract").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["extract", "--charset", "utf-16", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn oversized_files_are_not_read_whole() {
    let dir = tempdir("big");
    let path = dir.join("big.xml");
    std::fs::write(&path, vec![b'<'; 3 << 20]).expect("write");
    let out = bin().arg("extract").arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let got = lines(&out);
    assert_eq!(got[0]["error"]["kind"], "too_large");
    assert!(got[0]["error"]["message"]
        .as_str()
        .expect("msg")
        .contains(&(3usize << 20).to_string()));
    let out = bin()
        .args(["extract", "--max-message-bytes", "8"])
        .arg(documents().join("no-header.xml"))
        .output()
        .expect("run");
    assert_eq!(lines(&out)[0]["error"]["kind"], "too_large");
}

#[test]
fn latin1_charset_hint_for_raw_bodies() {
    let dir = tempdir("latin1");
    let path = dir.join("latin1.xml");
    let body = std::fs::read(documents().join("iso-8859-1-declared.xml")).expect("read");
    // Drop the XML declaration: only the hint says the body is ISO-8859-1.
    let start = body.iter().position(|&b| b == b'\n').expect("decl line") + 1;
    std::fs::write(&path, &body[start..]).expect("write");
    let out = bin().arg("extract").arg(&path).output().expect("run");
    let got = lines(&out);
    assert_eq!(
        got[0]["warnings"][0], "invalid_utf8",
        "without the hint it is broken UTF-8"
    );
    let out = bin()
        .args(["extract", "--charset", "iso-8859-1"])
        .arg(&path)
        .output()
        .expect("run");
    let got = lines(&out);
    assert_eq!(got[0]["device"]["manufacturer"], "Société Générale Télécom");
}
