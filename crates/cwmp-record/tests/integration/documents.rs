//! Every vector in `crates/cwmp-inform/tests/documents/` against its golden record.
//!
//! A golden is the exact JSON the vector must give. To add a vector, write the
//! `.xml`, describe it in that folder's README, run this test with
//! `UPDATE_GOLDEN=1`, and read the new `.json` before committing it.

use std::fs;

use crate::{outcome, transfer_outcome, workspace};

#[test]
fn vectors_match_their_goldens() {
    check_folder("crates/cwmp-inform/tests/documents", 50, outcome);
}

#[test]
fn transfer_vectors_match_their_goldens() {
    check_folder(
        "crates/cwmp-inform/tests/documents/transfers",
        18,
        transfer_outcome,
    );
}

fn check_folder(folder: &str, at_least: usize, outcome: fn(&[u8], &str) -> serde_json::Value) {
    let dir = workspace().join(folder);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let readme = fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("documents folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= at_least,
        "only {} vectors found",
        names.len()
    );
    let mut failures = Vec::new();
    for path in &names {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let bytes = fs::read(path).expect("read vector");
        let got = outcome(&bytes, name);
        let golden = path.with_extension("json");
        if update {
            let text = serde_json::to_string_pretty(&got).expect("pretty") + "\n";
            fs::write(&golden, text).expect("write golden");
            continue;
        }
        if !readme.contains(&format!("`{name}`")) {
            failures.push(format!("{name}: not described in README.md"));
        }
        match fs::read(&golden) {
            Ok(text) => {
                let want: serde_json::Value =
                    serde_json::from_slice(&text).expect("golden is JSON");
                if want != got {
                    failures.push(format!(
                        "{name}: differs from golden\n--- want\n{}\n--- got\n{}",
                        serde_json::to_string_pretty(&want).unwrap_or_default(),
                        serde_json::to_string_pretty(&got).unwrap_or_default()
                    ));
                }
            }
            Err(_) => failures.push(format!("{name}: no golden {}", golden.display())),
        }
    }
    for path in fs::read_dir(&dir)
        .expect("documents")
        .map(|e| e.expect("entry").path())
    {
        if path.extension().is_some_and(|e| e == "json") && !path.with_extension("xml").exists() {
            failures.push(format!("{}: golden without a vector", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
