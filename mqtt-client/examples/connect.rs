//! Connects to a broker by URL over any transport, subscribes, publishes one QoS 1
//! message to itself and prints what came back: a check that a transport, its
//! certificates and its credentials work.
//!
//! ```sh
//! # TCP, TLS, WebSocket, WebSocket over TLS:
//! cargo run -p mqtt-client --features tls,websocket --example connect -- mqtt://127.0.0.1:1883
//! cargo run -p mqtt-client --features tls,websocket --example connect -- \
//!     mqtts://broker.example:8883 --ca ca.pem --cert device.crt --key device.key
//! cargo run -p mqtt-client --features tls,websocket --example connect -- ws://127.0.0.1:8080/mqtt
//! cargo run -p mqtt-client --features tls,websocket --example connect -- \
//!     wss://broker.example/mqtt --header "Authorization: Bearer $TOKEN"
//! # AWS IoT Core on port 443 (ALPN), through a corporate proxy from the environment:
//! cargo run -p mqtt-client --features tls,websocket --example connect -- \
//!     mqtts://xxxx-ats.iot.eu-west-1.amazonaws.com:443 --alpn x-amzn-mqtt-ca \
//!     --cert device.crt --key device.key --proxy-from-env
//! ```
//!
//! Flags: `--ca FILE` (trust this CA instead of the webpki roots), `--cert FILE
//! --key FILE` (mutual TLS), `--server-name NAME` (verify the certificate
//! against NAME), `--alpn PROTOCOL` (repeatable), `--insecure` (accept any
//! certificate: test brokers only), `--header "Name: value"` and `--subprotocol
//! mqttv3.1` (WebSocket), `--proxy http://[user:pass@]host:port` or
//! `--proxy-from-env`, `--v311`, `--topic T`. Several URLs are tried in turn.
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::transport::{Proxy, Servers, TlsOptions, WsOptions};
use mqtt_client::{Client, ConnectionEvent, Options, ProtocolVersion, QoS};

fn usage() -> String {
    "usage: connect URL [URL...] [--ca FILE] [--cert FILE --key FILE] [--server-name NAME] \
     [--alpn P] [--insecure] [--header 'Name: value'] [--subprotocol P] [--proxy URL | \
     --proxy-from-env] [--v311] [--topic T]"
        .to_owned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls = Vec::new();
    let mut tls = TlsOptions::new();
    let mut ws = WsOptions::new();
    let (mut cert, mut key) = (None, None);
    let mut alpn = Vec::new();
    let mut proxy = None;
    let mut proxy_from_env = false;
    let mut version = ProtocolVersion::V5;
    let mut topic = "mqtt-client/example/connect".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(usage);
        match arg.as_str() {
            "--ca" => tls = tls.with_ca_file(value()?),
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            "--server-name" => tls = tls.with_server_name(value()?),
            "--alpn" => alpn.push(value()?),
            "--insecure" => tls = tls.dangerous_accept_any_certificate(),
            "--header" => {
                let header = value()?;
                let (name, value) = header.split_once(':').ok_or_else(usage)?;
                ws = ws.with_header(name.trim(), value.trim());
            }
            "--subprotocol" => ws = ws.with_subprotocol(&value()?),
            "--proxy" => proxy = Some(Proxy::http(&value()?)?),
            "--proxy-from-env" => proxy_from_env = true,
            "--v311" => version = ProtocolVersion::V311,
            "--topic" => topic = value()?,
            url if !url.starts_with("--") => urls.push(url.to_owned()),
            _ => return Err(usage().into()),
        }
    }
    if urls.is_empty() {
        return Err(usage().into());
    }
    match (cert, key) {
        (Some(cert), Some(key)) => tls = tls.with_client_cert_files(cert, key),
        (None, None) => {}
        _ => return Err("--cert and --key go together".into()),
    }
    if !alpn.is_empty() {
        tls = tls.with_alpn(alpn);
    }
    let mut servers = Servers::parse_list(&urls)?.with_tls(tls).with_websocket(ws);
    if let Some(proxy) = proxy {
        servers = servers.with_proxy(proxy);
    } else if proxy_from_env {
        servers = servers.with_proxy_from_env();
    }

    let options = Options::new(format!("connect-example-{}", std::process::id()))
        .with_version(version)
        .with_connect_timeout(Duration::from_secs(10));
    let (client, mut incoming) = Client::connect(options, servers).await?;
    let mut events = client.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            println!("event: {event:?}");
            if let ConnectionEvent::Closed(_) = event {
                break;
            }
        }
    });
    let server = client.server();
    println!(
        "connected: receive maximum {}, maximum QoS {:?}, topic alias maximum {}",
        server.receive_maximum(),
        server.maximum_qos(),
        server.topic_alias_maximum()
    );

    client.subscribe(&topic, QoS::AtLeastOnce).await?;
    let outcome = client
        .publish(&topic, QoS::AtLeastOnce, false, "hello over any transport")
        .await?
        .await?;
    println!("published: {outcome:?}");
    let mut message = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
        .await?
        .ok_or("the client closed")?;
    println!(
        "received on {}: {:?}",
        message.topic(),
        String::from_utf8_lossy(message.payload())
    );
    message.ack()?;
    client.disconnect().await?;
    Ok(())
}
