//! The command line: every subcommand and flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mqtt_source::{ProtocolVersion, QoS};

use crate::exit::EXIT_CODES;

/// MQTT from the command line, for pipelines: consume into JSON lines with acks
/// after the write, publish and replay captures, bench a broker, check what it
/// allows, or run the quickstart pipeline.
#[derive(Debug, Parser)]
#[command(name = "mqtt", version, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    /// More events on stderr (-v info, -vv debug, -vvv trace); RUST_LOG wins when set.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Subscribe and write each message as a JSON line, acked once written.
    ///
    /// With --output, a message is acknowledged to the broker only after its line
    /// is written and flushed to disk (fsync): at least once into the file. With
    /// --client-id the session persists, so a consumer killed and started again
    /// gets every message not yet acknowledged (a partial last line left by a kill
    /// is cut off: its message was never acknowledged). SIGINT/SIGTERM drain:
    /// messages written are acknowledged, the rest are left to the broker, and a
    /// summary goes to stderr.
    #[command(after_help = EXIT_CODES)]
    Consume(ConsumeArgs),
    /// Publish one message, or one per line of stdin or a file.
    ///
    /// Lines are raw payloads, or with --format json the lines `consume` writes
    /// (topic, QoS, retain, properties and payload each), so a capture can be
    /// replayed. Waits for every completion (PUBACK, PUBCOMP) and exits non-zero
    /// naming each message that failed.
    #[command(after_help = EXIT_CODES)]
    Publish(PublishArgs),
    /// Publish and consume N messages through a broker; report throughput,
    /// latency percentiles and lost/duplicate counts.
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
    /// Connect, print what the broker allows (its CONNACK) and what the client
    /// does about it, and disconnect.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// The whole pipeline in one command: a simulated sensor fleet published with
    /// the sink, consumed with the source into a durable file with acks after
    /// fsync, through an embedded broker (or --broker), checked for loss.
    #[command(after_help = EXIT_CODES)]
    Quickstart(QuickstartArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Where and how to connect: the same settings as a source configuration file.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnArgs {
    /// Broker URL: mqtt://, mqtts://, ws://, wss:// (repeat to fall back in turn)
    /// [default: mqtt://127.0.0.1:1883]
    #[arg(short = 'b', long = "broker", value_name = "URL", env = "MQTT_BROKER")]
    pub(crate) brokers: Vec<String>,
    /// A source configuration file (TOML, YAML or JSON, as mqtt-source reads
    /// it, with ${ENV}); flags given win over it.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Client identifier (with `consume`, also makes the session persistent).
    #[arg(short = 'i', long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// User name.
    #[arg(short = 'u', long, env = "MQTT_USERNAME")]
    pub(crate) username: Option<String>,
    /// Password. Prefer MQTT_PASSWORD or --password-file: a flag shows in `ps`.
    #[arg(long, env = "MQTT_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Protocol version.
    #[arg(long = "mqtt-version", value_enum, value_name = "VERSION")]
    pub(crate) mqtt_version: Option<VersionArg>,
    /// Keep-alive in seconds (0: off).
    #[arg(short = 'k', long, value_name = "SECS")]
    pub(crate) keep_alive: Option<u16>,
    /// Time for TCP, TLS, WebSocket and CONNACK together (10s, 500ms, 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) connect_timeout: Option<Duration>,
    /// CA certificates (PEM) to trust instead of the webpki roots.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key_file", help_heading = "TLS")]
    pub(crate) cert_file: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert_file",
        help_heading = "TLS"
    )]
    pub(crate) key_file: Option<PathBuf>,
    /// The name the server certificate must carry, when not the URL's host.
    #[arg(long, value_name = "NAME", help_heading = "TLS")]
    pub(crate) server_name: Option<String>,
    /// Accept any server certificate: for tests only (a warning says so).
    #[arg(long, help_heading = "TLS")]
    pub(crate) insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum VersionArg {
    /// MQTT 5.0
    #[value(name = "5", alias = "5.0")]
    V5,
    /// MQTT 3.1.1
    #[value(name = "3.1.1", alias = "311", alias = "4")]
    V311,
}

