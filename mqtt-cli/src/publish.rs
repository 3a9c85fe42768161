//! `mqtt publish`: one message, or one per line, each waited for to the end of
//! its flow.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use mqtt_source::client::codec::property::PublishProperties;
use mqtt_source::{Outgoing, QoS, Sink, SinkOptions};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::cli::{LineFormat, PublishArgs};
use crate::common;
use crate::exit::Failure;
use crate::jsonl::{self, Line};

/// Failed messages named one by one on stderr; the rest are counted.
const NAMED_FAILURES: usize = 20;

/// One message to publish and the line it came from (0: `--message`).
#[derive(Debug, Clone)]
struct Item {
    line: u64,
    outgoing: Outgoing,
}

pub(crate) async fn run(args: PublishArgs) -> Result<(), Failure> {
    let config = common::source_config(&args.conn)?;
    let template = Template::new(&args)?;
    let client_id = config.client_id().unwrap_or_default().to_owned();
    if args.message.is_none() && !args.stdin && args.file.is_none() {
        return Err(Failure::usage(
            "publish needs what to send: -m TEXT, --stdin or --file FILE",
        ));
    }
    if args.format == LineFormat::Raw && args.topic.is_none() {
        return Err(Failure::usage("publish needs a topic: -t TOPIC"));
    }
    if args.message.is_some() && args.format == LineFormat::Json {
        return Err(Failure::usage(
            "--format json reads lines: use --stdin or --file",
        ));
    }
    let reader: Option<Box<dyn AsyncBufRead + Unpin + Send>> = match (&args.file, args.stdin) {
        (Some(path), _) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Failure::usage(format!("--file {}: {e}", path.display())))?;
            Some(Box::new(BufReader::with_capacity(256 * 1024, file)))
        }
        (None, true) => Some(Box::new(BufReader::with_capacity(
            256 * 1024,
            tokio::io::stdin(),
        ))),
        (None, false) => None,
    };
    let (client, _incoming) = common::connect_client(&config, client_id, true).await?;
    let sink = Sink::new(
        client.clone(),
        SinkOptions::default()
            .with_max_in_flight(args.max_in_flight)
            .with_retries(args.retries),
        |item: &Item| item.outgoing.clone(),
    );
    let started = Instant::now();
    // A line that cannot be read or parsed stops the reading; what was read
    // before it is still published.
    let bad_line: Arc<Mutex<Option<String>>> = Arc::default();
    let report = match (reader, &args.message) {
        (None, Some(text)) => {
            let item = Item {
                line: 0,
                outgoing: template.outgoing(None, Bytes::from(text.clone().into_bytes()))?,
            };
            sink.send_all(stream::iter([item])).await
        }
        (Some(reader), _) => {
            let items = lines(reader, template, args.format, Arc::clone(&bad_line));
            sink.send_all(items).await
        }
        (None, None) => unreachable_input(),
    };
    let elapsed = started.elapsed();
    let _ = client.disconnect().await;
    let published = report.published;
    eprintln!(
        "published {} messages in {:.2} s ({:.0} msg/s){}",
        common::thousands(published),
        elapsed.as_secs_f64(),
        common::rate(published, elapsed),
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", report.failed.len())
        }
    );
    for failure in report.failed.iter().take(NAMED_FAILURES) {
        let what = if failure.item.line == 0 {
            "the message".to_owned()
        } else {
            format!("line {}", failure.item.line)
        };
        eprintln!(
            "failed: {what} (topic {}): {} after {} attempts",
            failure.item.outgoing.topic, failure.error, failure.attempts
        );
    }
    if report.failed.len() > NAMED_FAILURES {
        eprintln!("failed: and {} more", report.failed.len() - NAMED_FAILURES);
    }
    let bad = bad_line.lock().map(|b| b.clone()).unwrap_or_default();
    match (bad, report.failed.len()) {
        (Some(bad), _) => Err(Failure::failed(bad)),
        (None, 0) => Ok(()),
        (None, n) => Err(Failure::failed(format!("{n} messages not published"))),
    }
}

