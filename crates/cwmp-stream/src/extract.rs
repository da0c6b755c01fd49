//! `cwmp-stream extract`: the offline face of the extractor.
//!
//! Prints one JSON line per message, in input order: the EventRecord, the
//! TransferRecord of a `TransferComplete` / `AutonomousTransferComplete`, or
//! `{"source":…,"error":{"kind","message","offset"}}`. A transfer is attributed to
//! the device its envelope names (`device_id`), or to the device of the last Inform
//! with the same envelope `session` key that announced a transfer (`7 TRANSFER
//! COMPLETE`, `10 AUTONOMOUS TRANSFER COMPLETE`); without either it is an
//! `unattributed` error. Exit status 0 when every
//! message gave a record, 1 when some were rejected, 2 on a usage or I/O error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use cwmp_inform::Options;
use cwmp_record::Source;
use serde::Serialize;

use crate::ingest::sessions::{attribute, SessionDevice};
use crate::input::{to_message, InputError, Parsed, Transport};
use cwmp_record::TransferRecord;
use std::collections::HashMap;

/// How the run went, which decides the exit status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub rejected: u64,
    pub io_errors: u64,
}

impl Tally {
    pub fn exit_code(self) -> u8 {
        if self.io_errors > 0 {
            2
        } else if self.rejected > 0 {
            1
        } else {
            0
        }
    }
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    source: &'a Source<'a>,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'a str,
    message: String,
    offset: usize,
}

/// Writes the line for one message and counts it.
struct Printer<W: Write> {
    out: W,
    tally: Tally,
    line: Vec<u8>,
    /// Envelope `session` key → the device of its last Inform.
    sessions: HashMap<String, SessionDevice>,
}

/// Most sessions `extract` remembers; past it the table starts over.
const MAX_SESSIONS: usize = 100_000;

impl<W: Write> Printer<W> {
    fn new(out: W) -> Self {
        Printer {
            out,
            tally: Tally::default(),
            line: Vec::with_capacity(4096),
            sessions: HashMap::new(),
        }
    }
}

