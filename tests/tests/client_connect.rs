//! Connection-level behaviour against a real mosquitto: credentials (refused
//! with a typed reason, accepted when right), the server's Maximum Packet Size
//! (refused before sending, connection still usable), the will message (not on a
//! normal disconnect; on DISCONNECT 0x04 and on a lost connection), and
//! keep-alive (an idle client stays connected; so does one whose application is
//! not taking messages).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use client_common::{
    assert_no_message, assert_one_connection, fast_backoff, ms, password_file, recv, wait_event,
    within, Proxy, TempDir, QUIET, WAIT,
};
use mqtt_client::codec::{
    DisconnectProperties, LastWill, Publish, PublishProperties, ReasonCode, UserProperty,
    WillProperties,
};
use mqtt_client::{
    Backoff, Client, ConnectionError, ConnectionEvent, Incoming, Options, ProtocolVersion,
    PublishError, QoS, RefusalKind, Tcp,
};
use mqtt_tests::broker::Mosquitto;

async fn connect(options: Options, addr: &str) -> (Client, Incoming) {
    let id = options.client_id().to_owned();
    within(WAIT, "connect", Client::connect(options, Tcp::new(addr)))
        .await
        .unwrap_or_else(|e| panic!("{id} could not connect: {e}"))
}

// ----- credentials ---------------------------------------------------------------

fn secured_broker(dir: &TempDir) -> Mosquitto {
    let file = password_file(dir, "alice", "s3cret");
    Mosquitto::builder()
        .config_line(format!("password_file {}", file.display()))
        .config_line("allow_anonymous false")
        .start()
}

