//! Exit codes, and the error every command returns.

use std::fmt;
use std::process::ExitCode;

use mqtt_source::SourceError;

/// The exit codes of `mqtt` (also in `mqtt --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done: everything asked for was done.
    Ok = 0,
    /// Failed while running: a message not published, lost in a bench or the
    /// quickstart, a file not written, the connection lost for good.
    Failed = 1,
    /// Usage: a bad flag, value or configuration file (clap's own code too).
    Usage = 2,
    /// Not connected: the broker unreachable, the TLS handshake failed, the
    /// CONNECT refused (bad credentials, ...), or no CONNACK in time.
    Connect = 3,
    /// `--timeout` passed before `--count` messages were consumed.
    Timeout = 4,
}

/// The text of `--help` about exit codes.
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failed while running (a message not published or lost, a write failed)
  2  usage: a bad flag, value or configuration file
  3  not connected: broker unreachable, TLS failed, CONNECT refused, no CONNACK
  4  --timeout passed before --count messages were consumed";

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Why a command stopped, and its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Exit,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: Exit, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        Self::new(Exit::Failed, message)
    }

    pub(crate) fn connect(message: impl fmt::Display) -> Self {
        Self::new(Exit::Connect, message)
    }
}

impl From<SourceError> for Failure {
    fn from(error: SourceError) -> Self {
        let code = match &error {
            SourceError::Config(_) => Exit::Usage,
            SourceError::Connect { .. } => Exit::Connect,
            _ => Exit::Failed,
        };
        let message = match &error {
            SourceError::Connect { .. } => format!("could not connect: {error}"),
            _ => error.to_string(),
        };
        Self { code, message }
    }
}

impl From<mqtt_source::ConfigError> for Failure {
    fn from(error: mqtt_source::ConfigError) -> Self {
        Self::usage(error)
    }
}
