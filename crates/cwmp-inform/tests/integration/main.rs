//! Integration tests of the extractor: hostile input, and a round trip through
//! randomly styled wire forms, and the parser's shortcut against plain quick-xml
//! events. The documented vectors in `tests/documents/` are
//! checked against golden records by `cwmp-record`'s tests.

mod fuzz_regressions;
mod hostile;
mod roundtrip;
mod shortcut;
