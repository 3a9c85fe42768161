//! What the commands share: the configuration from flags and file, clients
//! built from it, and the output of numbers.

use std::time::Duration;

use mqtt_source::client::{Backoff, Client, Incoming, Options};
use mqtt_source::{SourceConfig, TlsConfig};

use crate::cli::ConnArgs;
use crate::exit::Failure;

/// The broker when neither a flag nor a file names one.
pub(crate) const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";

/// The configuration: the file's (if any), then each flag given over it.
pub(crate) fn source_config(conn: &ConnArgs) -> Result<SourceConfig, Failure> {
    let mut config = match &conn.config {
        Some(path) => SourceConfig::from_file(path)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        None => SourceConfig::new([DEFAULT_BROKER]),
    };
    if !conn.brokers.is_empty() {
        config = config.with_brokers(conn.brokers.iter().cloned());
    }
    if let Some(id) = &conn.client_id {
        config = config.with_client_id(id.clone());
    }
    if let Some(version) = conn.mqtt_version {
        config = config.with_version(version.into());
    }
    if let Some(keep_alive) = conn.keep_alive {
        config = config.with_keep_alive(keep_alive);
    }
    if let Some(timeout) = conn.connect_timeout {
        config = config.with_connect_timeout(timeout);
    }
    let password = match &conn.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("--password-file {}: {e}", path.display())))?;
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        None => conn.password.clone(),
    };
    match (&conn.username, password) {
        (Some(user), Some(password)) => config = config.with_credentials(user.clone(), password),
        (Some(user), None) => config = config.with_username(user.clone()),
        (None, Some(_)) => {
            return Err(Failure::usage(
                "a password (--password, --password-file or MQTT_PASSWORD) needs --username",
            ))
        }
        (None, None) => {}
    }
    let tls_flags = conn.ca_file.is_some()
        || conn.cert_file.is_some()
        || conn.server_name.is_some()
        || conn.insecure;
    if tls_flags {
        // The flags replace the file's `tls` table as a whole.
        config = config.with_tls(TlsConfig {
            ca_cert: conn.ca_file.clone(),
            client_cert: conn.cert_file.clone(),
            client_key: conn.key_file.clone(),
            server_name: conn.server_name.clone(),
            dangerous_accept_any_certificate: conn.insecure,
        });
    }
    Ok(config)
}

/// A client of the configuration's brokers that does not keep a session
/// (publishers, probes), with `client_id` (empty: the broker assigns one).
pub(crate) async fn connect_client(
    config: &SourceConfig,
    client_id: String,
    reconnect: bool,
) -> Result<(Client, Incoming), Failure> {
    let options: Options = config
        .client_options(client_id)?
        .with_clean_start(true)
        .with_session_expiry(0)
        .with_reconnect(Backoff::default().with_enabled(reconnect));
    let servers = config.servers()?;
    Client::connect(options, servers).await.map_err(|e| {
        Failure::connect(format!(
            "could not connect to {}: {e}",
            config.brokers_redacted().join(", ")
        ))
    })
}

/// The source of `config`, its connect errors naming the brokers.
pub(crate) async fn connect_source(config: SourceConfig) -> Result<mqtt_source::Source, Failure> {
    let brokers = config.brokers_redacted().join(", ");
    mqtt_source::Source::connect(config).await.map_err(|error| {
        let connect = matches!(error, mqtt_source::SourceError::Connect { .. });
        let mut failure = Failure::from(error);
        if connect {
            failure.message = failure.message.replacen(
                "could not connect:",
                &format!("could not connect to {brokers}:"),
                1,
            );
        }
        failure
    })
}

/// Publishes `items` through a sink on `client` (`window` in flight, `map`
/// making each message), then disconnects; the task gives (published, failed).
pub(crate) fn spawn_publisher<T, F, S>(
    client: Client,
    window: usize,
    map: F,
    items: S,
) -> tokio::task::JoinHandle<(u64, u64)>
where
    T: Send + 'static,
    F: Fn(&T) -> mqtt_source::Outgoing + Send + Sync + 'static,
    S: futures_util::Stream<Item = T> + Send + 'static,
{
    tokio::spawn(async move {
        let sink = mqtt_source::Sink::new(
            client.clone(),
            mqtt_source::SinkOptions::default().with_max_in_flight(window),
            map,
        );
        let report = sink.send_all(items).await;
        let _ = client.disconnect().await;
        (report.published, report.failed.len() as u64)
    })
}

/// Waits for every publisher; (published, failed) over them all.
pub(crate) async fn join_publishers(
    publishers: Vec<tokio::task::JoinHandle<(u64, u64)>>,
) -> Result<(u64, u64), Failure> {
    let (mut published, mut failed) = (0, 0);
    for publisher in publishers {
        let (ok, bad) = publisher
            .await
            .map_err(|e| Failure::failed(format!("a publisher stopped: {e}")))?;
        published += ok;
        failed += bad;
    }
    Ok((published, failed))
}

/// `12,345`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in messages per second.
pub(crate) fn rate(n: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Microseconds as `850 µs`, `1.25 ms` or `2.50 s`.
pub(crate) fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

/// A QoS as its number.
pub(crate) fn qos_number(qos: mqtt_source::QoS) -> u8 {
    match qos {
        mqtt_source::QoS::AtMostOnce => 0,
        mqtt_source::QoS::AtLeastOnce => 1,
        mqtt_source::QoS::ExactlyOnce => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1250), "1.25 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
    }
}
