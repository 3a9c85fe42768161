//! MQTT over WebSocket: connects to a `ws://host:port/path` URL, subscribes,
//! publishes one QoS 1 message to itself, receives it and acks it.
//!
//! ```sh
//! cargo run -p mqtt-client --features websocket --example websocket -- ws://127.0.0.1:8080/mqtt
//! ```
//!
//! The URL defaults to `ws://127.0.0.1:8080/mqtt` (the path defaults to `/mqtt`
//! when the URL has none). `--header "Name: value"` adds an HTTP header to the
//! upgrade request (a bearer token, say). `wss://` works the same with the
//! feature `tls` too (see `examples/connect.rs`). The mosquitto side of it:
//!
//! ```text
//! listener 8080
//! protocol websockets
//! ```
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::transport::{Servers, WsOptions};
use mqtt_client::{Client, Options, QoS};

const USAGE: &str = "usage: websocket [URL] [--header 'Name: value'] [--topic T]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "ws://127.0.0.1:8080/mqtt".to_owned();
    // Asks for the `mqtt` subprotocol, as MQTT over WebSocket requires.
    let mut ws = WsOptions::new();
    let mut topic = "mqtt-client/example/websocket".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(USAGE);
        match arg.as_str() {
            "--header" => {
                let header = value()?;
                let (name, value) = header.split_once(':').ok_or(USAGE)?;
                ws = ws.with_header(name.trim(), value.trim());
            }
            "--topic" => topic = value()?,
            flag if flag.starts_with("--") => return Err(USAGE.into()),
            _ => url = arg,
        }
    }

    // The scheme picks the transport: `ws://` is WebSocket over TCP; MQTT
    // packets travel in binary WebSocket messages.
    let servers = Servers::parse(&url)?.with_websocket(ws);
    let options = Options::new(format!("websocket-example-{}", std::process::id()))
        .with_connect_timeout(Duration::from_secs(10));
    let (client, mut incoming) = Client::connect(options, servers).await?;
    println!("connected over WebSocket to {url}");

    // From here on, nothing differs from MQTT over TCP.
    client
        .subscribe(topic.as_str(), QoS::AtLeastOnce)
        .await?
        .check()?;
    println!("subscribed to {topic}");

    let payload = "hello over WebSocket";
    let outcome = client
        .publish(&topic, QoS::AtLeastOnce, false, payload)
        .await?
        .await?;
    println!(
        "published: packet id {}, reason {}",
        outcome
            .packet_id
            .map_or_else(|| "none".to_owned(), |id| id.to_string()),
        outcome.reason
    );

    let mut message = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
        .await
        .map_err(|_| "no message within 10 s")?
        .ok_or("the client closed")?;
    let received = String::from_utf8_lossy(message.payload()).into_owned();
    println!("received on {}: {received:?}", message.topic());
    // PUBACK to the broker: it may forget the message now.
    message.ack()?;
    if received != payload {
        return Err(format!("expected {payload:?}, received {received:?}").into());
    }

    client.disconnect().await?;
    println!("disconnected");
    Ok(())
}
