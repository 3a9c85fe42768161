//! Publishes with completion: COUNT messages at QoS 0, then at QoS 1, then at
//! QoS 2, awaiting each message's `PublishHandle` and printing its outcome, to
//! show what "done" means at each QoS.
//!
//! ```sh
//! cargo run -p mqtt-client --example publish -- [mqtt://127.0.0.1:1883] [COUNT] [--topic T]
//! ```
//!
//! `Client::publish` returns once the message is queued for sending; the
//! `PublishHandle` it returns completes at the end of the message's flow:
//!
//! - QoS 0: once the PUBLISH is written to the connection (nothing comes back;
//!   no packet identifier);
//! - QoS 1: at the server's PUBACK;
//! - QoS 2: at the server's PUBCOMP, after PUBREC and PUBREL.
//!
//! The outcome holds the packet identifier and the reason code of that final
//! ack (MQTT 5: `No matching subscribers (0x10)` when nobody is subscribed, still
//! a success). A failure reason code (0x80 and above) is an error of the handle.
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::transport::Servers;
use mqtt_client::{Client, Options, QoS};

const USAGE: &str = "usage: publish [URL] [COUNT] [--topic T]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "mqtt://127.0.0.1:1883".to_owned();
    let mut count = 5u32;
    let mut topic = "mqtt-client/example/publish".to_owned();
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--topic" => topic = args.next().ok_or(USAGE)?,
            flag if flag.starts_with("--") => return Err(USAGE.into()),
            _ => {
                match positional {
                    0 => url = arg,
                    1 => count = arg.parse().map_err(|e| format!("COUNT {arg:?}: {e}"))?,
                    _ => return Err(USAGE.into()),
                }
                positional += 1;
            }
        }
    }

    let options = Options::new(format!("publish-example-{}", std::process::id()))
        .with_connect_timeout(Duration::from_secs(10));
    // `Client::connect` returns once the server accepted the connection (CONNACK),
    // or with the error that prevented it.
    let (client, _incoming) = Client::connect(options, Servers::parse(&url)?).await?;
    println!("connected to {url}");

    for (qos, done_at) in [
        (QoS::AtMostOnce, "written"),
        (QoS::AtLeastOnce, "PUBACK"),
        (QoS::ExactlyOnce, "PUBCOMP"),
    ] {
        for i in 0..count {
            let payload = format!("message {i} at QoS {}", qos as u8);
            // Queued for sending (this waits while the in-flight window is full) ...
            let handle = client.publish(&topic, qos, false, payload).await?;
            // ... and done at the end of its flow: awaiting the handle is how a
            // publisher knows the server has the message (QoS 1 and 2).
            let outcome = handle.await?;
            let packet_id = outcome
                .packet_id
                .map_or_else(|| "none".to_owned(), |id| id.to_string());
            println!(
                "QoS {} #{i}: done at {done_at}, packet id {packet_id}, reason {}",
                qos as u8, outcome.reason
            );
        }
    }
    println!("published {count} messages at each of QoS 0, 1 and 2");

    // A normal DISCONNECT; it waits until the connection is closed.
    client.disconnect().await?;
    Ok(())
}
