//! Feeds arbitrary state-partition contents to the checkpoint reader
//! (`checkpoint::choose`, `checkpoint::newest_offset`), as a state topic holding
//! damaged, foreign or half-written records would. The input is split into records
//! (key and value, each behind a one-byte length); keys that look like the real ones
//! (`0/m`, `1/m`, `c/…`) are made likely. Any panic or hang is a bug. A checkpoint
//! planned over what was read, once written, must be the one restored.
#![no_main]

use std::collections::BTreeMap;

use cwmp_stream::detect::checkpoint::{choose, newest_offset, plan, Choice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rest = data;
    while let [k, v, tail @ ..] = rest {
        let (k, v) = (*k as usize, *v as usize);
        if tail.len() < k + v {
            break;
        }
        let key = match tail[..k].first() {
            Some(b'M') => b"0/m".to_vec(),
            Some(b'N') => b"1/m".to_vec(),
            _ => tail[..k].to_vec(),
        };
        latest.insert(key, tail[k..k + v].to_vec());
        rest = &tail[k + v..];
    }
    let (choice, book) = choose(&latest, Some(7));
    let _ = newest_offset(&latest);
    let gen = match choice {
        Choice::Restore { gen, .. } => gen + 1,
        Choice::Cold { next_gen, .. } => next_gen,
    };
    let state = rest.to_vec();
    let planned = plan(&book, gen, 99, &state);
    for (k, v) in &planned.records {
        match v {
            Some(v) => latest.insert(k.as_bytes().to_vec(), v.clone()),
            None => latest.remove(k.as_bytes()),
        };
    }
    match choose(&latest, Some(99)).0 {
        Choice::Restore { offset, state: got, .. } => {
            assert_eq!(offset, 99);
            assert_eq!(got, state);
        }
        Choice::Cold { reason, .. } => panic!("the checkpoint just written is not restored: {reason:?}"),
    }
});
