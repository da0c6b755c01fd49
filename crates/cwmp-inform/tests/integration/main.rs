//! Integration tests of the extractor: hostile input, and a round trip through
//! randomly styled wire forms. The documented vectors in `tests/documents/` are
//! checked against golden records by `cwmp-record`'s tests.

mod fuzz_regressions;
mod hostile;
mod roundtrip;
