//! The source's `tracing` events carry what off_broadway_emqtt's telemetry
//! carries: producer init/terminate, connection up/down with the reason,
//! subscription success with the granted QoS, message received, message acked
//! with its status. A subscriber of the test's own records every event of the
//! `mqtt_source` target (one test in this binary: it is the global subscriber).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use client_common::{ms, within, WAIT};
use mqtt_client::{Client, Options, QoS, Tcp};
use mqtt_source::{Source, SourceConfig};
use mqtt_tests::broker::Mosquitto;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Fields = BTreeMap<String, String>;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Fields>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("mqtt_source")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn events(&self, name: &str) -> Vec<Fields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.get("event").map(String::as_str) == Some(name))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_broadway_telemetry_fields() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    let mut broker = Mosquitto::start();
    let config = SourceConfig::new([format!("mqtt://127.0.0.1:{}", broker.port())])
        .with_client_id("tele")
        .with_shared_group("g")
        .with_concurrency(2)
        .with_topic("tele/#", QoS::ExactlyOnce)
        .with_reconnect(ms(50), ms(500), 2.0);
    let mut source = Source::connect(config).await.unwrap();
    let (publisher, _incoming) =
        Client::connect(Options::new(""), Tcp::new(broker.addr().to_string()))
            .await
            .unwrap();
    publisher
        .publish("tele/a", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap()
        .await
        .unwrap();
    let m = within(WAIT, "message", source.recv()).await.unwrap();
    let index = m.connection_index().to_string();
    m.ack().unwrap();

    let init = recorder.events("producer.init");
    assert_eq!(init.len(), 2);
    assert_eq!(
        (
            init[0]["producer_index"].as_str(),
            init[0]["client_id"].as_str()
        ),
        ("0", "tele_0")
    );
    let up = recorder.events("connection.up");
    assert_eq!(up.len(), 2);
    assert!(up
        .iter()
        .all(|e| e.contains_key("client_id") && e.contains_key("producer_index")));
    let subscribed = recorder.events("subscription.success");
    assert_eq!(subscribed.len(), 2);
    assert_eq!(
        (
            subscribed[0]["topic"].as_str(),
            subscribed[0]["granted_qos"].as_str()
        ),
        ("tele/#", "2")
    );
    let start = recorder.events("receive_message.start");
    assert_eq!(start.len(), 1);
    assert_eq!(
        (
            start[0]["topic"].as_str(),
            start[0]["qos"].as_str(),
            start[0]["producer_index"].as_str()
        ),
        ("tele/a", "1", index.as_str())
    );
    assert!(start[0]["client_id"].starts_with("tele_"));
    let ack = recorder.events("receive_message.ack");
    assert_eq!(ack.len(), 1);
    assert_eq!(
        (
            ack[0]["topic"].as_str(),
            ack[0]["qos"].as_str(),
            ack[0]["status"].as_str()
        ),
        ("tele/a", "1", "on_success")
    );

    // Down with a reason, when the broker goes away.
    client_common::kill(&mut broker);
    within(WAIT, "connection.down", async {
        while recorder.events("connection.down").len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(recorder
        .events("connection.down")
        .iter()
        .all(|e| !e["reason"].is_empty()));
    source.shutdown().await;
    let terminate = recorder.events("producer.terminate");
    assert_eq!(terminate.len(), 2, "{terminate:?}");
    assert!(terminate
        .iter()
        .all(|e| e.contains_key("reason") && e.contains_key("producer_index")));
}