impl<W: Write> Printer<W> {
    fn message(&mut self, message: &[u8], source: Source<'_>, options: &Options) -> io::Result<()> {
        self.line.clear();
        match to_message(message, Transport::default(), source.clone(), options) {
            Ok(Parsed::Inform(extracted)) => {
                extracted.record.write_json(&mut self.line);
                if let Some(session) = extracted
                    .session
                    .filter(|_| SessionDevice::announces_transfer(&extracted.record))
                {
                    if self.sessions.len() >= MAX_SESSIONS {
                        self.sessions.clear();
                    }
                    self.sessions
                        .insert(session.into_owned(), SessionDevice::of(&extracted.record));
                }
                self.tally.records += 1;
            }
            Ok(Parsed::Transfer(input)) => {
                let session = input
                    .session
                    .as_deref()
                    .and_then(|key| self.sessions.get(key));
                let device = attribute(input.named.clone(), session);
                match device {
                    Some(device) => {
                        TransferRecord::from_transfer(input.transfer, device, input.meta)
                            .write_json(&mut self.line);
                        self.tally.records += 1;
                    }
                    None => {
                        let message = format!(
                            "{} not attributed to a device: no envelope device_id, and no Inform with its envelope session key before it",
                            input.transfer.rpc()
                        );
                        self.error_raw(&source, "unattributed", message, 0)?;
                        self.tally.rejected += 1;
                    }
                }
            }
            Err(err) => {
                self.error_line(&source, &err)?;
                self.tally.rejected += 1;
            }
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn error_line(&mut self, source: &Source<'_>, err: &InputError) -> io::Result<()> {
        self.error_raw(source, err.kind(), err.to_string(), err.offset())
    }

    fn error_raw(
        &mut self,
        source: &Source<'_>,
        kind: &str,
        message: String,
        offset: usize,
    ) -> io::Result<()> {
        let line = ErrorLine {
            source,
            error: ErrorBody {
                kind,
                message,
                offset,
            },
        };
        serde_json::to_writer(&mut self.line, &line).map_err(io::Error::other)
    }

    fn io_error(&mut self, source: Source<'_>, err: &io::Error) -> io::Result<()> {
        self.line.clear();
        self.error_raw(&source, "io", err.to_string(), 0)?;
        self.line.push(b'\n');
        self.tally.io_errors += 1;
        self.out.write_all(&self.line)
    }
}

/// Reads at most `limit + 1` bytes of a file, so that a huge file costs no memory.
fn read_bounded(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut buf = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The files a PATH argument names: itself, or a directory's regular files in name order.
fn expand(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_file() || entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Extracts every file named (directories expanded one level, in name order).
pub fn extract_paths<W: Write>(paths: &[PathBuf], options: &Options, out: W) -> io::Result<Tally> {
    let mut printer = Printer::new(out);
    let limit = options.limits.max_message_bytes;
    for arg in paths {
        let files = match expand(arg) {
            Ok(files) => files,
            Err(err) => {
                printer.io_error(Source::file(arg.to_string_lossy(), None), &err)?;
                continue;
            }
        };
        for path in files {
            let name = path.to_string_lossy();
            match read_bounded(&path, limit) {
                Ok(bytes) if bytes.len() > limit => {
                    let size = std::fs::metadata(&path).map_or(bytes.len(), |m| m.len() as usize);
                    let err = InputError::Inform(cwmp_inform::Error::TooLarge { size, limit });
                    printer.line.clear();
                    printer.error_line(&Source::file(name.as_ref(), None), &err)?;
                    printer.line.push(b'\n');
                    printer.tally.rejected += 1;
                    printer.out.write_all(&printer.line)?;
                }
                Ok(bytes) => printer.message(&bytes, Source::file(name.as_ref(), None), options)?,
                Err(err) => printer.io_error(Source::file(name.as_ref(), None), &err)?,
            }
        }
    }
    printer.out.flush()?;
    Ok(printer.tally)
}

/// Longest envelope line read: the body limit with every byte escaped as `\u00XX`,
/// plus room for the other fields.
fn max_line_bytes(options: &Options) -> usize {
    options
        .limits
        .max_message_bytes
        .saturating_mul(6)
        .saturating_add(64 * 1024)
}

/// Reads one line of at most `max` bytes into `buf` (without the newline).
/// Returns `None` at end of input, `Some(false)` when the line was too long (the rest
/// of it is skipped without being kept).
fn read_line_bounded<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut fits = true;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (used, done) = match memchr_newline(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let data = &chunk[..if done { used - 1 } else { used }];
        if fits {
            if buf.len() + data.len() > max {
                fits = false;
                buf.clear();
            } else {
                buf.extend_from_slice(data);
            }
        }
        r.consume(used);
        if done {
            return Ok(Some(fits));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Extracts every line of an envelope file (`-` is standard input). Blank lines are skipped.
pub fn extract_envelopes<W: Write>(path: &Path, options: &Options, out: W) -> io::Result<Tally> {
    let name = path.to_string_lossy();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(io::stdin().lock()))
    } else {
        match File::open(path) {
            Ok(f) => Box::new(BufReader::with_capacity(256 * 1024, f)),
            Err(err) => {
                let mut printer = Printer::new(out);
                printer.io_error(Source::file(name.as_ref(), None), &err)?;
                printer.out.flush()?;
                return Ok(printer.tally);
            }
        }
    };
    extract_envelope_lines(reader, &name, options, out)
}

fn extract_envelope_lines<R: BufRead, W: Write>(
    mut reader: R,
    name: &str,
    options: &Options,
    out: W,
) -> io::Result<Tally> {
    let mut printer = Printer::new(out);
    let max = max_line_bytes(options);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        let fits = match read_line_bounded(&mut reader, &mut buf, max) {
            Ok(Some(fits)) => fits,
            Ok(None) => break,
            Err(err) => {
                printer.io_error(Source::file(name, Some(line_no + 1)), &err)?;
                break;
            }
        };
        line_no += 1;
        let source = Source::file(name, Some(line_no));
        if !fits {
            let err = InputError::Envelope {
                offset: max,
                reason: format!("line longer than {max} bytes"),
            };
            printer.line.clear();
            printer.error_raw(&source, "too_large", err.to_string(), max)?;
            printer.line.push(b'\n');
            printer.tally.rejected += 1;
            printer.out.write_all(&printer.line)?;
            continue;
        }
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        printer.message(&buf, source, options)?;
    }
    printer.out.flush()?;
    Ok(printer.tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        let data = b"short\nthis line is far too long\nok\nlast";
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(fits) = read_line_bounded(&mut r, &mut buf, 8).expect("read") {
            got.push((fits, String::from_utf8_lossy(&buf).into_owned()));
        }
        assert_eq!(
            got,
            vec![
                (true, "short".to_owned()),
                (false, String::new()),
                (true, "ok".to_owned()),
                (true, "last".to_owned())
            ]
        );
    }

    #[test]
    fn tally_exit_codes() {
        assert_eq!(Tally::default().exit_code(), 0);
        assert_eq!(
            Tally {
                rejected: 1,
                ..Tally::default()
            }
            .exit_code(),
            1
        );
        assert_eq!(
            Tally {
                rejected: 1,
                io_errors: 1,
                ..Tally::default()
            }
            .exit_code(),
            2
        );
    }

    #[test]
    fn envelope_lines_in_order() {
        let input = b"{\"body\":\"<x/>\"}\n\n   \nnot json\n";
        let mut out = Vec::new();
        let tally =
            extract_envelope_lines(&input[..], "f", &Options::default(), &mut out).expect("run");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains(r#""line":1"#) && lines[0].contains("not_soap"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(r#""line":4"#) && lines[1].contains("not_xml"),
            "{}",
            lines[1]
        );
        assert_eq!(tally.rejected, 2);
    }

    #[test]
    fn transfers_go_to_their_session_or_are_unattributed() {
        let input = r#"{"session":"s1","received_at":1764000000000,"body":"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><c:Inform xmlns:c=\"urn:dslforum-org:cwmp-1-0\"><DeviceId><OUI>00D09E</OUI><ProductClass>IGD</ProductClass><SerialNumber>S1</SerialNumber></DeviceId><Event><EventStruct><EventCode>7 TRANSFER COMPLETE</EventCode></EventStruct></Event></c:Inform></s:Body></s:Envelope>"}
{"session":"s1","received_at":1764000001000,"body":"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><c:TransferComplete xmlns:c=\"urn:dslforum-org:cwmp-1-0\"><CommandKey>fw</CommandKey><FaultStruct><FaultCode>9010</FaultCode><FaultString>x</FaultString></FaultStruct></c:TransferComplete></s:Body></s:Envelope>"}
{"session":"s2","body":"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><c:TransferComplete xmlns:c=\"urn:dslforum-org:cwmp-1-0\"><CommandKey>fw</CommandKey></c:TransferComplete></s:Body></s:Envelope>"}"#;
        let mut out = Vec::new();
        let tally = extract_envelope_lines(input.as_bytes(), "x", &Options::default(), &mut out)
            .expect("io");
        assert_eq!(tally.records, 2);
        assert_eq!(tally.rejected, 1);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[1]["rpc"], "TransferComplete");
        assert_eq!(lines[1]["device_id"], "00D09E-IGD-S1");
        assert_eq!(lines[1]["attribution"], "session");
        assert_eq!(lines[1]["fault"]["code"], 9010);
        assert_eq!(lines[2]["error"]["kind"], "unattributed");
    }
}
