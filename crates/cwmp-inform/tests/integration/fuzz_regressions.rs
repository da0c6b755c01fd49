//! Replays what the fuzzer kept: every input that ever crashed it
//! (`fuzz/regressions/`), and a minimized set of inputs that reach deep into the
//! extractor (`fuzz/seeds/`). Each must give a result that keeps the extractor's
//! promises: no panic, a listed error kind, an offset inside the input, a device id,
//! and — as the fuzz target asserts — the same result from the parser's shortcut as
//! from plain quick-xml events.

use std::path::Path;

use cwmp_inform::{extract, extract_event_by_event, Error, Options};

#[test]
fn fuzz_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let input = std::fs::read(&path).expect("read");
            seen += 1;
            let extracted = extract(&input, &Options::default());
            assert_eq!(
                extracted,
                extract_event_by_event(&input, &Options::default()),
                "{}: the shortcut changed the result",
                path.display()
            );
            let message = cwmp_inform::extract_message(&input, &Options::default());
            assert_eq!(
                message,
                cwmp_inform::extract_message_event_by_event(&input, &Options::default()),
                "{}: the shortcut changed the message",
                path.display()
            );
            match (&message, &extracted) {
                (Ok(cwmp_inform::Message::Inform(a)), Ok(b)) => assert_eq!(a, b),
                (Ok(cwmp_inform::Message::Transfer(_)), Err(Error::NotInform { .. })) => {}
                (Err(_), Err(Error::NotInform { .. })) => {}
                (Err(a), Err(b)) => assert_eq!(a, b, "{}", path.display()),
                (m, e) => panic!("{}: {m:?} / {e:?}", path.display()),
            }
            match extracted {
                Ok(inform) => {
                    assert!(!inform.device_id.oui.is_empty(), "{}", path.display());
                    assert!(
                        !inform.device_id.serial_number.is_empty(),
                        "{}",
                        path.display()
                    );
                }
                Err(err) => {
                    assert!(Error::KINDS.contains(&err.kind()), "{}", path.display());
                    if !matches!(err, Error::TooLarge { .. }) {
                        assert!(err.offset() <= input.len(), "{}: {err}", path.display());
                    }
                }
            }
        }
    }
    assert!(
        seen >= 20,
        "fuzz/seeds and fuzz/regressions hold only {seen} inputs"
    );
}
