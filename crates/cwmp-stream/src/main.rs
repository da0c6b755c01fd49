//! `cwmp-stream`: turns raw TR-069 (CWMP) Informs into device-keyed event records.

mod extract;
mod input;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cwmp_inform::{Charset, Limits, Options};

#[derive(Debug, Parser)]
#[command(
    name = "cwmp-stream",
    version,
    about = "Stream processor for TR-069 (CWMP) Inform traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract EventRecords from Informs in files: one JSON line per message.
    ///
    /// Each PATH is a file holding one message (the raw POST body, or a JSON
    /// envelope), or a directory whose files are read in name order. With
    /// --envelopes, each line of FILE is a JSON envelope. Exit status: 0 when every
    /// message gave a record, 1 when some were rejected, 2 on a usage or I/O error.
    Extract(ExtractArgs),
}

#[derive(Debug, Args)]
struct ExtractArgs {
    /// Files or directories holding one message each.
    #[arg(required_unless_present = "envelopes", conflicts_with = "envelopes")]
    paths: Vec<PathBuf>,
    /// A file with one JSON envelope per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    envelopes: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Charset of raw bodies when neither a BOM nor the XML declaration says (as an
    /// HTTP Content-Type charset would): utf-8, iso-8859-1 or windows-1252.
    #[arg(long, value_parser = parse_charset)]
    charset: Option<Charset>,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Largest accepted message in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Deepest accepted element nesting.
    #[arg(long, default_value_t = Limits::default().max_depth)]
    max_depth: usize,
    /// Most event codes in one Inform.
    #[arg(long, default_value_t = Limits::default().max_events)]
    max_events: usize,
    /// Most parameters in one Inform.
    #[arg(long, default_value_t = Limits::default().max_params)]
    max_params: usize,
}

impl From<&LimitArgs> for Limits {
    fn from(a: &LimitArgs) -> Self {
        Limits {
            max_message_bytes: a.max_message_bytes,
            max_depth: a.max_depth,
            max_events: a.max_events,
            max_params: a.max_params,
        }
    }
}

fn parse_charset(label: &str) -> Result<Charset, String> {
    Charset::from_label(label.as_bytes()).ok_or_else(|| {
        format!("unsupported charset {label:?} (use utf-8, iso-8859-1 or windows-1252)")
    })
}

fn run_extract(args: &ExtractArgs) -> anyhow::Result<u8> {
    let options = Options {
        limits: Limits::from(&args.limits),
        charset: args.charset,
    };
    let stdout = io::stdout().lock();
    let out = io::BufWriter::with_capacity(256 * 1024, stdout);
    let result = match &args.envelopes {
        Some(file) => extract::extract_envelopes(file, &options, out),
        None => extract::extract_paths(&args.paths, &options, out),
    };
    match result {
        Ok(tally) => Ok(tally.exit_code()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(err) => Err(err).context("writing results"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Extract(args) => run_extract(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = writeln!(io::stderr(), "cwmp-stream: {err:#}");
            ExitCode::from(2)
        }
    }
}
