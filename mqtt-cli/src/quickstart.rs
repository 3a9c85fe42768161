//! `mqtt quickstart`: the main job. A simulated sensor fleet is published with
//! the sink; the source consumes it in a shared group and writes every reading
//! to a durable file, acking each only after the fsync of its line; then the
//! file is read back and every reading accounted for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream;
use mqtt_source::{Message, MetricsSnapshot, QoS, Source, SourceConfig};
use serde::Serialize;
use tokio::sync::Notify;

use crate::cli::{PayloadMode, QuickstartArgs};
use crate::common::{self, thousands};
use crate::durable::{Durable, Target};
use crate::exit::Failure;
use crate::fleet::{self, Payload, Reading};
use crate::hist::{Latency, Percentiles, SeqTracker};
use crate::jsonl;
use crate::progress::Progress;

/// What a run found, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    broker: String,
    devices: u32,
    readings: u64,
    alerts: u64,
    publishers: u32,
    consumers: u16,
    published: u64,
    publish_failed: u64,
    publish_secs: f64,
    publish_rate: f64,
    consumed: u64,
    consume_secs: f64,
    consume_rate: f64,
    /// Messages as the broker delivered them, by QoS (duplicates included).
    delivered_qos: [u64; 3],
    file: PathBuf,
    file_lines: u64,
    file_readings: u64,
    file_bytes: u64,
    /// Sent to on disk and acknowledged, in microseconds.
    latency_us: Percentiles,
    lost: u64,
    duplicates: u64,
    metrics: MetricsSnapshot,
}

pub(crate) async fn run(args: QuickstartArgs) -> Result<(), Failure> {
    if args.devices == 0 || args.messages == 0 || args.publishers == 0 || args.consumers == 0 {
        return Err(Failure::usage(
            "--devices, --messages, --publishers and --consumers must be at least 1",
        ));
    }
    let (url, broker) = broker(&args)?;
    let id = format!(
        "{}-{}",
        std::process::id(),
        crate::time::unix_micros(SystemTime::now()) % 1_000_000
    );
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("mqtt-quickstart-{id}.jsonl")));
    let file = std::fs::File::create(&path)
        .map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?;
    let total = args.messages;
    let alerts: u64 = (0..args.devices)
        .map(|d| fleet::readings_of(d, args.devices, total) / 10)
        .sum();
    if !crate::progress::QUIET.load(Ordering::Relaxed) {
        eprintln!(
        "quickstart: {} devices, {} readings ({} telemetry at QoS 1, {} alerts at QoS 2) through {broker}; writing {}",
        thousands(u64::from(args.devices)),
        thousands(total),
        thousands(total - alerts),
        thousands(alerts),
        path.display()
    );
    }

    let base = SourceConfig::new([url.clone()]);
    let mut consumer = base
        .clone()
        // One filter at QoS 2: MQTT delivers telemetry at QoS 1 and alerts at
        // QoS 2, the lower of published and granted (mosquitto does; rumqttd 0.20
        // sends all at QoS 2). One filter, not one per kind: rumqttd 0.20 delivers
        // a shared group's second filter to nobody.
        .with_topic("fleet/#", QoS::ExactlyOnce)
        .with_max_in_flight(1000)
        .with_client_id(format!("quickstart-{id}"))
        .with_clean_start(true)
        .with_session_expiry(0)
        .with_signal_handling(true);
    if args.consumers > 1 {
        consumer = consumer
            .with_shared_group("quickstart")
            .with_concurrency(args.consumers);
    }
    let source = common::connect_source(consumer).await?;

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + args.timeout;
    let sent = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let progress = {
        let (sent, consumed) = (Arc::clone(&sent), Arc::clone(&consumed));
        Progress::start(move || {
            let (s, c) = (
                sent.load(Ordering::Relaxed),
                consumed.load(Ordering::Relaxed),
            );
            (
                c as f64 / total as f64,
                format!(
                    "sent {} · on disk and acked {} of {}",
                    thousands(s),
                    thousands(c),
                    thousands(total)
                ),
            )
        })
    };
    let consuming = tokio::spawn(consume(
        source,
        file,
        total,
        deadline,
        Arc::clone(&consumed),
    ));

    // Each publisher sends its share of the fleet's rate.
    let period = (args.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(args.publishers) / args.rate as f64));
    let mut publishers = Vec::new();
    for p in 0..args.publishers {
        let (client, _incoming) =
            common::connect_client(&base, format!("quickstart-{id}-pub-{p}"), true).await?;
        let sent = Arc::clone(&sent);
        let schedule = fleet::schedule(p, args.publishers, args.devices, total);
        publishers.push(common::spawn_publisher(
            client,
            100,
            move |reading: &Reading| {
                sent.fetch_add(1, Ordering::Relaxed);
                fleet::message(*reading)
            },
            paced(schedule, period),
        ));
    }
    let (published, publish_failed) = common::join_publishers(publishers).await?;
    let publish_secs = started.elapsed().as_secs_f64();
    let consumer = consuming
        .await
        .map_err(|e| Failure::failed(format!("the consumer stopped: {e}")))??;
    progress.finish();
    let consume_secs = consumer
        .last
        .map_or(0.0, |at| at.duration_since(started).as_secs_f64());

    // Read the file back: every reading must be in it.
    let file_check = read_back(&path)?;
    let lost = total.saturating_sub(consumer.tracker.unique.min(file_check.readings));
    let report = Report {
        broker,
        devices: args.devices,
        readings: total,
        alerts,
        publishers: args.publishers,
        consumers: args.consumers,
        published,
        publish_failed,
        publish_secs,
        publish_rate: published as f64 / publish_secs.max(1e-9),
        consumed: consumer.tracker.unique,
        consume_secs,
        consume_rate: consumer.tracker.unique as f64 / consume_secs.max(1e-9),
        delivered_qos: consumer.by_qos,
        file: path.clone(),
        file_lines: file_check.lines,
        file_readings: file_check.readings,
        file_bytes: file_check.bytes,
        latency_us: consumer.latency.percentiles(),
        lost,
        duplicates: consumer.tracker.duplicates,
        metrics: consumer.snapshot,
    };
    print_report(&report, &args)?;
    if lost > 0 {
        return Err(Failure::failed(format!("lost {lost} readings")));
    }
    if publish_failed > 0 {
        return Err(Failure::failed(format!(
            "{publish_failed} readings not published"
        )));
    }
    Ok(())
}

