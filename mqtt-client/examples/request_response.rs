//! MQTT 5 request/response: a responder answers requests on a service topic;
//! a requester sends requests with `Client::request` and prints the answers.
//!
//! ```sh
//! cargo run -p mqtt-client --example request_response -- [mqtt://127.0.0.1:1883] [COUNT]
//! ```
//!
//! How it works (MQTT 5, 4.10): a request is a PUBLISH carrying a Response Topic
//! (where to answer) and Correlation Data (which request it is). The responder
//! publishes its answer to that Response Topic with the same Correlation Data.
//! `Client::request` does the requester's part: it subscribes once to a response
//! topic of its own (`responses/{client id}` unless `Options::with_response_topic`
//! or the server's Response Information says otherwise), sets both properties,
//! and returns the message that comes back with its Correlation Data. Responses
//! are taken by the client: they never show up in its `Incoming`.
//!
//! The responder here is a task with a client of its own in the same program;
//! it would usually be another program.
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::time::Duration;

use mqtt_client::codec::{Publish, PublishProperties};
use mqtt_client::transport::Servers;
use mqtt_client::{Client, Incoming, Options, QoS};

const USAGE: &str = "usage: request_response [URL] [COUNT]";

/// The topic the responder serves.
const SERVICE: &str = "mqtt-client/example/service/uppercase";

/// An error that can leave the responder task.
type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut url = "mqtt://127.0.0.1:1883".to_owned();
    let mut count = 3u32;
    for (i, arg) in std::env::args().skip(1).enumerate() {
        match i {
            0 => url = arg,
            1 => count = arg.parse().map_err(|e| format!("COUNT {arg:?}: {e}"))?,
            _ => return Err(USAGE.into()),
        }
    }
    let servers = Servers::parse(&url)?;
    let pid = std::process::id();

    // The responder: subscribed before the first request is sent, so that none
    // is published to nobody.
    let (responder, requests) =
        Client::connect(Options::new(format!("responder-{pid}")), servers.clone()).await?;
    responder
        .subscribe(SERVICE, QoS::AtLeastOnce)
        .await?
        .check()?;
    println!("responder: serving {SERVICE}");
    let serving = tokio::spawn(respond(responder, requests, count));

    // The requester: request/response needs MQTT 5 (the default version).
    let (requester, _incoming) =
        Client::connect(Options::new(format!("requester-{pid}")), servers).await?;
    for i in 0..count {
        let question = format!("hello {i}");
        // Publishes at QoS 1 with a Response Topic and a Correlation Data of its
        // own, and waits at most 5 s for the matching response.
        let answer = requester
            .request(SERVICE, question.clone(), Duration::from_secs(5))
            .await?;
        println!(
            "requester: {question:?} -> {:?} (on {})",
            String::from_utf8_lossy(answer.payload()),
            answer.topic()
        );
        // (The response was acked by the client on arrival.)
    }
    requester.disconnect().await?;

    // The responder stops after `count` requests.
    let answered = serving.await??;
    println!("responder: answered {answered} requests");
    Ok(())
}

/// Answers `count` requests, each with its payload in upper case, on the
/// request's Response Topic with its Correlation Data, then disconnects.
async fn respond(client: Client, mut requests: Incoming, count: u32) -> Result<u32, Error> {
    let mut answered = 0;
    while answered < count {
        let mut request = requests.recv().await.ok_or("the responder closed")?;
        let properties = request.properties();
        let Some(response_topic) = properties.response_topic.clone() else {
            // Not a request: nowhere to answer. Ack it, or later acks would wait.
            println!("responder: a message without Response Topic, ignored");
            request.ack()?;
            continue;
        };
        let correlation_data = properties.correlation_data.clone();
        println!(
            "responder: request {:?}, answering on {}",
            String::from_utf8_lossy(request.payload()),
            response_topic.as_str()
        );

        let answer = String::from_utf8_lossy(request.payload()).to_uppercase();
        let response = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: response_topic,
            // Given by the client when it sends the message.
            packet_id: None,
            properties: Some(Box::new(PublishProperties {
                // The requester matches the answer to its request by this.
                correlation_data,
                ..PublishProperties::default()
            })),
            payload: answer.into(),
        };
        // Wait for the PUBACK of the answer before acking the request: a
        // responder that fails in between gets the request again.
        client.publish_with(response).await?.await?;
        request.ack()?;
        answered += 1;
    }
    client.disconnect().await?;
    Ok(answered)
}
