//! `mqtt consume`: messages as JSON lines, each acknowledged once its line is
//! written (and, into a file, on disk).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_source::{Message, QoS, Source, SourceConfig, Topic};

use crate::cli::ConsumeArgs;
use crate::common;
use crate::durable::{Durable, Target};
use crate::exit::{Exit, Failure};
use crate::jsonl;

/// How long a batch waits for more messages after its first.
const BATCH_WAIT: Duration = Duration::from_millis(2);

pub(crate) async fn run(args: ConsumeArgs) -> Result<(), Failure> {
    let config = config(&args)?;
    config.validate()?;
    let metrics = match args.metrics_addr {
        Some(addr) => Some(crate::http::bind(addr).await?),
        None => None,
    };
    let out = match &args.output {
        Some(path) => Output::file(path)?,
        None => Output::Stdout,
    };
    let source = common::connect_source(config).await?;
    if let Some(listener) = metrics {
        if let Ok(addr) = listener.local_addr() {
            eprintln!("metrics: http://{addr}/metrics");
        }
        crate::http::serve(listener, source.handle());
    }
    tracing::info!(event = "consume.started", output = %out.name());
    let outcome = consume(source, &out, &args).await;
    let Consumed {
        written,
        elapsed,
        stopped,
        snapshot,
    } = outcome?;
    let rate = common::rate(written, elapsed);
    eprintln!(
        "consumed {} messages in {:.2} s ({:.0} msg/s) to {}; acked {}, redelivered locally after a failure {}, connection errors {}",
        common::thousands(written),
        elapsed.as_secs_f64(),
        rate,
        out.name(),
        common::thousands(snapshot.acked),
        common::thousands(snapshot.redelivered),
        snapshot.errors,
    );
    match stopped {
        Stopped::Count | Stopped::Signal => Ok(()),
        Stopped::Timeout => match args.count {
            Some(count) => Err(Failure::new(
                Exit::Timeout,
                format!("--timeout passed after {written} of {count} messages"),
            )),
            None => Ok(()),
        },
        Stopped::WriteFailed => Err(Failure::failed(format!("writing {} failed", out.name()))),
        Stopped::Closed(why) => Err(Failure::failed(format!(
            "the connection closed for good: {why}"
        ))),
    }
}

/// The source configuration of the command: file, connection flags, then the
/// consume flags.
fn config(args: &ConsumeArgs) -> Result<SourceConfig, Failure> {
    let mut config = common::source_config(&args.conn)?;
    let qos = args.qos.unwrap_or(QoS::AtLeastOnce);
    if !args.topics.is_empty() {
        config = config.with_topics(args.topics.iter().map(|t| Topic::new(t.clone(), qos)));
    } else if args.conn.config.is_none() {
        return Err(Failure::usage(
            "consume needs a topic: -t FILTER (or a --config file with topics)",
        ));
    } else if args.qos.is_some() {
        return Err(Failure::usage(
            "--qos applies to the -t topics: a --config file's topics keep their own QoS",
        ));
    }
    if let Some(group) = &args.group {
        config = config.with_shared_group(group.clone());
    }
    if let Some(n) = args.concurrency {
        config = config.with_concurrency(n);
    }
    if let Some(n) = args.max_in_flight {
        config = config.with_max_in_flight(n);
    }
    if let Some(expiry) = args.session_expiry {
        config = config.with_session_expiry(expiry);
    }
    if let Some(dir) = &args.session_store {
        config = config.with_session_store(dir.clone());
    }
    if args.clean {
        config = config.with_clean_start(true);
    }
    if config.client_id().is_none() {
        // Nothing could resume a session without a name: a clean one, ended
        // with the process.
        tracing::info!("no --client-id: a clean session that ends with the process");
        config = config.with_clean_start(true).with_session_expiry(0);
    }
    if args.batch == 0 {
        return Err(Failure::usage("--batch must be at least 1"));
    }
    Ok(config.with_signal_handling(true))
}

enum Stopped {
    Count,
    Signal,
    Timeout,
    Closed(String),
    WriteFailed,
}

struct Consumed {
    written: u64,
    elapsed: Duration,
    stopped: Stopped,
    snapshot: mqtt_source::MetricsSnapshot,
}

