//! `mqtt bench`: N messages through a broker, from P publishers to C
//! consumers; throughput, latency percentiles (HDR histogram) and lost and
//! duplicate counts.
//!
//! Each payload starts with a header: the publisher (u32), its sequence number
//! (u64) and the send time (u64, nanoseconds since the run began), big-endian;
//! the rest is padding. Latency is measured from the send time to the receipt
//! by the consumer, in this process (one clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_source::{Outgoing, Topic};
use serde::Serialize;

use crate::cli::BenchArgs;
use crate::common::{self, thousands};
use crate::exit::Failure;
use crate::hist::{Latency, Percentiles, SeqTracker};
use crate::progress::Progress;

/// Publisher, sequence number, send time.
const HEADER: usize = 4 + 8 + 8;

#[derive(Debug, Serialize)]
struct Report {
    messages: u64,
    size: usize,
    qos: u8,
    publishers: u32,
    consumers: u16,
    published: u64,
    publish_failed: u64,
    publish_secs: f64,
    publish_rate: f64,
    received: u64,
    consume_secs: f64,
    consume_rate: f64,
    latency_us: Percentiles,
    lost: u64,
    duplicates: u64,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), Failure> {
    if args.size < HEADER {
        return Err(Failure::usage(format!(
            "--size must be at least {HEADER} (the header)"
        )));
    }
    if args.count == 0 || args.publishers == 0 || args.consumers == 0 || args.max_in_flight == 0 {
        return Err(Failure::usage(
            "--count, --publishers, --consumers and --max-in-flight must be at least 1",
        ));
    }
    let config = common::source_config(&args.conn)?;
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        crate::time::unix_micros(std::time::SystemTime::now()) % 1_000_000_000
    );
    let prefix = args
        .topic
        .clone()
        .unwrap_or_else(|| format!("mqtt-bench/{run_id}"));
    let mut consumer = config
        .clone()
        .with_topics([Topic::new(format!("{prefix}/#"), args.qos)])
        .with_client_id(format!("bench-{run_id}-sub"))
        .with_clean_start(true)
        .with_session_expiry(0)
        .with_max_in_flight(args.max_in_flight)
        .with_signal_handling(true);
    if args.consumers > 1 {
        consumer = consumer
            .with_shared_group(format!("bench-{run_id}"))
            .with_concurrency(args.consumers);
    }
    let mut source = common::connect_source(consumer).await?;
    let mut clients = Vec::new();
    for p in 0..args.publishers {
        let (client, _incoming) =
            common::connect_client(&config, format!("bench-{run_id}-pub-{p}"), true).await?;
        clients.push(client);
    }

    let start = Instant::now();
    let total = args.count;
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let progress = {
        let (sent, received) = (Arc::clone(&sent), Arc::clone(&received));
        Progress::start(move || {
            let (s, r) = (
                sent.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
            );
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            (
                r as f64 / total as f64,
                format!(
                    "sent {} · received {} of {} · {:.0} msg/s",
                    thousands(s),
                    thousands(r),
                    thousands(total),
                    r as f64 / secs
                ),
            )
        })
    };

    // Consumer: until every message arrived once, or the timeout.
    let deadline = tokio::time::Instant::now() + args.timeout;
    let consuming = {
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let mut tracker = SeqTracker::default();
            let mut latency = Latency::new()?;
            let mut last = start;
            while tracker.unique < total {
                let message = tokio::select! {
                    m = source.recv() => m,
                    () = tokio::time::sleep_until(deadline) => None,
                };
                let Some(message) = message else { break };
                let now = start.elapsed();
                if let Some((p, seq, sent_ns)) = header(message.payload()) {
                    if tracker.record(p as usize, seq) {
                        let us = now.as_nanos().saturating_sub(u128::from(sent_ns)) / 1000;
                        latency.record(now, u64::try_from(us).unwrap_or(u64::MAX));
                        last = Instant::now();
                    }
                }
                let _ = message.ack();
                received.store(tracker.unique, Ordering::Relaxed);
            }
            let _ = source.shutdown().await;
            Ok::<_, Failure>((tracker, latency, last))
        })
    };

    // Publishers, each its share, paced when --rate says so.
    let period = (args.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(args.publishers) / args.rate as f64));
    let mut publishing = Vec::new();
    for (p, client) in (0u32..).zip(clients) {
        let n = total / u64::from(args.publishers)
            + u64::from(u64::from(p) < total % u64::from(args.publishers));
        let topic = format!("{prefix}/{p}");
        let (qos, size, sent) = (args.qos, args.size, Arc::clone(&sent));
        let window = usize::from(args.max_in_flight);
        publishing.push(common::spawn_publisher(
            client,
            window,
            move |seq: &u64| {
                sent.fetch_add(1, Ordering::Relaxed);
                let sent_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                Outgoing::new(topic.clone(), payload(p, *seq, sent_ns, size)).with_qos(qos)
            },
            crate::quickstart::paced(0..n, period),
        ));
    }
    let (published, publish_failed) = common::join_publishers(publishing).await?;
    let publish_secs = start.elapsed().as_secs_f64();
    let (tracker, latency, last) = consuming
        .await
        .map_err(|e| Failure::failed(format!("the consumer stopped: {e}")))??;
    progress.finish();
    let consume_secs = last.duration_since(start).as_secs_f64();
    let report = Report {
        messages: total,
        size: args.size,
        qos: common::qos_number(args.qos),
        publishers: args.publishers,
        consumers: args.consumers,
        published,
        publish_failed,
        publish_secs,
        publish_rate: published as f64 / publish_secs.max(1e-9),
        received: tracker.unique,
        consume_secs,
        consume_rate: tracker.unique as f64 / consume_secs.max(1e-9),
        latency_us: latency.percentiles(),
        lost: total.saturating_sub(tracker.unique),
        duplicates: tracker.duplicates,
    };
    if let Some(path) = &args.plot {
        let title = format!(
            "mqtt bench: {} messages of {} B at QoS {}, {} publishers, {} consumers",
            thousands(total),
            args.size,
            report.qos,
            args.publishers,
            args.consumers
        );
        let svg = crate::plot::svg(&title, &latency);
        std::fs::write(path, svg)
            .map_err(|e| Failure::failed(format!("--plot {}: {e}", path.display())))?;
        eprintln!("plot: {}", path.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(Failure::failed)?
        );
    } else {
        let l = &report.latency_us;
        println!(
            "messages    {} of {} B at QoS {}, {} publisher(s), {} consumer(s)\n\
             published   {} in {:.2} s ({:.0} msg/s){}\n\
             received    {} in {:.2} s ({:.0} msg/s)\n\
             latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
             lost: {}  duplicates: {}",
            thousands(total),
            args.size,
            report.qos,
            args.publishers,
            args.consumers,
            thousands(published),
            publish_secs,
            report.publish_rate,
            if publish_failed > 0 {
                format!(", {publish_failed} FAILED")
            } else {
                String::new()
            },
            thousands(report.received),
            consume_secs,
            report.consume_rate,
            common::micros(l.p50),
            common::micros(l.p90),
            common::micros(l.p99),
            common::micros(l.p999),
            common::micros(l.max),
            report.lost,
            report.duplicates,
        );
    }
    if report.lost > 0 {
        return Err(Failure::failed(format!("lost {} messages", report.lost)));
    }
    if publish_failed > 0 {
        return Err(Failure::failed(format!(
            "{publish_failed} messages not published"
        )));
    }
    Ok(())
}

fn payload(publisher: u32, seq: u64, sent_ns: u64, size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size);
    buf.put_u32(publisher);
    buf.put_u64(seq);
    buf.put_u64(sent_ns);
    buf.resize(size, 0);
    buf.freeze()
}

fn header(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let p = u32::from_be_bytes(payload.get(0..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(payload.get(4..12)?.try_into().ok()?);
    let at = u64::from_be_bytes(payload.get(12..20)?.try_into().ok()?);
    Some((p, seq, at))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_header_round_trips() {
        let p = super::payload(3, 77, 123_456, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(super::header(&p), Some((3, 77, 123_456)));
        assert_eq!(super::header(&p[..10]), None);
    }
}
