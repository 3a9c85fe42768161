//! A consuming process for the mqtt-source tests (`tests/source_kill.rs`): it is
//! killed with SIGKILL mid-stream, started again, and run as several members of
//! one shared group.
//!
//! Configured by environment variables:
//!
//! - `PEER_BROKER` (URL), `PEER_ID` (client id), `PEER_TOPIC`, `PEER_QOS` (1 or 2);
//! - `PEER_GROUP` and `PEER_INSTANCE` (optional): a member of a shared group, its
//!   client id `{PEER_ID}_{PEER_INSTANCE}`;
//! - `PEER_STORE` (optional): the session store directory;
//! - `PEER_OUT`: the file each processed message is appended to, as
//!   `got PAYLOAD ATTEMPT DUP CLIENT_ID`, written before the message is acked
//!   (write(2) only: what a SIGKILL cannot undo);
//! - `PEER_ACK_LIMIT` (optional): ack that many messages, then keep the next ones
//!   unacked (printing `holding N` for each);
//! - `PEER_MAX_IN_FLIGHT` (optional, default 20).
//!
//! Prints `ready` once subscribed and `acked PAYLOAD` after each ack. Exits 0 on
//! SIGTERM after a graceful shutdown, printing `totals JSON`.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a test program")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test program")]

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use mqtt_source::{Instance, QoS, Source, SourceConfig};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let broker = var("PEER_BROKER").expect("PEER_BROKER");
    let qos = match var("PEER_QOS").as_deref() {
        Some("2") => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    };
    let mut config = SourceConfig::new([broker])
        .with_client_id(var("PEER_ID").expect("PEER_ID"))
        .with_topic(var("PEER_TOPIC").expect("PEER_TOPIC"), qos)
        .with_max_in_flight(var("PEER_MAX_IN_FLIGHT").map_or(20, |v| v.parse().unwrap()))
        .with_session_expiry(600)
        .with_reconnect(Duration::from_millis(50), Duration::from_millis(500), 2.0)
        .with_signal_handling(true)
        .with_shutdown_timeout(Duration::from_secs(5));
    if let Some(group) = var("PEER_GROUP") {
        config = config.with_shared_group(group);
    }
    if let Some(i) = var("PEER_INSTANCE") {
        config = config.with_instance(Instance::Index(i.parse().unwrap()));
    }
    if let Some(dir) = var("PEER_STORE") {
        config = config.with_session_store(dir);
    }
    let ack_limit: Option<u64> = var("PEER_ACK_LIMIT").map(|v| v.parse().unwrap());
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(var("PEER_OUT").expect("PEER_OUT"))
        .unwrap();
    let mut source = match Source::connect(config).await {
        Ok(source) => source,
        Err(e) => {
            eprintln!("source_peer: {e}");
            std::process::exit(2);
        }
    };
    println!("ready");
    let mut acked = 0u64;
    let mut held = Vec::new();
    let mut stdout = std::io::stdout();
    while let Some(message) = source.recv().await {
        let payload = String::from_utf8_lossy(message.payload()).into_owned();
        if ack_limit.is_some_and(|limit| acked >= limit) {
            println!("holding {payload}");
            let _ = stdout.flush();
            held.push(message);
            continue;
        }
        // One write(2) per line: members of a group append to one file.
        let line = format!(
            "got {payload} {} {} {}\n",
            message.delivery_attempt(),
            message.dup(),
            message.client_id()
        );
        out.write_all(line.as_bytes()).unwrap();
        if message.ack().is_ok() {
            acked += 1;
            println!("acked {payload}");
            let _ = stdout.flush();
        }
    }
    // Held messages are left for the broker.
    for message in held {
        message.nack();
    }
    let totals = source.shutdown().await;
    println!("totals {}", serde_json::to_string(&totals).unwrap());
}
