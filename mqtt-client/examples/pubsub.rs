//! Publishes and receives at QoS 0, 1 and 2 through a broker, with manual acks,
//! printing connection events and each flow's outcome.
//!
//! ```sh
//! cargo run -p mqtt-client --example pubsub -- 127.0.0.1:1883 [--v311] [COUNT]
//! ```
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::{Client, ConnectionEvent, Options, ProtocolVersion, QoS, Tcp};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args
        .next()
        .ok_or("usage: pubsub HOST:PORT [--v311] [COUNT]")?;
    let mut version = ProtocolVersion::V5;
    let mut count = 3u32;
    for arg in args {
        if arg == "--v311" {
            version = ProtocolVersion::V311;
        } else {
            count = arg.parse()?;
        }
    }

    let options = Options::new("pubsub-example-sub")
        .with_version(version)
        .with_receive_maximum(16)
        .with_max_inflight(16)
        .with_request_queue(16);
    let (subscriber, mut incoming) = Client::connect(options, Tcp::new(&address)).await?;
    let mut events = subscriber.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let ConnectionEvent::Closed(_) = event {
                break;
            }
            println!("event: {event:?}");
        }
    });
    let server = subscriber.server();
    println!(
        "connected ({version:?}): receive maximum {}, maximum QoS {:?}, retain {}",
        server.receive_maximum(),
        server.maximum_qos(),
        server.retain_available()
    );
    let suback = subscriber
        .subscribe("pubsub-example/#", QoS::ExactlyOnce)
        .await?;
    println!("SUBACK: {:?}", suback.results);

    let options = Options::new("pubsub-example-pub").with_version(version);
    let (publisher, _) = Client::connect(options, Tcp::new(&address)).await?;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..count {
            let topic = format!("pubsub-example/qos{}", qos as u8);
            let handle = publisher
                .publish(&topic, qos, false, format!("message {i}"))
                .await?;
            let outcome = handle.await?;
            println!(
                "sent {topic} #{i}: packet id {:?}, {}",
                outcome.packet_id, outcome.reason
            );
            let mut message = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
                .await?
                .ok_or("client closed")?;
            println!(
                "received {} {:?} {:?}",
                message.topic(),
                message.qos(),
                String::from_utf8_lossy(message.payload())
            );
            message.ack()?;
        }
    }
    publisher.disconnect().await?;
    subscriber.disconnect().await?;
    println!("disconnected: {:?}", subscriber.closed_reason());
    Ok(())
}