/// What the first connection attempt gives, within 2 s: a refusal is final, the
/// client does not retry behind the caller's back.
async fn refused(options: Options, addr: &str) -> ConnectionError {
    let started = Instant::now();
    let result = within(
        WAIT,
        "a refused connect",
        Client::connect(options.with_reconnect(fast_backoff()), Tcp::new(addr)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "connect retried"
    );
    match result {
        Ok(_) => panic!("connected with wrong credentials"),
        Err(e) => e,
    }
}

async fn credentials(version: ProtocolVersion) {
    let dir = TempDir::new("passwd");
    let broker = secured_broker(&dir);
    let addr = broker.addr().to_string();
    let base = |id: &str| Options::new(id).with_version(version);

    // mosquitto 2.0.11 answers a wrong password, an unknown user and a missing
    // user name alike: 0x87 Not authorized (3.1.1: return code 5), never 0x86 Bad
    // User Name or Password (3.1.1: 4).
    for (what, options) in [
        (
            "wrong password",
            base("wrong").with_credentials("alice", "wrong"),
        ),
        (
            "unknown user",
            base("nobody").with_credentials("mallory", "s3cret"),
        ),
        ("no credentials", base("anonymous")),
    ] {
        match refused(options, &addr).await {
            ConnectionError::Refused(r) => {
                assert_eq!(r.kind, RefusalKind::NotAuthorized, "{what}: {r}");
                assert_eq!(r.reason, ReasonCode::NOT_AUTHORIZED, "{what}");
                assert!(r.is_fatal(), "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // `Client::start` retries nothing either: the refusal closes the client.
    let (client, _incoming) = Client::start(
        base("started")
            .with_credentials("alice", "nope")
            .with_reconnect(fast_backoff()),
        Tcp::new(&addr),
    )
    .unwrap();
    within(WAIT, "the started client to close", client.closed()).await;
    assert!(
        matches!(
            client.closed_reason(),
            Some(ConnectionError::Refused(ref r)) if r.kind == RefusalKind::NotAuthorized
        ),
        "{:?}",
        client.closed_reason()
    );

    // The right credentials connect, and the connection works.
    let (good, mut incoming) =
        connect(base("good").with_credentials("alice", "s3cret"), &addr).await;
    good.subscribe("auth/t", QoS::AtLeastOnce).await.unwrap();
    good.publish("auth/t", QoS::AtLeastOnce, false, "in")
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert_eq!(&m.payload()[..], b"in");
    m.ack().unwrap();
    good.disconnect().await.unwrap();
}

#[tokio::test]
async fn credentials_v5() {
    credentials(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn credentials_v311() {
    credentials(ProtocolVersion::V311).await;
}

// ----- Maximum Packet Size ---------------------------------------------------------

/// A PUBLISH of `payload_len` bytes to topic "t" at QoS 1: 1 byte of fixed
/// header, 2 of remaining length (>= 128), topic 2 + 1, packet identifier 2,
/// property length 1.
fn publish_size(payload_len: usize) -> usize {
    1 + 2 + 3 + 2 + 1 + payload_len
}

/// `max_packet_size 1000`: mosquitto advertises it in CONNACK; a PUBLISH of 1001
/// bytes is refused before anything is sent and the connection stays up; one
/// of exactly 1000 bytes goes through.
#[tokio::test]
async fn server_maximum_packet_size_refused_before_sending() {
    let broker = Mosquitto::builder()
        .config_line("max_packet_size 1000")
        .start();
    let addr = broker.addr().to_string();
    let (client, mut incoming) = connect(Options::new("big"), &addr).await;
    let mut events = client.events();
    assert_eq!(client.server().maximum_packet_size(), Some(1000));
    client.subscribe("t", QoS::AtLeastOnce).await.unwrap();

    let fits = 1000 - publish_size(0);
    assert_eq!(publish_size(fits), 1000);
    for (len, qos) in [(fits + 1, QoS::AtLeastOnce), (10_000, QoS::AtMostOnce)] {
        let result = match client.publish("t", qos, false, vec![b'x'; len]).await {
            Ok(handle) => within(WAIT, "the refused handle", handle).await,
            Err(e) => Err(e),
        };
        match result {
            Err(PublishError::PacketTooLarge { size, maximum }) => {
                assert_eq!(maximum, 1000);
                assert!(size > 1000, "size {size}");
                if qos == QoS::AtLeastOnce {
                    assert_eq!(size, 1001);
                }
            }
            other => panic!("a {len}-byte payload: {other:?}"),
        }
    }
    // The same connection still works, up to the limit exactly.
    let payload = Bytes::from(vec![b'y'; fits]);
    client
        .publish("t", QoS::AtLeastOnce, false, payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert_eq!(m.payload(), &payload);
    m.ack().unwrap();
    assert_one_connection(&client, &mut events);
    assert!(
        !broker.log().contains("disconnected due to"),
        "the broker saw an oversized packet:\n{}",
        broker.log()
    );
    client.disconnect().await.unwrap();
}

// ----- will --------------------------------------------------------------------

fn will(version: ProtocolVersion, payload: &'static str) -> LastWill {
    let properties = match version {
        ProtocolVersion::V5 => WillProperties {
            content_type: Some("text/plain".try_into().unwrap()),
            user_properties: vec![UserProperty::new("why", "gone").unwrap()],
            ..WillProperties::default()
        },
        ProtocolVersion::V311 => WillProperties::default(),
    };
    LastWill {
        topic: "will/t".try_into().unwrap(),
        payload: Bytes::from_static(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties,
    }
}

async fn watcher(addr: &str, version: ProtocolVersion) -> (Client, Incoming) {
    let (c, i) = connect(Options::new("watcher").with_version(version), addr).await;
    c.subscribe("will/#", QoS::AtLeastOnce).await.unwrap();
    (c, i)
}

async fn will_messages(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (watch, mut wills) = watcher(&addr, version).await;
    let with_will = |id: &str, payload| {
        Options::new(id)
            .with_version(version)
            .with_will(will(version, payload))
            .with_reconnect(Backoff::default().with_enabled(false))
    };

    // A normal disconnect discards the will [MQTT-3.1.2-10].
    let (normal, _) = connect(with_will("normal", "normal"), &addr).await;
    normal.disconnect().await.unwrap();
    assert!(normal.is_closed());
    assert_no_message(&mut wills, QUIET, "will after a normal disconnect").await;

    // MQTT 5: DISCONNECT 0x04 asks for the will. 3.1.1 has no reason code: the
    // client sends a plain DISCONNECT, and there is no will.
    let (asked, _) = connect(with_will("asked", "asked"), &addr).await;
    asked
        .disconnect_with(
            ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            DisconnectProperties::EMPTY,
        )
        .await
        .unwrap();
    assert!(asked.is_closed());
    if version == ProtocolVersion::V5 {
        let mut m = recv(&mut wills).await;
        assert_eq!((m.topic(), &m.payload()[..]), ("will/t", &b"asked"[..]));
        assert_eq!(m.qos(), QoS::AtLeastOnce);
        assert_eq!(m.properties().content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            m.properties().user_properties,
            vec![UserProperty::new("why", "gone").unwrap()]
        );
        m.ack().unwrap();
    }
    assert_no_message(&mut wills, QUIET, "one will at most").await;

    // The broker finds the connection gone (no DISCONNECT): the will is published.
    let proxy = Proxy::start(broker.addr()).await;
    // (`lost` is kept: dropping the last handle disconnects normally.)
    let (lost, _) = connect(with_will("lost", "lost"), &proxy.addr()).await;
    proxy.cut();
    within(WAIT, "the client to notice", lost.closed()).await;
    let mut m = recv(&mut wills).await;
    assert_eq!((m.topic(), &m.payload()[..]), ("will/t", &b"lost"[..]));
    m.ack().unwrap();
    assert_no_message(&mut wills, QUIET, "after the lost connection's will").await;
    watch.disconnect().await.unwrap();
}

#[tokio::test]
async fn will_messages_v5() {
    will_messages(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn will_messages_v311() {
    will_messages(ProtocolVersion::V311).await;
}

/// Reconnection off, connection lost: the client closes, and says so
/// (`Disconnected` then `Closed` events, `closed_reason`).
#[tokio::test]
async fn lost_connection_without_reconnect_is_reported() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let (client, _incoming) = connect(
        Options::new("once").with_reconnect(Backoff::default().with_enabled(false)),
        &proxy.addr(),
    )
    .await;
    let mut events = client.events();
    // A QoS 1 publish that can never complete (its PUBACK is held back).
    proxy.set(client_common::Dir::ToClient, client_common::Mode::Hold);
    let handle = client
        .publish("t", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    proxy
        .wait_frame("the PUBLISH", |f| {
            f.packet_type() == client_common::packet_type::PUBLISH
        })
        .await;
    proxy.cut();
    let (event, _) = wait_event(&mut events, WAIT, "Disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected(_))
    })
    .await;
    assert!(
        matches!(
            event,
            ConnectionEvent::Disconnected(
                ConnectionError::TransportClosed | ConnectionError::Io(_)
            )
        ),
        "{event:?}"
    );
    wait_event(&mut events, WAIT, "Closed", |e| {
        matches!(e, ConnectionEvent::Closed(_))
    })
    .await;
    assert!(client.is_closed());
    assert!(
        matches!(
            client.closed_reason(),
            Some(ConnectionError::TransportClosed | ConnectionError::Io(_))
        ),
        "{:?}",
        client.closed_reason()
    );
    assert!(matches!(
        within(WAIT, "the handle", handle).await,
        Err(PublishError::Closed)
    ));
}

// ----- keep-alive ----------------------------------------------------------------

/// Keep Alive 1 s, idle for 3 s: mosquitto closes a client silent for 1.5 s, so
/// only PINGREQs keep this one connected (and its will unpublished).
async fn keep_alive_idle(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (watch, mut wills) = watcher(&addr, version).await;
    let (idle, mut incoming) = connect(
        Options::new("idle")
            .with_version(version)
            .with_keep_alive(1)
            .with_will(will(version, "idle")),
        &addr,
    )
    .await;
    let mut events = idle.events();
    idle.subscribe("idle/t", QoS::AtLeastOnce).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_one_connection(&idle, &mut events);
    assert_no_message(&mut wills, ms(10), "the idle client's will").await;
    let log = broker.log();
    assert!(!log.contains("exceeded timeout"), "{log}");
    assert!(
        log.matches("Received PINGREQ from idle").count() >= 2,
        "PINGREQs were sent:\n{log}"
    );
    // Still usable.
    idle.publish("idle/t", QoS::AtLeastOnce, false, "awake")
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert_eq!(&m.payload()[..], b"awake");
    m.ack().unwrap();
    idle.disconnect().await.unwrap();
    watch.disconnect().await.unwrap();
}

#[tokio::test]
async fn keep_alive_idle_client_stays_connected_v5() {
    keep_alive_idle(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn keep_alive_idle_client_stays_connected_v311() {
    keep_alive_idle(ProtocolVersion::V311).await;
}

/// Keep Alive 1 s and an application that takes no message for 3 s while QoS 0
/// messages pour in, with `Qos0Overflow::PauseReading`: past its backlog the
/// client stops reading (TCP pushes back on the broker),
/// yet keeps sending PINGREQs and is not dropped; then every message arrives, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_survives_an_application_that_does_not_read() {
    const COUNT: usize = 3000;
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let options = Options::new("slow")
        .with_keep_alive(1)
        .with_qos0_overflow(mqtt_client::Qos0Overflow::PauseReading);
    let (slow, mut incoming) = connect(options, &addr).await;
    let mut events = slow.events();
    slow.subscribe("flood", QoS::AtMostOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("flooder"), &addr).await;
    let payload = Bytes::from(vec![b'z'; 1000]);
    for i in 0..COUNT {
        let properties = PublishProperties {
            user_properties: vec![UserProperty::new("i", &i.to_string()).unwrap()],
            ..PublishProperties::default()
        };
        publisher
            .publish_with(Publish {
                topic: "flood".try_into().unwrap(),
                properties: Some(Box::new(properties)),
                payload: payload.clone(),
                ..Publish::default()
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_one_connection(&slow, &mut events);
    let log = broker.log();
    assert!(!log.contains("exceeded timeout"), "{log}");
    for i in 0..COUNT {
        let m = recv(&mut incoming).await;
        assert_eq!(
            m.properties().user_properties[0].value.as_str(),
            i.to_string(),
            "QoS 0 in order, none lost"
        );
    }
    assert_one_connection(&slow, &mut events);
    slow.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}