/// `items`, the i-th not before `i * period` from now (`None`: at once).
pub(crate) fn paced<T>(
    items: impl Iterator<Item = T>,
    period: Option<Duration>,
) -> impl futures_util::Stream<Item = T> {
    use futures_util::StreamExt;
    let start = tokio::time::Instant::now();
    stream::iter(items.enumerate()).then(move |(i, item)| async move {
        if let Some(period) = period {
            let at = period.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            tokio::time::sleep_until(start + at).await;
        }
        item
    })
}

/// The broker URL and how the report names it: `--broker`, or the embedded one.
fn broker(args: &QuickstartArgs) -> Result<(String, String), Failure> {
    if let Some(url) = &args.broker {
        let shown = SourceConfig::new([url.clone()]).brokers_redacted().join("");
        return Ok((url.clone(), shown));
    }
    #[cfg(feature = "embedded-broker")]
    {
        let embedded = crate::embedded::start()?;
        let url = embedded.url();
        Ok((url.clone(), format!("{} at {url}", crate::embedded::NAME)))
    }
    #[cfg(not(feature = "embedded-broker"))]
    Err(Failure::usage(
        "this build has no embedded broker (feature `embedded-broker`): give --broker URL",
    ))
}

struct Consumed {
    tracker: SeqTracker,
    latency: Latency,
    last: Option<Instant>,
    by_qos: [u64; 3],
    snapshot: MetricsSnapshot,
}

/// What the writer learns of each reading once it is on disk.
struct Tally {
    started: Instant,
    tracker: SeqTracker,
    latency: Latency,
    last: Option<Instant>,
    by_qos: [u64; 3],
    total: u64,
    consumed: Arc<AtomicU64>,
    all_in: Arc<Notify>,
}

impl crate::durable::OnDurable for Tally {
    fn durable(&mut self, messages: &[Message]) {
        let now_us = crate::time::unix_micros(SystemTime::now());
        for message in messages {
            if let Some(n) = self
                .by_qos
                .get_mut(usize::from(common::qos_number(message.qos())))
            {
                *n += 1;
            }
            let Ok(p) = serde_json::from_slice::<Payload>(message.payload()) else {
                continue;
            };
            if let Some(d) = fleet::device_index(&p.device) {
                self.tracker.record(d as usize, p.seq);
            }
            self.latency
                .record(self.started.elapsed(), now_us.saturating_sub(p.sent_at_us));
        }
        self.last = Some(Instant::now());
        self.consumed.store(self.tracker.unique, Ordering::Relaxed);
        if self.tracker.unique >= self.total {
            self.all_in.notify_one();
        }
    }
}