async fn consume(
    mut source: Source,
    out: &Output,
    args: &ConsumeArgs,
) -> Result<Consumed, Failure> {
    let started = Instant::now();
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let written = Arc::new(AtomicU64::new(0));
    let target = match out {
        Output::Stdout => Target::Stdout,
        Output::File { file, path } => Target::File(
            file.try_clone()
                .map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?,
        ),
    };
    let counter = Arc::clone(&written);
    let writer = Durable::start(target, move |messages: &[Message]| {
        let n = messages.len() as u64;
        let total = counter.fetch_add(n, Ordering::Relaxed) + n;
        tracing::info!(event = "consume.flushed", lines = n, total);
    })
    .map_err(Failure::failed)?;
    let mut handed = 0u64;
    let stopped = loop {
        let want = match args.count {
            Some(count) => usize::try_from(count.saturating_sub(handed))
                .unwrap_or(usize::MAX)
                .min(args.batch),
            None => args.batch,
        };
        if want == 0 {
            break Stopped::Count;
        }
        let batch = match deadline {
            Some(deadline) => tokio::select! {
                batch = source.next_batch(want, BATCH_WAIT) => batch,
                () = tokio::time::sleep_until(deadline) => break Stopped::Timeout,
            },
            None => source.next_batch(want, BATCH_WAIT).await,
        };
        if batch.is_empty() {
            // Shut down (a signal), or every connection closed for good.
            let health = source.handle().health();
            break match health.closed.first() {
                Some((id, why)) if health.closed.len() == health.connections => {
                    Stopped::Closed(format!("{id}: {why}"))
                }
                _ => Stopped::Signal,
            };
        }
        let mut buf = Vec::with_capacity(batch.len() * 256);
        for message in &batch {
            jsonl::write_line(&mut buf, message, args.payload);
        }
        handed += batch.len() as u64;
        if writer.write(buf, batch).is_err() {
            break Stopped::WriteFailed;
        }
    };
    // Everything handed to the writer is written and acked before the source
    // drains and disconnects.
    let finished = writer.finish().await;
    let elapsed = started.elapsed();
    let snapshot = source.shutdown().await;
    if let Err(error) = finished {
        return Err(Failure::failed(format!("writing {}: {error}", out.name())));
    }
    Ok(Consumed {
        written: written.load(Ordering::Relaxed),
        elapsed,
        stopped,
        snapshot,
    })
}

/// Where the lines go.
enum Output {
    Stdout,
    File { file: File, path: PathBuf },
}

impl Output {
    /// Opens `path` to append, first cutting off a partial last line that an
    /// interrupted run left (its message was never acknowledged).
    fn file(path: &Path) -> Result<Self, Failure> {
        let open = |e: std::io::Error| Failure::failed(format!("{}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(open)?;
        let len = file.metadata().map_err(open)?.len();
        let keep = complete_length(&mut file, len).map_err(open)?;
        if keep < len {
            tracing::warn!(
                event = "consume.partial_line",
                bytes = len - keep,
                "cut off a partial last line left by an interrupted run (its message was not acknowledged: the broker sends it again)"
            );
            file.set_len(keep).map_err(open)?;
            file.sync_all().map_err(open)?;
        }
        Ok(Self::File {
            file,
            path: path.to_owned(),
        })
    }

    fn name(&self) -> String {
        match self {
            Self::Stdout => "stdout".to_owned(),
            Self::File { path, .. } => path.display().to_string(),
        }
    }
}

/// The length of the file up to and with its last newline.
fn complete_length(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; usize::try_from(CHUNK).unwrap_or(65536)];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = usize::try_from(end - start).unwrap_or(0);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_last_line_is_cut_off() {
        let dir = std::env::temp_dir().join(format!("mqtt-cli-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        drop(Output::file(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"a\":2}\n");
        // Nothing complete: emptied. Complete: kept.
        std::fs::write(&path, b"{\"a\"").unwrap();
        drop(Output::file(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        let long = "x".repeat(200_000) + "\n";
        std::fs::write(&path, format!("{long}{}", "y".repeat(100_000))).unwrap();
        drop(Output::file(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), long.as_bytes());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