fn unreachable_input() -> mqtt_source::SinkReport<Item> {
    // Checked before connecting: there is always a message or a reader.
    mqtt_source::SinkReport {
        published: 0,
        failed: Vec::new(),
    }
}

/// The messages of the lines of `reader`, until its end or a bad line.
fn lines(
    reader: Box<dyn AsyncBufRead + Unpin + Send>,
    template: Template,
    format: LineFormat,
    bad_line: Arc<Mutex<Option<String>>>,
) -> impl futures_util::Stream<Item = Item> {
    let lines = reader.split(b'\n');
    stream::unfold((lines, 0u64), move |(mut lines, n)| {
        let template = template.clone();
        let bad_line = Arc::clone(&bad_line);
        async move {
            let n = n + 1;
            let stop = |why: String| {
                if let Ok(mut bad) = bad_line.lock() {
                    *bad = Some(format!("line {n}: {why} (reading stopped there)"));
                }
                None
            };
            let bytes = match lines.next_segment().await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => return stop(e.to_string()),
            };
            let outgoing = match format {
                LineFormat::Raw => template.outgoing(None, Bytes::from(bytes)),
                LineFormat::Json => std::str::from_utf8(&bytes)
                    .map_err(|e| format!("not UTF-8: {e}"))
                    .and_then(Line::parse)
                    .and_then(Line::into_outgoing)
                    .map_err(Failure::usage)
                    .and_then(|line| template.outgoing(Some(line), Bytes::new())),
            };
            match outgoing {
                Ok(outgoing) => Some((Item { line: n, outgoing }, (lines, n))),
                Err(failure) => stop(failure.message),
            }
        }
    })
    .fuse()
}

/// What the flags say about each message.
#[derive(Debug, Clone)]
struct Template {
    topic: Option<String>,
    qos: Option<QoS>,
    retain: bool,
    properties: PublishProperties,
}

impl Template {
    fn new(args: &PublishArgs) -> Result<Self, Failure> {
        let mut properties = PublishProperties {
            message_expiry_interval: args.message_expiry,
            payload_format_indicator: args.utf8.then_some(1),
            correlation_data: args
                .correlation_data
                .as_ref()
                .map(|c| Bytes::from(c.clone().into_bytes())),
            ..PublishProperties::default()
        };
        properties.content_type = args
            .content_type
            .clone()
            .map(jsonl::mqtt_string)
            .transpose()
            .map_err(Failure::usage)?;
        properties.response_topic = args
            .response_topic
            .clone()
            .map(jsonl::mqtt_string)
            .transpose()
            .map_err(Failure::usage)?;
        for (name, value) in &args.user_properties {
            properties
                .user_properties
                .push(jsonl::user_property(name, value).map_err(Failure::usage)?);
        }
        Ok(Self {
            topic: args.topic.clone(),
            qos: args.qos,
            retain: args.retain,
            properties,
        })
    }

    /// A message from a line read back (its own topic, QoS and properties,
    /// the flags over them) or from a payload.
    fn outgoing(&self, line: Option<Outgoing>, payload: Bytes) -> Result<Outgoing, Failure> {
        let mut out = match line {
            Some(out) => out,
            None => Outgoing::new(self.topic.clone().unwrap_or_default(), payload)
                .with_qos(QoS::AtLeastOnce),
        };
        if let Some(topic) = &self.topic {
            out.topic.clone_from(topic);
        }
        if let Some(qos) = self.qos {
            out.qos = qos;
        }
        out.retain |= self.retain;
        if self.properties != PublishProperties::default() {
            let mut props = out.properties.take().unwrap_or_default();
            let t = &self.properties;
            props.message_expiry_interval =
                t.message_expiry_interval.or(props.message_expiry_interval);
            props.payload_format_indicator = t
                .payload_format_indicator
                .or(props.payload_format_indicator);
            props.correlation_data = t.correlation_data.clone().or(props.correlation_data);
            props.content_type = t.content_type.clone().or(props.content_type);
            props.response_topic = t.response_topic.clone().or(props.response_topic);
            props
                .user_properties
                .extend(t.user_properties.iter().cloned());
            out.properties = Some(props);
        }
        Ok(out)
    }
}