/// The consumer: batches to the writer (lines written, fsync, then the acks)
/// until every reading is on disk, or the deadline.
async fn consume(
    mut source: Source,
    file: std::fs::File,
    total: u64,
    deadline: tokio::time::Instant,
    consumed: Arc<AtomicU64>,
) -> Result<Consumed, Failure> {
    let all_in = Arc::new(Notify::new());
    let tally = Tally {
        started: Instant::now(),
        tracker: SeqTracker::default(),
        latency: Latency::new()?,
        last: None,
        by_qos: [0; 3],
        total,
        consumed,
        all_in: Arc::clone(&all_in),
    };
    // The writer owns the tally; it comes back from `finish`.
    let writer = Durable::start(Target::File(file), tally).map_err(Failure::failed)?;
    loop {
        let batch = tokio::select! {
            batch = source.next_batch(1000, Duration::from_millis(2)) => batch,
            () = all_in.notified() => break,
            () = tokio::time::sleep_until(deadline) => break,
        };
        if batch.is_empty() {
            break; // shut down by a signal, or the connections closed for good
        }
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for message in &batch {
            jsonl::write_line(&mut buf, message, PayloadMode::Auto);
        }
        if writer.write(buf, batch).is_err() {
            break;
        }
    }
    let finished = writer.finish().await;
    let snapshot = source.shutdown().await;
    let on_durable = finished.map_err(|e| Failure::failed(format!("writing the file: {e}")))?;
    let Tally {
        tracker,
        latency,
        last,
        by_qos,
        ..
    } = on_durable;
    Ok(Consumed {
        tracker,
        latency,
        last,
        by_qos,
        snapshot,
    })
}

struct FileCheck {
    lines: u64,
    readings: u64,
    bytes: u64,
}

/// Reads the file back: lines, distinct readings in them.
fn read_back(path: &Path) -> Result<FileCheck, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("reading {} back: {e}", path.display())))?;
    let mut tracker = SeqTracker::default();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let reading = jsonl::Line::parse(line)
            .ok()
            .and_then(|l| serde_json::from_str::<Payload>(&l.payload).ok());
        if let Some(p) = reading {
            if let Some(d) = fleet::device_index(&p.device) {
                tracker.record(d as usize, p.seq);
            }
        }
    }
    Ok(FileCheck {
        lines,
        readings: tracker.unique,
        bytes: text.len() as u64,
    })
}

fn print_report(r: &Report, args: &QuickstartArgs) -> Result<(), Failure> {
    let metrics = serde_json::to_string(&r.metrics).unwrap_or_default();
    if args.json {
        let json = serde_json::to_string(r).map_err(Failure::failed)?;
        println!("{json}");
        return Ok(());
    }
    let l = &r.latency_us;
    println!(
        "broker      {}\n\
         published   {} readings in {:.2} s ({:.0} msg/s) by {} connections with the sink, each to its PUBACK or PUBCOMP{}\n\
         consumed    {} readings in {:.2} s ({:.0} msg/s) by {} connection(s){}, each acked after the fsync of its line\n\
         delivered   {} at QoS 1, {} at QoS 2, as the broker sent them (MQTT asks for the lower of the published and the granted QoS)\n\
         file        {}: {} lines, {} distinct readings, {:.1} MB\n\
         latency     sent to on disk and acked: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} readings)\n\
         metrics     {metrics}\n\
         lost: {}  duplicates: {}",
        r.broker,
        thousands(r.published),
        r.publish_secs,
        r.publish_rate,
        r.publishers,
        if r.publish_failed > 0 {
            format!(", {} FAILED", thousands(r.publish_failed))
        } else {
            String::new()
        },
        thousands(r.consumed),
        r.consume_secs,
        r.consume_rate,
        r.consumers,
        if r.consumers > 1 { " in the shared group `quickstart`" } else { "" },
        thousands(r.delivered_qos[1]),
        thousands(r.delivered_qos[2]),
        r.file.display(),
        thousands(r.file_lines),
        thousands(r.file_readings),
        r.file_bytes as f64 / 1e6,
        common::micros(l.p50),
        common::micros(l.p90),
        common::micros(l.p99),
        common::micros(l.p999),
        common::micros(l.max),
        thousands(l.count),
        r.lost,
        r.duplicates,
    );
    Ok(())
}
