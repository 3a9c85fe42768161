//! `mqtt`: the command-line tool of the stack. `consume` writes messages as JSON
//! lines (acknowledged to the broker only once written, and flushed to disk with
//! `--output`), `publish` sends one message or one per line (raw, or the lines
//! `consume` writes, to replay a capture), `bench` measures a broker end to end,
//! `check` prints what a broker allows, and `quickstart` runs a whole pipeline
//! against an embedded broker. `mqtt --help` and `mqtt <command> --help` say
//! everything; the exit codes are in [`exit::Exit`].

// The tool's output is its stdout.
#![allow(clippy::print_stdout)]

mod bench;
mod check;
mod cli;
mod common;
mod consume;
mod durable;
#[cfg(feature = "embedded-broker")]
mod embedded;
mod exit;
mod fleet;
mod hist;
mod http;
mod jsonl;
mod plot;
mod progress;
mod publish;
mod quickstart;
mod time;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::exit::{Exit, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    progress::QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => Exit::Ok.into(),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            failure.code.into()
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Consume(args) => consume::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Quickstart(args) => quickstart::run(args).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "mqtt", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Events to stderr: warnings by default, `-v` info, `-vv` debug, `-vvv` trace,
/// `-q` errors only; `RUST_LOG` (an `EnvFilter`) wins when set.
fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // The embedded broker logs every connection at info: only its errors by
    // default, everything with -vv.
    let broker = match verbose {
        0 => "off",
        1 => "error",
        _ => level,
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},rumqttd={broker}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
