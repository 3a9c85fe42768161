//! The embedded broker: rumqttd in this process, on a free loopback port. For
//! trying things out (the quickstart); a production pipeline runs against its
//! own broker (`--broker`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::exit::Failure;

/// The broker's name and version, as the reports print it.
pub(crate) const NAME: &str = "rumqttd 0.20 (embedded)";

/// A running embedded broker. It stops with the process.
#[derive(Debug)]
pub(crate) struct Embedded {
    pub(crate) addr: SocketAddr,
}

impl Embedded {
    /// The URL clients connect to.
    pub(crate) fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// Starts the broker with an MQTT 5 listener on 127.0.0.1 and waits until it
/// accepts connections.
pub(crate) fn start() -> Result<Embedded, Failure> {
    // A free port: bound by the OS, released, and given to the broker.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Failure::failed(format!("embedded broker: no free port: {e}")))?;
    let config = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1024
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v5.1]
name = "v5-1"
listen = "{addr}"
next_connection_delay_ms = 0
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 1000
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&config)
        .map_err(|e| Failure::failed(format!("embedded broker configuration: {e}")))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "embedded broker stopped");
            }
        })
        .map_err(|e| Failure::failed(format!("embedded broker: {e}")))?;
    // Up when it accepts a connection (it binds on its own threads).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(Embedded { addr });
        }
        if Instant::now() > deadline {
            return Err(Failure::failed(format!(
                "embedded broker: not listening on {addr} after 10 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