impl From<VersionArg> for ProtocolVersion {
    fn from(v: VersionArg) -> Self {
        match v {
            VersionArg::V5 => ProtocolVersion::V5,
            VersionArg::V311 => ProtocolVersion::V311,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic filter to subscribe to (repeat for more).
    #[arg(short = 't', long = "topic", value_name = "FILTER")]
    pub(crate) topics: Vec<String>,
    /// Maximum QoS of the subscriptions.
    #[arg(short = 'q', long, value_name = "0|1|2", value_parser = parse_qos)]
    pub(crate) qos: Option<QoS>,
    /// Consume as a shared group ($share/GROUP/...): messages spread over members.
    #[arg(short = 'g', long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// Connections of this process in the group.
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<u16>,
    /// Messages handed over and not yet acknowledged, per connection (the
    /// Receive Maximum sent to the broker).
    #[arg(long, value_name = "N")]
    pub(crate) max_in_flight: Option<u16>,
    /// Start a clean session (by default a session with --client-id persists).
    #[arg(long)]
    pub(crate) clean: bool,
    /// Seconds the broker keeps the session after a disconnect (MQTT 5).
    #[arg(long, value_name = "SECS")]
    pub(crate) session_expiry: Option<u32>,
    /// Keep the client's session state in this directory (QoS 2 exactly once
    /// across restarts of this process).
    #[arg(long, value_name = "DIR")]
    pub(crate) session_store: Option<PathBuf>,
    /// Append the JSON lines to this file, acking each message once its line is
    /// on disk (fsync), instead of writing them to stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Lines written per fsync at most (the acks of a batch follow its fsync).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub(crate) batch: usize,
    /// How payloads are written: utf8 when they are UTF-8 and base64 otherwise
    /// (auto), or always base64.
    #[arg(long, value_enum, default_value_t = PayloadMode::Auto)]
    pub(crate) payload: PayloadMode,
    /// Stop after this many messages (then drain and exit 0).
    #[arg(short = 'n', long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Stop after this long (exit 4 if --count was not reached).
    #[arg(short = 'W', long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Serve the source's Prometheus metrics at http://ADDR/metrics (and
    /// /health); port 0 picks one, printed on stderr.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PayloadMode {
    /// UTF-8 text when valid, base64 otherwise.
    Auto,
    /// Always base64.
    Base64,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Topic name (with --format json: overrides each line's topic).
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub(crate) topic: Option<String>,
    /// One message with this payload.
    #[arg(short = 'm', long, value_name = "TEXT", conflicts_with_all = ["stdin", "file"])]
    pub(crate) message: Option<String>,
    /// One message per line of stdin.
    #[arg(short = 's', long, conflicts_with = "file")]
    pub(crate) stdin: bool,
    /// One message per line of this file.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// What a line is: the payload itself (raw), or a JSON line as `consume`
    /// writes it (json).
    #[arg(long, value_enum, default_value_t = LineFormat::Raw)]
    pub(crate) format: LineFormat,
    /// QoS (with --format json: overrides each line's).
    #[arg(short = 'q', long, value_name = "0|1|2", value_parser = parse_qos)]
    pub(crate) qos: Option<QoS>,
    /// Retain the message(s).
    #[arg(short = 'r', long)]
    pub(crate) retain: bool,
    /// Content Type property (MQTT 5).
    #[arg(long, value_name = "MIME", help_heading = "MQTT 5 properties")]
    pub(crate) content_type: Option<String>,
    /// User property NAME=VALUE (repeat for more).
    #[arg(long = "user-property", value_name = "NAME=VALUE", value_parser = parse_pair, help_heading = "MQTT 5 properties")]
    pub(crate) user_properties: Vec<(String, String)>,
    /// Message Expiry Interval, in seconds.
    #[arg(long, value_name = "SECS", help_heading = "MQTT 5 properties")]
    pub(crate) message_expiry: Option<u32>,
    /// Response Topic.
    #[arg(long, value_name = "TOPIC", help_heading = "MQTT 5 properties")]
    pub(crate) response_topic: Option<String>,
    /// Correlation Data (UTF-8 text).
    #[arg(long, value_name = "TEXT", help_heading = "MQTT 5 properties")]
    pub(crate) correlation_data: Option<String>,
    /// Payload Format Indicator: the payload is UTF-8.
    #[arg(long, help_heading = "MQTT 5 properties")]
    pub(crate) utf8: bool,
    /// Messages in flight at once (the broker's Receive Maximum caps it).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) max_in_flight: usize,
    /// Attempts per message after a failure that may pass (connection or
    /// session lost, quota exceeded).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) retries: u32,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LineFormat {
    /// Each line is a payload.
    Raw,
    /// Each line is a JSON line as `consume` writes it.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Messages to publish (in all).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100_000)]
    pub(crate) count: u64,
    /// Payload size in bytes (at least 20: a header with the sequence number
    /// and the send time).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64)]
    pub(crate) size: usize,
    /// QoS of the publishes and subscriptions.
    #[arg(short = 'q', long, value_name = "0|1|2", value_parser = parse_qos, default_value = "1")]
    pub(crate) qos: QoS,
    /// Publishing connections.
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1)]
    pub(crate) publishers: u32,
    /// Consuming connections (a shared group when more than one).
    #[arg(short = 'C', long, value_name = "N", default_value_t = 1)]
    pub(crate) consumers: u16,
    /// Messages in flight per publisher and per consumer.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) max_in_flight: u16,
    /// Messages per second over all publishers (0: as fast as the flow allows).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) rate: u64,
    /// Topic prefix (a fresh one per run by default).
    #[arg(short = 't', long, value_name = "PREFIX")]
    pub(crate) topic: Option<String>,
    /// Give up waiting for the messages after this long (they count as lost).
    #[arg(short = 'W', long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub(crate) timeout: Duration,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Draw latency over time and its distribution into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

#[derive(Debug, Args)]
pub(crate) struct QuickstartArgs {
    /// Run against this broker instead of the embedded one.
    #[arg(short = 'b', long = "broker", value_name = "URL")]
    pub(crate) broker: Option<String>,
    /// Simulated devices.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub(crate) devices: u32,
    /// Readings in all, spread over the devices: every tenth reading of a
    /// device is an alert, sent at QoS 2; the others are telemetry at QoS 1.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 50_000)]
    pub(crate) messages: u64,
    /// Publishing connections.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) publishers: u32,
    /// Readings per second of the whole fleet (0: as fast as the flow allows,
    /// which measures the backlog rather than the pipeline's latency).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub(crate) rate: u64,
    /// Consuming connections, in a shared group.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) consumers: u16,
    /// The durable file the consumer writes, replaced if it exists (default: a
    /// new file under the system's temporary directory, printed).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Give up after this long (what is missing then counts as lost).
    #[arg(short = 'W', long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub(crate) timeout: Duration,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `0`, `1`, `2`.
pub(crate) fn parse_qos(s: &str) -> Result<QoS, String> {
    match s {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        _ => Err(format!("`{s}` is not a QoS: 0, 1 or 2")),
    }
}

/// `NAME=VALUE`.
fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// `250ms`, `10s`, `1.5s`, `2m`, `1h`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (10s, 500ms, 2m, 1h)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("`{other}` is not a unit of time: ms, s, m, h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{s}` is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn qos_and_pairs() {
        assert_eq!(parse_qos("2"), Ok(QoS::ExactlyOnce));
        assert!(parse_qos("3").is_err());
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_pair("ab").is_err());
    }
}
