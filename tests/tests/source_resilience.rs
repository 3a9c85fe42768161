//! mqtt-source against mosquitto when things go wrong or change: broker
//! restarts, cut connections, stale acks, SUBACK downgrades and refusals, topic
//! changes at runtime and on a resumed session, payload shapes, typed connect
//! errors, batches, the decoder, the sink under a cut connection, and metrics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

mod client_common;
mod source_common;

use std::time::Duration;

use client_common::{ms, packet_type, password_file, within, Dir, Proxy, TempDir, QUIET, WAIT};
use futures_util::StreamExt;
use mqtt_client::transport::TransportError;
use mqtt_client::{AckError, Client, ConnectionError, Options, QoS, RefusalKind, Tcp};
use mqtt_source::decode::Json;
use mqtt_source::{
    Message, OnFailure, Outgoing, Sink, SinkOptions, Source, SourceConfig, SourceError, TlsConfig,
    Topic,
};
use mqtt_tests::broker::Mosquitto;
use mqtt_tests::pki::{Pki, Validity};
use source_common::{config, metrics_until, next, nothing, publish, publisher, url};

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_with_persistence_resumes_and_redelivers() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "persist",
        "r/p",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let p = publisher(broker.port()).await;
    publish(&p, "r/p", "before").await;
    let unacked = next(&mut source).await;
    client_common::restart(&mut broker);
    // The message handed over before the restart is redelivered on the resumed
    // session; the ack of the first copy is stale.
    let again = next(&mut source).await;
    assert_eq!(
        (again.payload().as_ref(), again.dup()),
        (&b"before"[..], true)
    );
    assert!(matches!(unacked.ack(), Err(AckError::StaleConnection)));
    again.ack().unwrap();
    let p = publisher(broker.port()).await;
    publish(&p, "r/p", "after").await;
    assert_eq!(next(&mut source).await.payload().as_ref(), b"after");
    let totals = source.shutdown().await;
    // Lost once, then closed by the shutdown.
    assert_eq!(
        (
            totals.connects,
            totals.disconnections,
            totals.stale_acks,
            totals.errors
        ),
        (2, 2, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_without_persistence_restores_subscriptions() {
    let mut broker = Mosquitto::builder().persistence(false).start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "volatile",
        "r/v",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    client_common::restart(&mut broker);
    metrics_until(&source, "reconnected", |m| m.connects == 2).await;
    // The broker lost the session; the client subscribed again: no silent stall.
    let p = publisher(broker.port()).await;
    within(WAIT, "resubscribed", async {
        loop {
            publish(&p, "r/v", "after").await;
            if let Ok(Some(m)) = tokio::time::timeout(ms(200), source.recv()).await {
                m.ack().unwrap();
                return;
            }
        }
    })
    .await;
    source.shutdown().await;
}

#[tokio::test]
async fn a_cut_connection_reconnects_and_a_stale_ack_is_never_sent() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let mut source = Source::connect(config(
        format!("mqtt://{}", proxy.addr()),
        "cut",
        "r/cut",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let p = publisher(broker.port()).await;
    publish(&p, "r/cut", "m0").await;
    let first = next(&mut source).await;
    let id = first.packet_id().unwrap().get();
    proxy.cut();
    let again = next(&mut source).await;
    assert_eq!(
        (again.payload().as_ref(), again.dup(), again.packet_id()),
        (&b"m0"[..], true, first.packet_id())
    );
    assert!(matches!(first.ack(), Err(AckError::StaleConnection)));
    let pubacks_on_2 = |p: &Proxy| {
        p.frames()
            .iter()
            .filter(|f| {
                f.connection == 2
                    && f.dir == Dir::ToBroker
                    && f.packet_type() == packet_type::PUBACK
                    && f.packet_id == Some(id)
            })
            .count()
    };
    // Give a wrongly sent stale ack the time to show.
    publish(&p, "r/cut", "m1").await;
    let m1 = next(&mut source).await;
    assert_eq!(
        pubacks_on_2(&proxy),
        0,
        "the stale ack reached the new connection"
    );
    again.ack().unwrap();
    m1.ack().unwrap();
    let totals = source.shutdown().await;
    proxy
        .wait_frame("DISCONNECT", |f| {
            f.dir == Dir::ToBroker && f.packet_type() == 14
        })
        .await;
    assert_eq!(pubacks_on_2(&proxy), 1);
    assert_eq!(
        (totals.stale_acks, totals.acked, totals.connects),
        (1, 2, 2)
    );
}

/// A scripted MQTT 5 server on loopback that accepts every connection and answers
/// each SUBSCRIBE filter with `refuse(filter)`'s code when it gives one (granting
/// the QoS asked otherwise): mosquitto's ACLs never refuse a SUBSCRIBE.
async fn refusing_server(refuse: fn(&str) -> Option<mqtt_client::codec::ReasonCode>) -> u16 {
    use bytes::BytesMut;
    use mqtt_client::codec::{ConnAck, Decoder, Packet, ProtocolVersion, ReasonCode, SubAck};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let version = ProtocolVersion::V5;
                let mut decoder = Decoder::new(version);
                let mut buf = BytesMut::new();
                loop {
                    let packet = match decoder.decode(&mut buf) {
                        Ok(Some(packet)) => packet,
                        Ok(None) => match stream.read_buf(&mut buf).await {
                            Ok(n) if n > 0 => continue,
                            _ => return,
                        },
                        Err(_) => return,
                    };
                    let reply = match packet {
                        Packet::Connect(_) => Packet::ConnAck(Box::new(ConnAck {
                            session_present: false,
                            reason_code: ReasonCode::SUCCESS,
                            properties: Default::default(),
                        })),
                        Packet::Subscribe(sub) => Packet::SubAck(Box::new(SubAck {
                            packet_id: sub.packet_id,
                            properties: Default::default(),
                            reason_codes: sub
                                .filters
                                .iter()
                                .map(|(f, o)| refuse(f.as_str()).unwrap_or(ReasonCode(o.qos as u8)))
                                .collect(),
                        })),
                        Packet::Publish(publish) => match publish.packet_id {
                            // QoS 1: refused with `refuse(topic)`'s code, if any.
                            Some(packet_id) => Packet::PubAck(mqtt_client::codec::PubAck {
                                packet_id,
                                reason_code: refuse(publish.topic.as_str())
                                    .unwrap_or(ReasonCode::SUCCESS),
                                properties: Default::default(),
                            }),
                            None => continue,
                        },
                        Packet::PingReq => Packet::PingResp,
                        Packet::Disconnect(_) => return,
                        _ => continue,
                    };
                    let mut out = BytesMut::new();
                    reply.encode(version, &mut out).unwrap();
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn suback_downgrade_is_reported_and_refusals_fail_or_count() {
    let broker = Mosquitto::builder().config_line("max_qos 1").start();
    // QoS 2 asked, 1 granted: a warning and a count, and messages flow.
    let mut source = Source::connect(config(
        url(broker.port()),
        "down",
        "allowed/d",
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap();
    assert_eq!(source.metrics().snapshot().subscription_downgrades, 1);
    let p = publisher(broker.port()).await;
    publish(&p, "allowed/d", "x").await;
    let m = next(&mut source).await;
    assert_eq!(m.qos(), QoS::AtLeastOnce);
    m.ack().unwrap();
    source.shutdown().await;

    let port = refusing_server(|f| {
        f.starts_with("denied/")
            .then_some(mqtt_client::codec::ReasonCode::NOT_AUTHORIZED)
    })
    .await;
    // Every filter refused: the source fails, naming them.
    let cfg = config(url(port), "refused", "denied/x", QoS::AtLeastOnce)
        .with_topic("denied/y", QoS::AtLeastOnce);
    match Source::connect(cfg).await {
        Err(SourceError::SubscriptionsRefused { refused, .. }) => {
            let filters: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(filters, ["denied/x", "denied/y"]);
            assert!(refused
                .iter()
                .all(|(_, code)| *code == mqtt_client::codec::ReasonCode::NOT_AUTHORIZED));
        }
        other => panic!("expected SubscriptionsRefused, got {other:?}"),
    }
    // One of two refused: the source runs, and counts it.
    let cfg = config(url(port), "half", "allowed/h", QoS::AtLeastOnce)
        .with_topic("denied/h", QoS::AtLeastOnce);
    let source = Source::connect(cfg).await.unwrap();
    assert_eq!(source.metrics().snapshot().subscription_failures, 1);
    // A topic added at runtime and refused is an error, and not added.
    let handle = source.handle();
    assert!(matches!(
        handle
            .subscribe(Topic::new("denied/z", QoS::AtLeastOnce))
            .await,
        Err(SourceError::SubscriptionsRefused { .. })
    ));
    assert_eq!(handle.topics().len(), 2);
    source.shutdown().await;
}

#[tokio::test]
async fn topics_change_at_runtime_and_on_a_resumed_session() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("source-topics");
    let p = publisher(broker.port()).await;
    let cfg = |topics: &[&str]| {
        let mut c = SourceConfig::new([url(broker.port())])
            .with_client_id("topics")
            .with_session_store(dir.0.join("store"))
            .with_shutdown_timeout(WAIT);
        for t in topics {
            c = c.with_topic(*t, QoS::AtLeastOnce);
        }
        c
    };
    let mut source = Source::connect(cfg(&["t/a", "t/b"])).await.unwrap();
    let handle = source.handle();
    // Added at runtime.
    assert_eq!(
        handle
            .subscribe(Topic::new("t/c", QoS::AtLeastOnce))
            .await
            .unwrap(),
        QoS::AtLeastOnce
    );
    publish(&p, "t/c", "c").await;
    next(&mut source).await.ack().unwrap();
    // Removed at runtime.
    handle.unsubscribe("t/c").await.unwrap();
    publish(&p, "t/c", "c2").await;
    nothing(&mut source, "after unsubscribing t/c").await;
    assert_eq!(handle.topics().len(), 2);
    source.shutdown().await;
    // Started again without t/b: the resumed session's t/b is unsubscribed.
    let mut source = Source::connect(cfg(&["t/a"])).await.unwrap();
    publish(&p, "t/b", "stale").await;
    nothing(&mut source, "a filter no longer configured").await;
    publish(&p, "t/a", "a").await;
    assert_eq!(next(&mut source).await.payload().as_ref(), b"a");
    source.shutdown().await;
}

#[tokio::test]
async fn retained_binary_and_one_mebibyte_payloads() {
    let broker = Mosquitto::start();
    let p = publisher(broker.port()).await;
    let done = p
        .publish("pay/retained", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    within(WAIT, "PUBACK", done).await.unwrap();
    let mut source = Source::connect(config(
        url(broker.port()),
        "payloads",
        "pay/#",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let retained = next(&mut source).await;
    assert_eq!(
        (retained.payload().as_ref(), retained.retain()),
        (&b"kept"[..], true)
    );
    retained.ack().unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    publish(&p, "pay/binary", binary.clone()).await;
    let m = next(&mut source).await;
    assert_eq!((m.payload().as_ref(), m.retain()), (&binary[..], false));
    m.ack().unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    publish(&p, "pay/big", big.clone()).await;
    let m = next(&mut source).await;
    assert_eq!(m.payload().len(), 1 << 20);
    assert!(m.payload().as_ref() == &big[..]);
    m.ack().unwrap();
    let totals = source.shutdown().await;
    assert_eq!(totals.received_bytes, 4 + 4096 + (1 << 20));
}

#[tokio::test]
async fn wrong_password_and_tls_failures_are_distinct_errors() {
    let dir = TempDir::new("source-auth");
    let passwords = password_file(&dir, "ingest", "s3cret");
    let pki = Pki::new("source CA");
    let server = pki.server("server", &["localhost", "127.0.0.1"], Validity::Current);
    let broker = Mosquitto::builder()
        .config_line("allow_anonymous false")
        .config_line(format!("password_file {}", passwords.display()))
        .listener([
            format!("certfile {}", server.cert.display()),
            format!("keyfile {}", server.key.display()),
        ])
        .start();
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.listener_port(0));
    // Right password, over TLS trusting our CA: works.
    let good = config(tls_url.clone(), "auth-ok", "a/#", QoS::AtLeastOnce)
        .with_credentials("ingest", "s3cret")
        .with_tls(TlsConfig {
            ca_cert: Some(pki.ca_file().to_owned()),
            ..TlsConfig::default()
        });
    Source::connect(good.clone())
        .await
        .unwrap()
        .shutdown()
        .await;
    // Wrong password: the broker's refusal.
    let wrong = config(url(broker.port()), "auth-bad", "a/#", QoS::AtLeastOnce)
        .with_credentials("ingest", "wrong");
    match Source::connect(wrong).await {
        Err(SourceError::Connect {
            error: ConnectionError::Refused(refusal),
            ..
        }) => {
            assert!(
                matches!(
                    refusal.kind,
                    RefusalKind::BadCredentials | RefusalKind::NotAuthorized
                ),
                "{refusal:?}"
            );
        }
        other => panic!("expected a refused CONNACK, got {other:?}"),
    }
    // An untrusted certificate (default roots, no CA given): a TLS error.
    let untrusted = config(tls_url, "auth-tls", "a/#", QoS::AtLeastOnce)
        .with_credentials("ingest", "s3cret")
        .with_tls(TlsConfig::default());
    match Source::connect(untrusted).await {
        Err(SourceError::Connect {
            error: ConnectionError::Transport { error, .. },
            ..
        }) => {
            assert!(matches!(*error, TransportError::Tls(_)), "{error:?}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // The probe says the same, without a session.
    assert!(mqtt_source::check(&good).await.is_ok());
}

#[tokio::test]
async fn batches_fill_to_size_or_time_out() {
    let broker = Mosquitto::start();
    let mut source = Source::connect(
        config(url(broker.port()), "batch", "b/#", QoS::AtLeastOnce).with_max_in_flight(300),
    )
    .await
    .unwrap();
    let p = publisher(broker.port()).await;
    let mut completions = Vec::new();
    for i in 0..250 {
        completions.push(
            p.publish("b/x", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap(),
        );
    }
    for done in completions {
        within(WAIT, "PUBACK", done).await.unwrap();
    }
    let mut sizes = Vec::new();
    let mut next_expected = 0;
    while next_expected < 250 {
        let batch = within(WAIT, "batch", source.next_batch(100, ms(300))).await;
        sizes.push(batch.len());
        for m in batch {
            assert_eq!(m.payload().as_ref(), next_expected.to_string().as_bytes());
            next_expected += 1;
            m.ack().unwrap();
        }
    }
    assert!(sizes.iter().all(|&n| (1..=100).contains(&n)), "{sizes:?}");
    let totals = source.shutdown().await;
    assert_eq!((totals.batches, totals.acked), (sizes.len() as u64, 250));
}

#[derive(serde::Deserialize, Debug)]
struct Reading {
    device: String,
    celsius: f64,
}

#[tokio::test]
async fn decoder_failures_follow_on_failure() {
    let broker = Mosquitto::start();
    let (dlq, mut dlq_in) =
        Client::connect(Options::new("dlq"), Tcp::new(broker.addr().to_string()))
            .await
            .unwrap();
    dlq.subscribe("dlq/readings", QoS::AtLeastOnce)
        .await
        .unwrap();
    let cfg = config(url(broker.port()), "decode", "readings", QoS::AtLeastOnce)
        .with_on_failure(OnFailure::DeadLetter)
        .with_dead_letter_topic("dlq/readings");
    let mut records = Source::connect(cfg)
        .await
        .unwrap()
        .decoded(Json::<Reading>::new());
    let p = publisher(broker.port()).await;
    publish(&p, "readings", r#"{"device":"d1","celsius":21.5}"#).await;
    publish(&p, "readings", "not json").await;
    publish(&p, "readings", r#"{"device":"d2","celsius":-3}"#).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let record = within(WAIT, "record", records.next()).await.unwrap();
        got.push((record.value.device.clone(), record.value.celsius));
        record.message.ack().unwrap();
    }
    assert_eq!(got, [("d1".to_owned(), 21.5), ("d2".to_owned(), -3.0)]);
    let mut dead = within(WAIT, "dead letter", dlq_in.recv()).await.unwrap();
    assert_eq!(dead.payload().as_ref(), b"not json");
    dead.ack().unwrap();
    let totals = records.into_source().shutdown().await;
    assert_eq!(
        (totals.decode_failures, totals.dead_lettered, totals.acked),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn the_sink_publishes_everything_at_least_once_across_a_cut() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let (observer, mut seen) = Client::connect(
        Options::new("observer").with_receive_maximum(1000),
        Tcp::new(broker.addr().to_string()),
    )
    .await
    .unwrap();
    observer
        .subscribe("sink/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let options = Options::new("sink")
        .with_clean_start(false)
        .with_session_expiry(600)
        .with_reconnect(client_common::fast_backoff());
    let (client, _incoming) = Client::connect(options, Tcp::new(proxy.addr()))
        .await
        .unwrap();
    let sink = Sink::new(
        client,
        SinkOptions::default().with_max_in_flight(20),
        |i: &u32| Outgoing::new(format!("sink/{}", i % 4), i.to_string()),
    );
    const N: u32 = 400;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let feeder = tokio::spawn(async move {
        for i in 0..N {
            tx.send(i).await.unwrap();
        }
    });
    let cutter = {
        let frames_before_cut = 100;
        let proxy = &proxy;
        async move {
            proxy
                .wait_frame("PUBACKs flowing", |f| {
                    f.dir == Dir::ToClient
                        && f.packet_type() == packet_type::PUBACK
                        && f.packet_id == Some(frames_before_cut)
                })
                .await;
            proxy.cut();
        }
    };
    let stream = tokio_stream_from(rx);
    let (report, ()) = within(Duration::from_secs(30), "sink", async {
        tokio::join!(sink.send_all(stream), cutter)
    })
    .await;
    feeder.await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.published, u64::from(N));
    let mut got = std::collections::BTreeSet::new();
    while got.len() < N as usize {
        let mut m = within(WAIT, "observer", seen.recv()).await.unwrap();
        got.insert(String::from_utf8(m.payload().to_vec()).unwrap());
        let _ = m.ack();
    }
    assert!(proxy.connections() >= 2, "the connection was cut");
}

/// A stream of what `rx` receives.
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn metrics_match_what_happened_and_export_as_prometheus() {
    let broker = Mosquitto::start();
    let cfg =
        config(url(broker.port()), "metrics", "m/#", QoS::AtLeastOnce).with_redelivery_delay(ms(1));
    let mut source = Source::connect(cfg).await.unwrap();
    let p = publisher(broker.port()).await;
    for i in 0..10 {
        publish(&p, "m/x", format!("{i:02}")).await;
    }
    let mut acked = 0;
    let mut nacked = 0;
    while acked < 10 {
        let m = next(&mut source).await;
        if m.delivery_attempt() == 1 && m.payload().as_ref() < b"03".as_slice() {
            m.nack();
            nacked += 1;
        } else {
            m.ack().unwrap();
            acked += 1;
        }
    }
    let snapshot = source.metrics().snapshot();
    assert_eq!(
        (
            snapshot.received,
            snapshot.received_bytes,
            snapshot.acked,
            snapshot.nacked,
            snapshot.redelivered,
            snapshot.in_flight,
            snapshot.connections
        ),
        (10, 20, 10, nacked, nacked, 0, 1)
    );
    assert_eq!(snapshot.processed, 10);
    let text = source.metrics().prometheus();
    for line in [
        "mqtt_source_received_total 10",
        "mqtt_source_acked_total 10",
        "mqtt_source_in_flight 0",
        "mqtt_source_connections 1",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(
        text.contains("mqtt_source_processing_seconds_count 10"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&source.metrics().to_json()).unwrap();
    assert_eq!(json["nacked"], nacked);
    let health = source.handle().health();
    assert!(health.is_healthy(), "{health:?}");
    let totals = source.shutdown().await;
    assert_eq!((totals.connections, totals.disconnections), (0, 1));
}

#[tokio::test]
async fn a_half_open_connection_is_found_by_keep_alive_and_replaced() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let cfg = config(
        format!("mqtt://{}", proxy.addr()),
        "halfopen",
        "r/half",
        QoS::AtLeastOnce,
    )
    .with_keep_alive(1)
    .with_ping_timeout(ms(500));
    let mut source = Source::connect(cfg).await.unwrap();
    // Nothing comes back any more, and nothing is closed: a half-open connection.
    proxy.set(Dir::ToClient, client_common::Mode::Hold);
    metrics_until(&source, "the lost connection noticed", |m| {
        m.disconnections >= 1
    })
    .await;
    proxy.pass();
    metrics_until(&source, "a new connection", |m| m.connects >= 2).await;
    let p = publisher(broker.port()).await;
    publish(&p, "r/half", "after").await;
    let m = next(&mut source).await;
    assert_eq!(m.payload().as_ref(), b"after");
    m.ack().unwrap();
    source.shutdown().await;
}

#[tokio::test]
async fn the_sink_retries_what_may_pass_and_hands_back_what_failed() {
    use mqtt_client::codec::ReasonCode;
    let port = refusing_server(|t| {
        if t.starts_with("quota/") {
            Some(ReasonCode::QUOTA_EXCEEDED)
        } else if t.starts_with("denied/") {
            Some(ReasonCode::NOT_AUTHORIZED)
        } else {
            None
        }
    })
    .await;
    let (client, _incoming) = Client::connect(
        Options::new("sinker"),
        Tcp::new(format!("127.0.0.1:{port}")),
    )
    .await
    .unwrap();
    let options = SinkOptions::default()
        .with_retries(2)
        .with_retry_backoff(ms(1), ms(2));
    let sink = Sink::new(client.clone(), options, |t: &&str| Outgoing::new(*t, "x"));
    assert!(sink.send("ok/1").await.is_ok());
    // Over quota: tried 1 + 2 times, then handed back.
    let e = sink.send("quota/1").await.unwrap_err();
    assert_eq!((e.item, e.attempts), ("quota/1", 3));
    assert!(
        matches!(e.error, mqtt_client::PublishError::Rejected { reason, .. } if reason == ReasonCode::QUOTA_EXCEEDED)
    );
    // Not authorized: not retried.
    let e = sink.send("denied/1").await.unwrap_err();
    assert_eq!((e.item, e.attempts), ("denied/1", 1));
    // Invalid as it is: not retried.
    let e = sink.send("bad/#").await.unwrap_err();
    assert_eq!(e.attempts, 1);
    // In a stream: what failed comes back, the rest is published.
    let report = sink
        .send_all(futures_util::stream::iter([
            "ok/2", "denied/2", "ok/3", "quota/2",
        ]))
        .await;
    assert_eq!(report.published, 2);
    let mut failed: Vec<&str> = report.failed.iter().map(|e| e.item).collect();
    failed.sort_unstable();
    assert_eq!(failed, ["denied/2", "quota/2"]);
    // A closed client: handed back at once.
    client.disconnect().await.unwrap();
    let e = sink.send("ok/4").await.unwrap_err();
    assert_eq!((e.item, e.attempts), ("ok/4", 1));
}

#[tokio::test]
async fn mqtt5_properties_reach_the_message() {
    use mqtt_client::codec::packet::Publish;
    use mqtt_client::codec::{MqttString, PublishProperties, UserProperty};
    let broker = Mosquitto::start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "props",
        "props/#",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let p = publisher(broker.port()).await;
    let properties = PublishProperties {
        content_type: Some(MqttString::try_from("application/json").unwrap()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-1")),
        response_topic: Some(MqttString::try_from("props/reply").unwrap()),
        message_expiry_interval: Some(3600),
        payload_format_indicator: Some(1),
        user_properties: vec![UserProperty::new("site", "plant-7").unwrap()],
        ..PublishProperties::default()
    };
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: MqttString::try_from("props/x").unwrap(),
        packet_id: None,
        properties: Some(Box::new(properties)),
        payload: bytes::Bytes::from_static(b"{}"),
    };
    within(WAIT, "PUBACK", p.publish_with(publish).await.unwrap())
        .await
        .unwrap();
    let m = next(&mut source).await;
    assert_eq!(m.content_type(), Some("application/json"));
    assert_eq!(
        m.correlation_data().map(|b| b.as_ref()),
        Some(&b"corr-1"[..])
    );
    assert_eq!(m.response_topic(), Some("props/reply"));
    assert!(m.message_expiry().is_some_and(|s| s <= 3600 && s > 3500));
    assert_eq!(m.payload_format(), Some(1));
    assert_eq!(
        m.user_properties().collect::<Vec<_>>(),
        [("site", "plant-7")]
    );
    assert!(m.received_at() <= std::time::SystemTime::now());
    assert_eq!(
        (m.client_id(), m.connection_index(), m.delivery_attempt()),
        ("props", 0, 1)
    );
    m.ack().unwrap();
    source.shutdown().await;
}

#[tokio::test]
async fn a_dead_letter_the_broker_cannot_take_does_not_stall_the_connection() {
    // The dead letter (payload plus its user properties) is larger than the
    // broker takes: the client refuses it before sending, for good.
    let broker = Mosquitto::builder()
        .config_line("max_packet_size 120")
        .start();
    let cfg = config(url(broker.port()), "dlq-big", "big/in", QoS::AtLeastOnce)
        .with_max_deliveries(1)
        .with_dead_letter_topic("dlq/a-rather-long-dead-letter-topic-name");
    let mut source = Source::connect(cfg).await.unwrap();
    let p = publisher(broker.port()).await;
    publish(&p, "big/in", "x".repeat(60)).await;
    publish(&p, "big/in", "m1").await;
    next(&mut source).await.nack_with("poison");
    let m1 = next(&mut source).await;
    assert_eq!(m1.payload().as_ref(), b"m1");
    m1.ack().unwrap();
    metrics_until(&source, "the poison acked", |m| m.poison_acked == 1).await;
    let totals = source.shutdown().await;
    assert_eq!(totals.dead_lettered, 0);
    // Both acks reached the broker: nothing comes back on the resumed session.
    let mut again = Source::connect(config(
        url(broker.port()),
        "dlq-big",
        "big/in",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    nothing(&mut again, "after both were acked").await;
    again.shutdown().await;
}

#[tokio::test]
async fn messages_cut_off_by_the_shutdown_timeout_are_not_acked() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "cutoff", "cut/off", QoS::AtLeastOnce)
        .with_on_failure(OnFailure::Ack)
        .with_shutdown_timeout(ms(200));
    let source = Source::connect(cfg).await.unwrap();
    let handle = source.handle();
    let p = publisher(broker.port()).await;
    publish(&p, "cut/off", "slow").await;
    let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = tokio::spawn(source.run(1, move |_m: Message| {
        let _ = started.send(());
        // A handler that never finishes.
        std::future::pending::<Result<(), &'static str>>()
    }));
    within(WAIT, "handler started", started_rx.recv())
        .await
        .unwrap();
    handle.shutdown();
    let totals = within(WAIT, "run returns", runner).await.unwrap();
    assert_eq!((totals.acked, totals.poison_acked), (0, 0), "{totals:?}");
    let mut again = Source::connect(config(
        url(broker.port()),
        "cutoff",
        "cut/off",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let m = next(&mut again).await;
    assert_eq!((m.payload().as_ref(), m.dup()), (&b"slow"[..], true));
    m.ack().unwrap();
    again.shutdown().await;
}

#[tokio::test]
async fn attempts_without_a_connack_do_not_count_as_connections() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let cfg = config(
        format!("mqtt://{}", proxy.addr()),
        "gauge",
        "g/#",
        QoS::AtLeastOnce,
    )
    .with_connect_timeout(ms(100));
    let source = Source::connect(cfg).await.unwrap();
    // Every new attempt opens TCP but never gets its CONNACK.
    proxy.set(Dir::ToClient, client_common::Mode::Hold);
    proxy.cut();
    within(WAIT, "several failed attempts", async {
        while proxy.connections() < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let m = source.metrics().snapshot();
    assert_eq!((m.connections, m.disconnections), (0, 1), "{m:?}");
    assert!(!source.handle().health().is_healthy());
    proxy.pass();
    metrics_until(&source, "reconnected", |m| m.connections == 1).await;
    assert!(source.handle().health().is_healthy());
    source.shutdown().await;
}

#[tokio::test]
async fn a_dropped_next_batch_loses_nothing() {
    let broker = Mosquitto::start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "cancel",
        "c/x",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let p = publisher(broker.port()).await;
    for i in 0..3 {
        publish(&p, "c/x", format!("m{i}")).await;
    }
    // Waits for 10 for a long time; dropped while it holds 3.
    let cancelled =
        tokio::time::timeout(QUIET, source.next_batch(10, Duration::from_secs(60))).await;
    assert!(cancelled.is_err(), "the batch should still be filling");
    let batch = within(WAIT, "the kept batch", source.next_batch(3, ms(10))).await;
    let payloads: Vec<&[u8]> = batch.iter().map(|m| m.payload().as_ref()).collect();
    assert_eq!(payloads, [&b"m0"[..], b"m1", b"m2"]);
    for m in batch {
        m.ack().unwrap();
    }
    let totals = source.shutdown().await;
    assert_eq!(
        (totals.acked, totals.nacked, totals.dropped_unacked),
        (3, 0, 0)
    );
}
