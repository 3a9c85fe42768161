//! Subscribes with manual acks: receives the messages of a topic filter,
//! "processes" each (prints it) and acknowledges it only once processed.
//!
//! ```sh
//! cargo run -p mqtt-client --example subscribe -- [mqtt://127.0.0.1:1883] [FILTER] [--count N]
//! # in another terminal:
//! mosquitto_pub -t mqtt-client/example/subscribe/a -q 1 -m hello
//! ```
//!
//! Without `--count` it runs until the client closes; with `--count N` it
//! disconnects and exits after N messages.
//!
//! Why ack by hand: the server may forget a QoS 1 message at its PUBACK and a
//! QoS 2 message at its PUBREC. Acking after processing means a message that was
//! received but not processed (a crash, a lost connection) is sent again by the
//! server on a resumed session, instead of being lost. QoS 0 messages have no ack.
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::transport::Servers;
use mqtt_client::{AckError, Client, Message, Options, QoS};

const USAGE: &str = "usage: subscribe [URL] [FILTER] [--count N]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = "mqtt://127.0.0.1:1883".to_owned();
    let mut filter = "mqtt-client/example/subscribe/#".to_owned();
    let mut count: Option<u64> = None;
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => {
                let n = args.next().ok_or(USAGE)?;
                count = Some(n.parse().map_err(|e| format!("--count {n:?}: {e}"))?);
            }
            flag if flag.starts_with("--") => return Err(USAGE.into()),
            _ => {
                match positional {
                    0 => url = arg,
                    1 => filter = arg,
                    _ => return Err(USAGE.into()),
                }
                positional += 1;
            }
        }
    }

    // Manual acks are the default (`Options::with_auto_ack(false)`): every QoS 1/2
    // message comes with an `AckToken`. The Receive Maximum is how many messages
    // may be received and not yet acked; the server waits beyond it.
    let options = Options::new(format!("subscribe-example-{}", std::process::id()))
        .with_receive_maximum(16)
        .with_connect_timeout(Duration::from_secs(10));
    let (client, mut incoming) = Client::connect(options, Servers::parse(&url)?).await?;

    // QoS 2 is the maximum granted: each message then comes at the QoS it was
    // published with. `check` turns a refused filter into an error.
    let suback = client
        .subscribe(filter.as_str(), QoS::ExactlyOnce)
        .await?
        .check()?;
    // (The tests wait for this line before they publish.)
    println!("subscribed to {filter}: granted {:?}", suback.results);

    let mut processed = 0u64;
    while count.is_none_or(|n| processed < n) {
        // `None`: the client closed (it gave up reconnecting, say): a failure here.
        let Some(mut message) = incoming.recv().await else {
            return Err(format!(
                "the client closed after {processed} messages: {:?}",
                client.closed_reason()
            )
            .into());
        };
        processed += 1;

        // Take the right to ack out of the message (`None` for QoS 0), so that the
        // message itself can be handed to the processing.
        let token = message.take_ack_token();
        process(processed, &message);

        // Only now may the server forget the message. (`message.ack()` does the
        // same without taking the token out first.) Acks reach the server in the
        // order the messages arrived, whatever the order they are given in here:
        // an ack waits for those of earlier messages, so every token must be
        // acked (or the connection end) for later acks to go out.
        if let Some(token) = token {
            let packet_id = token.packet_id();
            match token.ack() {
                Ok(()) => println!("acked #{processed} (packet id {packet_id})"),
                // The connection was lost since the message arrived: the server
                // sends it again on the resumed session, where it is acked then.
                Err(AckError::StaleConnection) => {
                    println!("#{processed} came on a lost connection: it comes again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    println!("done: {processed} messages processed");
    client.disconnect().await?;
    Ok(())
}

/// The application's work on a message: here, printing it.
fn process(n: u64, message: &Message) {
    println!(
        "message #{n} on {} (QoS {}{}): {:?}",
        message.topic(),
        message.qos() as u8,
        if message.retain() { ", retained" } else { "" },
        String::from_utf8_lossy(message.payload())
    );
}
