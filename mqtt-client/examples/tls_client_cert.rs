//! Mutual TLS: connects to an `mqtts://` broker with a client certificate,
//! verifying the broker's certificate against a CA of your own, then
//! subscribes, publishes one QoS 1 message to itself and receives it.
//!
//! ```sh
//! cargo run -p mqtt-client --features tls --example tls_client_cert -- \
//!     mqtts://127.0.0.1:8883 --ca ca.pem --cert client.crt --key client.key
//! ```
//!
//! The URL defaults to `mqtts://127.0.0.1:8883`. `--ca FILE` is the CA (PEM) the
//! broker's certificate must chain to; without it, the webpki (Mozilla) roots
//! are trusted. `--cert FILE --key FILE` are the client's certificate chain and
//! its unencrypted private key (PEM: PKCS#8, SEC1 or PKCS#1). `--server-name
//! NAME` verifies the broker's certificate against NAME instead of the URL's host.
//! The mosquitto side of it:
//!
//! ```text
//! listener 8883
//! certfile server.crt
//! keyfile server.key
//! cafile ca.pem
//! require_certificate true
//! ```
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::transport::{Servers, TlsOptions};
use mqtt_client::{Client, Options, QoS};

const USAGE: &str = "usage: tls_client_cert [URL] [--ca FILE] --cert FILE --key FILE \
                     [--server-name NAME] [--topic T]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "mqtts://127.0.0.1:8883".to_owned();
    let mut tls = TlsOptions::new();
    let (mut cert, mut key) = (None, None);
    let mut topic = "mqtt-client/example/tls".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(USAGE);
        match arg.as_str() {
            // Trust this CA (in place of the webpki roots).
            "--ca" => tls = tls.with_ca_file(value()?),
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            "--server-name" => tls = tls.with_server_name(value()?),
            "--topic" => topic = value()?,
            flag if flag.starts_with("--") => return Err(USAGE.into()),
            _ => url = arg,
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(format!("--cert and --key are required\n{USAGE}").into());
    };
    // The files are read when the client first connects: a missing file, a bad
    // key or a key that does not match the certificate fails the connection
    // with an error naming the file.
    tls = tls.with_client_cert_files(cert, key);

    // The TLS options serve every `mqtts://` (and `wss://`) URL of the list.
    let servers = Servers::parse(&url)?.with_tls(tls);
    let options = Options::new(format!("tls-example-{}", std::process::id()))
        .with_connect_timeout(Duration::from_secs(10));
    // TLS errors (unknown CA, name mismatch, certificate refused by the broker)
    // are fatal: `connect` returns them instead of retrying.
    let (client, mut incoming) = Client::connect(options, servers).await?;
    println!("connected over TLS to {url}");

    client
        .subscribe(topic.as_str(), QoS::AtLeastOnce)
        .await?
        .check()?;
    println!("subscribed to {topic}");

    let payload = "hello over mutual TLS";
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
    message.ack()?;
    if received != payload {
        return Err(format!("expected {payload:?}, received {received:?}").into());
    }

    client.disconnect().await?;
    println!("disconnected");
    Ok(())
}
