//! A source writing every message to a file, one line each, acknowledging a
//! batch only once it is on disk: at least once into the file.
//!
//! ```sh
//! cargo run -p mqtt-source --example to_file -- mqtt://127.0.0.1:1883 \
//!     [--file messages.txt] [--count 10] [--topic examples/to-file]
//! ```
//!
//! Then publish to the topic, e.g.
//! `for i in $(seq 10); do mosquitto_pub -q 1 -t examples/to-file -m "line $i"; done`.
//!
//! Why ack after the fsync: the broker forgets a message when it gets its
//! PUBACK. Acked before the batch is durable, a crash (or power cut) between the
//! ack and the fsync would lose those messages: the broker no longer has them
//! and the file never got them. Acked after, a crash before the fsync leaves the
//! whole batch unacknowledged: the broker sends it again when the consumer comes
//! back (same client id, persistent session), so nothing is lost. A crash after
//! the fsync but before the acks reach the broker writes the batch twice: that
//! is the price of at least once (deduplicate downstream if it matters).
#![allow(clippy::print_stdout, reason = "an example prints")]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_source::{QoS, Source, SourceConfig};

const USAGE: &str =
    "usage: to_file [URL] [--file PATH] [--count N] [--topic TOPIC] (URL default mqtt://127.0.0.1:1883)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = String::from("mqtt://127.0.0.1:1883");
    let mut path = PathBuf::from("messages.txt");
    let mut count: usize = 10;
    let mut topic = String::from("examples/to-file");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--file" => path = args.next().ok_or(USAGE)?.into(),
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

    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    // A persistent session (the default) under a fixed client id: what was not
    // acked when the process stopped comes again on the next run.
    let config = SourceConfig::new([url])
        .with_client_id("to-file-example")
        .with_topic(topic.as_str(), QoS::AtLeastOnce);
    let mut source = Source::connect(config).await?;
    println!("subscribed: {topic}, writing to {}", path.display());

    let mut written = 0;
    while written < count {
        // Up to 100 messages (never more than are still wanted), gathered for at
        // most 50 ms after the first: one write and one fsync per batch.
        let batch = source
            .next_batch((count - written).min(100), Duration::from_millis(50))
            .await;
        if batch.is_empty() {
            break; // shut down, or every connection closed for good
        }
        let mut lines = Vec::new();
        for message in &batch {
            // One line per message (a payload holding a newline would make two:
            // a real pipeline would escape or length-prefix it).
            lines.extend_from_slice(message.payload());
            lines.push(b'\n');
        }
        // The write and the fsync block: off the runtime, so the connection's
        // keep-alive goes on meanwhile.
        file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            file.write_all(&lines)?;
            file.sync_data()?; // on disk, not just in the page cache
            Ok(file)
        })
        .await??;
        // Durable: only now may the broker forget them. If the write or the
        // fsync failed, `?` above returned first and the batch stays unacked.
        for message in batch {
            message.ack()?;
            written += 1;
        }
        println!("batch written: {written} lines so far");
    }

    let totals = source.shutdown().await;
    println!("wrote {written} lines to {}", path.display());
    println!("metrics: {}", serde_json::to_string(&totals)?);
    if written < count {
        return Err(format!("the source ended after {written} lines, {count} expected").into());
    }
    Ok(())
}
