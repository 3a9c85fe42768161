//! A shared-group consumer: several connections in the group `workers`, the
//! broker spreading the messages over them (`$share/workers/{topic}`). Each
//! message is acknowledged only once its handler has finished; the example
//! prints which connection got each message, stops after `--count` messages,
//! and prints the count per connection and the final metrics as JSON.
//!
//! ```sh
//! cargo run -p mqtt-source --example shared_group -- mqtt://127.0.0.1:1883 \
//!     [--connections 3] [--count 10] [--topic examples/shared]
//! ```
//!
//! Then publish to the topic, e.g.
//! `for i in $(seq 10); do mosquitto_pub -q 1 -t examples/shared -m "job $i"; done`.
//! Run the same command on another machine (with another `Instance`, see the
//! crate README) and it joins the same group.
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mqtt_source::{QoS, Source, SourceConfig};

const USAGE: &str =
    "usage: shared_group [URL] [--connections N] [--count N] [--topic TOPIC] (URL default mqtt://127.0.0.1:1883)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = String::from("mqtt://127.0.0.1:1883");
    let mut connections: u16 = 3;
    let mut count: u64 = 10;
    let mut topic = String::from("examples/shared");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" => connections = args.next().ok_or(USAGE)?.parse()?,
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
    if count == 0 {
        return Err("--count must be at least 1".into());
    }

    // `concurrency` connections with the client ids `shared-group-example_{i}`,
    // each subscribed to `$share/workers/{topic}`. The client id is required:
    // the sessions are persistent (clean start off), so a consumer that stops
    // before acking finds its unacked messages again when it comes back.
    let config = SourceConfig::new([url])
        .with_client_id("shared-group-example")
        .with_shared_group("workers")
        .with_concurrency(connections)
        .with_topic(topic.as_str(), QoS::AtLeastOnce);
    let source = Source::connect(config).await?;
    // Every connection has its SUBACK: from now on the group gets the messages.
    println!("subscribed: $share/workers/{topic} on {connections} connections");

    let per_connection: Arc<Vec<AtomicU64>> =
        Arc::new((0..connections).map(|_| AtomicU64::new(0)).collect());
    let seen = Arc::new(AtomicU64::new(0));
    let handle = source.handle();
    // Up to 4 handlers at once. A handler returning `Ok` acks its message (PUBACK
    // goes out only then, in order of arrival on its connection); `Err` nacks it,
    // and the source hands it over again after a delay.
    let totals = {
        let per_connection = Arc::clone(&per_connection);
        source
            .run(4, move |message| {
                let per_connection = Arc::clone(&per_connection);
                let seen = Arc::clone(&seen);
                let handle = handle.clone();
                async move {
                    // ... the processing would go here ...
                    let index = message.connection_index();
                    println!(
                        "connection {index} ({}): {} {:?}",
                        message.client_id(),
                        message.topic(),
                        String::from_utf8_lossy(message.payload())
                    );
                    let slot = usize::try_from(index)
                        .ok()
                        .and_then(|i| per_connection.get(i))
                        .ok_or("a connection index out of range")?;
                    slot.fetch_add(1, Ordering::Relaxed);
                    if seen.fetch_add(1, Ordering::Relaxed) + 1 == count {
                        // Stops taking messages; `run` lets the running handlers
                        // finish (this one included), writes their acks,
                        // disconnects and returns the final metrics.
                        handle.shutdown();
                    }
                    Ok::<(), &'static str>(())
                }
            })
            .await
    };

    let mut total = 0;
    for (index, n) in per_connection.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        total += n;
        println!("connection {index}: {n} messages");
    }
    println!("total: {total} messages");
    println!("metrics: {}", serde_json::to_string(&totals)?);
    if total < count || totals.acked < count {
        return Err(format!(
            "the source ended after {total} messages ({} acked), {count} expected",
            totals.acked
        )
        .into());
    }
    Ok(())
}
