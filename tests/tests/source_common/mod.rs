//! Helpers shared by the `source_*` integration tests (each includes this module
//! with `mod source_common;`, after `mod client_common;`): configurations, a
//! publisher, and bounded waits for what a source hands over.
#![allow(dead_code, reason = "each test file uses a subset of the helpers")]

use mqtt_client::{Client, Options, QoS, Tcp};
use mqtt_source::{Message, MetricsSnapshot, Source, SourceConfig};

use crate::client_common::{ms, within, QUIET, WAIT};

/// `mqtt://127.0.0.1:{port}`.
pub(crate) fn url(port: u16) -> String {
    format!("mqtt://127.0.0.1:{port}")
}

/// A source of one topic with quick reconnections and a bounded shutdown.
pub(crate) fn config(url: String, id: &str, topic: &str, qos: QoS) -> SourceConfig {
    SourceConfig::new([url])
        .with_client_id(id)
        .with_topic(topic, qos)
        .with_reconnect(ms(50), ms(500), 2.0)
        .with_shutdown_timeout(WAIT)
}

/// A client with a generated id and a clean session, for publishing.
pub(crate) async fn publisher(port: u16) -> Client {
    let (client, _incoming) =
        Client::connect(Options::new(""), Tcp::new(format!("127.0.0.1:{port}")))
            .await
            .unwrap();
    client
}

/// Publishes one QoS 1 message and waits for its PUBACK.
pub(crate) async fn publish(client: &Client, topic: &str, payload: impl Into<bytes::Bytes>) {
    let done = client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    within(WAIT, "PUBACK", done).await.unwrap();
}

/// Publishes `m0`, `m1`, ... at `qos`, each waited for.
pub(crate) async fn publish_n(client: &Client, topic: &str, qos: QoS, n: usize) {
    for i in 0..n {
        let done = client
            .publish(topic, qos, false, format!("m{i}"))
            .await
            .unwrap();
        within(WAIT, "publish completion", done).await.unwrap();
    }
}

/// The next message, within [`WAIT`].
pub(crate) async fn next(source: &mut Source) -> Message {
    within(WAIT, "a message from the source", source.recv())
        .await
        .expect("source ended while a message was expected")
}

/// Fails if a message arrives within [`QUIET`].
pub(crate) async fn nothing(source: &mut Source, what: &str) {
    if let Ok(Some(m)) = tokio::time::timeout(QUIET, source.recv()).await {
        panic!("{what}: unexpected message {m:?}");
    }
}

/// Waits until the source's metrics say `pred`.
pub(crate) async fn metrics_until(
    source: &Source,
    what: &str,
    pred: impl Fn(&MetricsSnapshot) -> bool,
) {
    let metrics = source.metrics().clone();
    within(WAIT, what, async move {
        while !pred(&metrics.snapshot()) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
