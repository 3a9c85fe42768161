//! Publishing with the sink: `--count` items mapped to QoS 1 messages, at most
//! 100 in flight, `send_all` returning once every item's flow is complete
//! (PUBACK) or the item was handed back with its error.
//!
//! ```sh
//! cargo run -p mqtt-source --example sink -- mqtt://127.0.0.1:1883 \
//!     [--count 10] [--topic examples/sink]
//! ```
//!
//! Watch with `mosquitto_sub -v -q 1 -t 'examples/sink'`.
#![allow(clippy::print_stdout, reason = "an example prints")]

use mqtt_source::client::Client;
use mqtt_source::{Outgoing, QoS, Sink, SinkOptions, SourceConfig};

const USAGE: &str =
    "usage: sink [URL] [--count N] [--topic TOPIC] (URL default mqtt://127.0.0.1:1883)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = String::from("mqtt://127.0.0.1:1883");
    let mut count: u32 = 10;
    let mut topic = String::from("examples/sink");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => count = args.next().ok_or(USAGE)?.parse()?,
            "--topic" => topic = args.next().ok_or(USAGE)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}\n{USAGE}").into())
            }
            other => other.clone_into(&mut url),
        }
    }

    // The same configuration as a source's (brokers, TLS, credentials, MQTT
    // version, reconnect backoff), made into one client. Its session is
    // persistent: QoS 1 publishes not acknowledged when a connection drops are
    // sent again on the next one, so a cut delays items rather than failing them.
    let config = SourceConfig::new([url]);
    let options = config.client_options("sink-example".to_owned())?;
    let (client, _incoming) = Client::connect(options, config.servers()?).await?;
    println!("connected");

    let sink = Sink::new(client.clone(), SinkOptions::default(), |item: &u32| {
        Outgoing::new(topic.as_str(), format!("item {item}")).with_qos(QoS::AtLeastOnce)
    });
    let report = sink.send_all(futures_util::stream::iter(0..count)).await;
    println!(
        "published: {}, failed: {}",
        report.published,
        report.failed.len()
    );
    for failure in &report.failed {
        println!("failed: item {}: {failure}", failure.item);
    }
    client.disconnect().await?;
    if !report.failed.is_empty() {
        return Err(format!("{} of {count} items not published", report.failed.len()).into());
    }
    Ok(())
}
