//! The tokio driver and the public handles against a scripted in-process server
//! (`driver_common`): a server that stops reading, that is down, that never
//! acknowledges, that floods, that breaks the protocol — on demand, which no real
//! broker does. Each test is a behaviour the driver must keep: bounded final
//! flush, disconnect never stuck behind a waiting publish, invalid acks refused
//! synchronously, CONNACK read while the application is behind, QoS 0 completed
//! only once written, invalid options refused at start, drop of every handle
//! disconnecting, acks in receipt order and never across connections, and
//! protocol violations answered with the right DISCONNECT and a reconnection.
//!
//! Every test runs on tokio's paused clock, which drives the driver and its
//! engine too (keep-alive, ping and connect timeouts, backoff, flush limit): the
//! timings asserted are exact in virtual time, and waits for something that must
//! not happen cost no real time (see `driver_common`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod driver_common;

use std::time::Duration;

use driver_common::{
    ack, ack_of, assert_matches, connected, fast_backoff, next_event, pass, publish, settle,
    wait_event, within, Next, Server, QUIET, WAIT,
};
use mqtt_client::{
    AckError, Client, ConnectionError, ConnectionEvent, Options, ProtocolVersion, PublishError,
    QoS, Qos0Overflow, RequestError, Violation,
};
use mqtt_codec::packet::{ConnAck, LastWill, Packet};
use mqtt_codec::property::{AckProperties, DisconnectProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use tokio::time::Instant;

/// Options with this client id and the fast reconnection schedule.
fn options(id: &str) -> Options {
    Options::new(id).with_reconnect(fast_backoff())
}

/// The reason code of a DISCONNECT, or a failure.
fn disconnect_reason(packet: &Packet) -> u8 {
    match packet {
        Packet::Disconnect(d) => d.reason_code.0,
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

/// The `ConnectionError` of the next `Disconnected` event (within `limit`).
async fn next_disconnected(
    events: &mut tokio::sync::broadcast::Receiver<ConnectionEvent>,
    limit: Duration,
) -> (ConnectionError, Vec<ConnectionEvent>) {
    wait_event(events, limit, |e| match e {
        ConnectionEvent::Disconnected(error) => Some(error.clone()),
        _ => None,
    })
    .await
}

// ----- 1. the final flush is bounded ---------------------------------------------

/// Keep-alive 1 s, ping timeout 1 s (so the final flush may take 1 s): the server
/// accepts, then never reads while the client has 64 KiB of QoS 0 data queued over
/// a 1 KiB pipe. The PINGREQ is never read either: the connection ends with
/// `KeepAliveTimeout` about keep-alive + ping timeout + flush limit (3 s) after the
/// last write, although the server never reads again; the unwritten QoS 0
/// publishes fail with `ConnectionLost`, and `disconnect` returns at once.
#[tokio::test(start_paused = true)]
async fn dead_connection_found_although_the_final_flush_cannot_complete() {
    let mut opts = options("flush-keepalive").with_keep_alive(1);
    opts = opts.with_ping_timeout(Duration::from_secs(1));
    let (client, _incoming, _server, mut conn) = connected(opts, 1024).await;
    let mut events = client.events();

    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..8 {
        let publish = client.publish("bulk", QoS::AtMostOnce, false, vec![0u8; 8192]);
        handles.push(within(WAIT, "publish accepted", publish).await.unwrap());
    }
    // The server reads nothing from here on.
    let (error, skipped) = next_disconnected(&mut events, Duration::from_secs(4)).await;
    let elapsed = start.elapsed();
    assert_matches!(error, ConnectionError::KeepAliveTimeout);
    assert!(skipped.is_empty(), "events before it: {skipped:?}");
    // Virtual time: exact, but for the clock's millisecond granularity.
    assert!(
        elapsed >= Duration::from_secs(2),
        "found dead before keep-alive + ping timeout: {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_millis(3100),
        "keep-alive + ping timeout + flush limit is 3 s; took {elapsed:?}"
    );
    for handle in handles {
        assert_matches!(
            within(WAIT, "QoS 0 handle", handle).await,
            Err(PublishError::ConnectionLost)
        );
    }
    // The client really let go of the connection: what the pipe held, then EOF.
    let read = conn.drain_to_eof().await;
    assert!(
        read < 8 * 8192,
        "the server read {read} bytes it never asked for"
    );

    within(Duration::from_secs(1), "disconnect", client.disconnect())
        .await
        .unwrap();
    assert!(client.is_closed());
    assert_matches!(
        client.closed_reason(),
        Some(ConnectionError::LocalDisconnect)
    );
}

/// The same stuck server, and the application disconnects: DISCONNECT is queued
/// behind 64 KiB nobody reads. `disconnect` returns after the flush limit
/// (`min(ping_timeout, 5 s)` = 1 s), not when the server reads again; the unwritten
/// QoS 0 publishes fail with `ConnectionLost`.
#[tokio::test(start_paused = true)]
async fn disconnect_returns_after_the_flush_limit_when_the_server_stopped_reading() {
    let mut opts = options("flush-disconnect");
    opts = opts.with_ping_timeout(Duration::from_secs(1));
    let (client, _incoming, _server, mut conn) = connected(opts, 1024).await;

    let mut handles = Vec::new();
    for _ in 0..8 {
        let publish = client.publish("bulk", QoS::AtMostOnce, false, vec![0u8; 8192]);
        handles.push(within(WAIT, "publish accepted", publish).await.unwrap());
    }
    // Let the driver take them from the queue and block on the pipe (otherwise
    // the disconnect overtakes them, and they end with `Closed`). Nothing outside
    // the driver tells when it has: the test waits until every task is blocked.
    settle().await;
    let start = Instant::now();
    within(Duration::from_secs(2), "disconnect", client.disconnect())
        .await
        .unwrap();
    let elapsed = start.elapsed();
    // Virtual time: exact, but for the clock's millisecond granularity.
    assert!(
        elapsed >= Duration::from_secs(1),
        "returned before the flush limit although nothing could be written: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1100),
        "returned after the flush limit (1 s): {elapsed:?}"
    );
    assert!(client.is_closed());
    for handle in handles {
        assert_matches!(
            within(WAIT, "QoS 0 handle", handle).await,
            Err(PublishError::ConnectionLost)
        );
    }
    let read = conn.drain_to_eof().await;
    assert!(read < 8 * 8192, "the server read {read} bytes");
}

// ----- 2. disconnect never waits behind a command -------------------------------

/// The broker is down (every `connect()` fails, `Client::start` retries). A
/// window of 1 and a request queue of 1: the first QoS 1 publish is taken by the
/// driver and waits for a connection, the second waits in the queue (both calls
/// return a handle), a third call waits for room in the queue. `disconnect`
/// returns at once; the two handles and the third call end with `Closed`.
#[tokio::test(start_paused = true)]
async fn disconnect_while_the_broker_is_down_and_publishes_wait() {
    let (connector, server) = Server::new(4096);
    server.fail_connects(true);
    let (client, mut incoming) = Client::start(
        options("down")
            .with_receive_maximum(1)
            .with_max_inflight(1)
            .with_request_queue(1),
        connector,
    )
    .expect("valid options");
    let mut events = client.events();
    // The first attempt failed; the client retries.
    let (attempt, _) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::Reconnecting { attempt, .. } => Some(*attempt),
        _ => None,
    })
    .await;
    assert_eq!(attempt, 1);
    assert!(server.attempts() >= 1);

    let publish = client.publish("t", QoS::AtLeastOnce, false, "1");
    let first = within(WAIT, "publish 1 queued", publish).await.unwrap();
    let publish = client.publish("t", QoS::AtLeastOnce, false, "2");
    let second = within(WAIT, "publish 2 queued", publish).await.unwrap();
    let mut third = tokio::spawn({
        let client = client.clone();
        async move { client.publish("t", QoS::AtLeastOnce, false, "3").await }
    });
    assert!(
        tokio::time::timeout(QUIET, &mut third).await.is_err(),
        "the request queue of 1 is full"
    );

    within(Duration::from_secs(1), "disconnect", client.disconnect())
        .await
        .unwrap();
    assert_matches!(
        within(WAIT, "handle 1", first).await,
        Err(PublishError::Closed)
    );
    assert_matches!(
        within(WAIT, "handle 2", second).await,
        Err(PublishError::Closed)
    );
    assert_matches!(
        within(WAIT, "publish 3", third).await.unwrap(),
        Err(PublishError::Closed)
    );
    assert!(client.is_closed());
    assert_matches!(
        client.closed_reason(),
        Some(ConnectionError::LocalDisconnect)
    );
    let (error, _) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::Closed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_matches!(error, ConnectionError::LocalDisconnect);
    assert_matches!(
        client.publish("t", QoS::AtLeastOnce, false, "4").await,
        Err(PublishError::Closed)
    );
    assert!(within(WAIT, "Incoming ends", incoming.recv())
        .await
        .is_none());
}

/// The broker's host drops the SYN: the connect attempt hangs until the connect
/// timeout (10 s by default). `disconnect` must not wait for it.
#[tokio::test(start_paused = true)]
async fn disconnect_during_a_hanging_connect_attempt() {
    let (connector, server) = Server::new(4096);
    server.hang_connects(true);
    let (client, _incoming) = Client::start(options("hanging"), connector).unwrap();
    server.wait_attempts(1).await;
    within(Duration::from_secs(1), "disconnect", client.disconnect())
        .await
        .unwrap();
    assert!(client.is_closed());
}

/// Connected, window of 1, the server never sends PUBACK: one publish in flight,
/// one taken by the driver waiting for room, one in the queue. `disconnect`
/// returns at once, the server reads DISCONNECT (0x00) then EOF, and every handle
/// ends with `Closed`.
#[tokio::test(start_paused = true)]
async fn disconnect_with_a_full_window() {
    let (client, _incoming, _server, mut conn) = connected(
        options("full-window")
            .with_receive_maximum(1)
            .with_max_inflight(1)
            .with_request_queue(1),
        64 * 1024,
    )
    .await;

    let mut handles = Vec::new();
    for n in 0..3 {
        let publish = client.publish("t", QoS::AtLeastOnce, false, vec![n]);
        handles.push(
            within(WAIT, "publish queued", publish)
                .await
                .expect("queued"),
        );
    }
    assert_matches!(conn.recv().await, Packet::Publish(p) if p.payload[..] == [0]);
    // The window is full: nothing else goes out.
    conn.assert_silent(QUIET).await;

    within(Duration::from_secs(1), "disconnect", client.disconnect())
        .await
        .unwrap();
    let rest = conn.until_closed().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(disconnect_reason(&rest[0]), 0x00);
    for handle in handles {
        assert_matches!(
            within(WAIT, "handle", handle).await,
            Err(PublishError::Closed)
        );
    }
}

/// The application is behind: of 200 QoS 0 messages sent, 100 fill `Incoming`
/// and the driver keeps the rest (within `qos0_backlog`). `disconnect` must still
/// return at once, and every message the driver read still reaches the
/// application, in order: all 200.
#[tokio::test(start_paused = true)]
async fn disconnect_returns_promptly_while_the_application_is_behind() {
    let (client, mut incoming, _server, mut conn) =
        connected(options("behind-disconnect"), 64 * 1024).await;
    for n in 0..200u32 {
        conn.send(publish(QoS::AtMostOnce, 0, "t", n.to_be_bytes().to_vec()))
            .await;
    }
    // Let the driver read them all: nothing outside it tells when it has, so the
    // test waits until every task is blocked (the driver then on an empty pipe).
    settle().await;
    within(Duration::from_secs(1), "disconnect", client.disconnect())
        .await
        .unwrap();
    let mut received = Vec::new();
    while let Some(message) = within(WAIT, "Incoming", incoming.recv()).await {
        let seq: [u8; 4] = message.payload()[..].try_into().unwrap();
        received.push(u32::from_be_bytes(seq));
    }
    assert_eq!(
        received.len(),
        200,
        "all of them, beyond what the channel held"
    );
    let expected: Vec<u32> = (0..u32::try_from(received.len()).unwrap()).collect();
    assert_eq!(received, expected, "in order, none missing");
}

/// A reason code DISCONNECT cannot carry (0x02) is refused and the client goes
/// on: nothing is written, publishing still works, and a later disconnect with
/// a valid code (0x04, with will) goes out.
#[tokio::test(start_paused = true)]
async fn disconnect_with_an_invalid_reason_is_refused_and_the_client_goes_on() {
    let (client, _incoming, _server, mut conn) =
        connected(options("bad-disconnect"), 64 * 1024).await;
    let refused = client
        .disconnect_with(ReasonCode(0x02), DisconnectProperties::EMPTY)
        .await;
    assert_matches!(refused, Err(RequestError::Encode(_)));
    conn.assert_silent(QUIET).await;
    let handle = within(
        WAIT,
        "publish queued",
        client.publish("t", QoS::AtLeastOnce, false, "x"),
    )
    .await
    .unwrap();
    assert_matches!(conn.recv().await, Packet::Publish(p) if p.packet_id.is_some_and(|id| id.get() == 1));
    conn.send(Packet::PubAck(ack(1))).await;
    within(WAIT, "PUBACK", handle).await.unwrap();
    within(
        WAIT,
        "disconnect",
        client.disconnect_with(ReasonCode(0x04), DisconnectProperties::EMPTY),
    )
    .await
    .unwrap();
    let rest = conn.until_closed().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(disconnect_reason(&rest[0]), 0x04);
}

// ----- 3. invalid ack reason codes refused synchronously ------------------------

/// MQTT 5, two QoS 1 messages. 0x81 is no PUBACK reason code: `ack_with` refuses
/// it at once and leaves the token in the message (or gives it back, on
/// `AckToken::ack_with`), and nothing reaches the engine. The second message
/// acked (0x80, a valid refusal) before the first is held until the first is
/// acked; then the server reads both PUBACKs, in receipt order.
#[tokio::test(start_paused = true)]
async fn invalid_ack_reason_code_refused_at_once_v5() {
    let (client, mut incoming, _server, mut conn) = connected(options("ack-v5"), 64 * 1024).await;
    let mut events = client.events();
    conn.send(publish(QoS::AtLeastOnce, 1, "t", "a")).await;
    conn.send(publish(QoS::AtLeastOnce, 2, "t", "b")).await;
    let mut m1 = within(WAIT, "message 1", incoming.recv()).await.unwrap();
    let mut m2 = within(WAIT, "message 2", incoming.recv()).await.unwrap();

    assert_matches!(
        m1.ack_with(ReasonCode(0x81), AckProperties::EMPTY),
        Err(AckError::InvalidReasonCode)
    );
    let t1 = m1
        .take_ack_token()
        .expect("the token is left in the message");
    assert_eq!(t1.packet_id().get(), 1);

    let t2 = m2.take_ack_token().unwrap();
    assert_matches!(t2.check(ReasonCode(0x81)), Err(AckError::InvalidReasonCode));
    assert_matches!(t2.check(ReasonCode::UNSPECIFIED_ERROR), Ok(()));
    let failed = t2
        .ack_with(ReasonCode(0x81), AckProperties::EMPTY)
        .expect_err("0x81 is no PUBACK reason code");
    assert_eq!(failed.error, AckError::InvalidReasonCode);
    let t2 = failed.token.expect("the token comes back");
    conn.assert_silent(QUIET).await;

    // Acked out of order: held behind message 1.
    t2.ack_with(ReasonCode::UNSPECIFIED_ERROR, AckProperties::EMPTY)
        .unwrap();
    conn.assert_silent(QUIET).await;
    t1.ack().unwrap();
    let acks = [conn.recv().await, conn.recv().await];
    assert_eq!(
        acks.iter().map(ack_of).collect::<Vec<_>>(),
        [Some(("PUBACK", 1, 0x00)), Some(("PUBACK", 2, 0x80))]
    );
    // The connection went on undisturbed.
    assert_matches!(events.try_recv(), Err(_));
    assert_eq!(client.connection_number(), 1);
}

/// MQTT 3.1.1 has no reason code but success: every other one is refused for
/// PUBACK and PUBREC alike, and the tokens then ack normally.
#[tokio::test(start_paused = true)]
async fn non_success_ack_refused_in_3_1_1() {
    let opts = options("ack-v311").with_version(ProtocolVersion::V311);
    let (_client, mut incoming, _server, mut conn) = connected(opts, 64 * 1024).await;
    assert_eq!(conn.version(), ProtocolVersion::V311);
    conn.send(publish(QoS::AtLeastOnce, 1, "t", "a")).await;
    conn.send(publish(QoS::ExactlyOnce, 2, "t", "b")).await;
    let mut m1 = within(WAIT, "message 1", incoming.recv()).await.unwrap();
    let mut m2 = within(WAIT, "message 2", incoming.recv()).await.unwrap();

    for message in [&mut m1, &mut m2] {
        let token = message.take_ack_token().unwrap();
        assert_matches!(token.check(ReasonCode::SUCCESS), Ok(()));
        for code in [0x10, 0x80, 0x83, 0x87, 0x97] {
            assert_matches!(
                token.check(ReasonCode(code)),
                Err(AckError::InvalidReasonCode)
            );
        }
        let failed = token
            .ack_with(ReasonCode::UNSPECIFIED_ERROR, AckProperties::EMPTY)
            .expect_err("3.1.1 acks carry no reason code");
        assert_eq!(failed.error, AckError::InvalidReasonCode);
        let token = failed.token.expect("the token comes back");
        token.ack().unwrap();
    }
    let acks = [conn.recv().await, conn.recv().await];
    assert_eq!(
        acks.iter().map(ack_of).collect::<Vec<_>>(),
        [Some(("PUBACK", 1, 0x00)), Some(("PUBREC", 2, 0x00))]
    );
    conn.send(Packet::PubRel(ack(2))).await;
    assert_eq!(ack_of(&conn.recv().await), Some(("PUBCOMP", 2, 0x00)));
}

// ----- 4. CONNACK read while the application is behind ---------------------------

/// Manual acks, QoS 0 overflow pausing the reading, and the application reads
/// nothing. The server floods QoS 0 messages until the client stops reading,
/// then drops the connection. The client finds out (its PINGREQ cannot be
/// written), reconnects, and reads the new CONNACK although its application is
/// still behind: `Connected` arrives, no `ConnectTimeout`. The messages read
/// before are then all handed over, in order.
#[tokio::test(start_paused = true)]
async fn connack_read_while_the_application_is_behind() {
    let mut opts = options("behind").with_keep_alive(1);
    opts = opts.with_connect_timeout(Duration::from_secs(1));
    // With the default (`Drop`) the client never stops reading.
    opts = opts.with_qos0_overflow(Qos0Overflow::PauseReading);
    let (client, mut incoming, mut server, mut conn) = connected(opts, 8 * 1024).await;
    let mut events = client.events();

    let mut sent = 0u32;
    loop {
        let bytes = Packet::Publish(publish(
            QoS::AtMostOnce,
            0,
            "flood",
            sent.to_be_bytes().to_vec(),
        ))
        .to_bytes(ProtocolVersion::V5)
        .unwrap();
        if !conn
            .try_send_bytes(&bytes, Duration::from_millis(200))
            .await
        {
            break;
        }
        sent += 1;
        assert!(sent < 200_000, "the client never stopped reading");
    }
    drop(conn);

    let (error, _) = next_disconnected(&mut events, WAIT).await;
    assert_matches!(
        error,
        ConnectionError::Io(_) | ConnectionError::TransportClosed
    );
    let mut conn = server.accept_connack().await;
    let (session_present, skipped) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::Connected {
            session_present, ..
        } => Some(*session_present),
        _ => None,
    })
    .await;
    assert!(!session_present);
    assert_matches!(
        skipped.as_slice(),
        [ConnectionEvent::Reconnecting { attempt: 1, .. }]
    );
    assert_eq!(client.connection_number(), 2);
    // Up on the new connection, the application still behind.
    conn.assert_silent(QUIET).await;
    assert_matches!(events.try_recv(), Err(_));

    // What was read on the first connection comes through, in order, from 0.
    let mut received = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(QUIET, incoming.recv()).await {
        let n: [u8; 4] = message.payload()[..].try_into().unwrap();
        received.push(u32::from_be_bytes(n));
    }
    assert!(
        received.len() >= 100,
        "the client stopped reading early: {} messages",
        received.len()
    );
    assert!(received.len() <= sent as usize);
    assert!(
        received
            .iter()
            .copied()
            .eq(0..u32::try_from(received.len()).unwrap()),
        "out of order or with gaps"
    );
}

// ----- 5. QoS 0 handles complete once written -----------------------------------

/// A QoS 0 publish larger than the pipe does not complete while the server does
/// not read, and completes once it does. Another one whose connection is dropped
/// before it could be written ends with `ConnectionLost`.
#[tokio::test(start_paused = true)]
async fn qos0_publish_completes_only_once_written() {
    let (client, _incoming, _server, mut conn) = connected(options("qos0"), 1024).await;

    let mut handle = within(
        WAIT,
        "publish accepted",
        client.publish("big", QoS::AtMostOnce, false, vec![7u8; 4096]),
    )
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(QUIET, &mut handle).await.is_err(),
        "completed before the server read it"
    );
    assert_matches!(conn.recv().await, Packet::Publish(p) if p.payload.len() == 4096);
    let outcome = within(WAIT, "QoS 0 handle", handle).await.unwrap();
    assert!(outcome.packet_id.is_none());

    let mut handle = within(
        WAIT,
        "publish accepted",
        client.publish("big", QoS::AtMostOnce, false, vec![8u8; 4096]),
    )
    .await
    .unwrap();
    assert!(
        tokio::time::timeout(QUIET, &mut handle).await.is_err(),
        "completed before the server read it"
    );
    drop(conn);
    assert_matches!(
        within(WAIT, "QoS 0 handle", handle).await,
        Err(PublishError::ConnectionLost)
    );
}

// ----- 6. invalid options refused at start --------------------------------------

/// Options that cannot make a CONNECT — a client id or a user name with U+0000,
/// a will payload over 65,535 bytes, an empty 3.1.1 client id without clean
/// session — are
/// refused by `Client::connect` and `Client::start` with `InvalidOptions`, and the
/// connector is never called.
#[tokio::test(start_paused = true)]
async fn invalid_options_refused_at_start() {
    let will = LastWill {
        topic: MqttString::try_from("will").unwrap(),
        payload: vec![0u8; 70_000].into(),
        ..LastWill::default()
    };
    let cases = [
        ("client id with U+0000", Options::new("dev\0ice-42")),
        (
            "will payload of 70,000 bytes",
            Options::new("will").with_will(will),
        ),
        (
            "user name with U+0000",
            Options::new("user").with_credentials("us\0er", "secret"),
        ),
        (
            "empty 3.1.1 client id without clean session",
            Options::new("")
                .with_version(ProtocolVersion::V311)
                .with_clean_start(false),
        ),
    ];
    for (what, opts) in cases {
        let (connector, mut server) = Server::new(4096);
        let connect = Client::connect(opts.clone(), connector.clone());
        match within(WAIT, what, connect).await {
            Err(ConnectionError::InvalidOptions(_)) => {}
            Err(other) => panic!("{what}: connect failed with {other:?}"),
            Ok(_) => panic!("{what}: connect succeeded"),
        }
        match Client::start(opts, connector) {
            Err(ConnectionError::InvalidOptions(_)) => {}
            Err(other) => panic!("{what}: start failed with {other:?}"),
            Ok(_) => panic!("{what}: start succeeded"),
        }
        // Whatever may have been spawned gets to run.
        pass(QUIET).await;
        assert_eq!(server.attempts(), 0, "{what}: the connector was called");
        assert!(server.try_accept().is_none());
    }
}

/// `Client::connect` reports the first attempt's failure, and the client stops
/// there (no retry in the background).
#[tokio::test(start_paused = true)]
async fn connect_reports_the_first_failure_and_stops() {
    let (connector, server) = Server::new(4096);
    server.fail_connects(true);
    let connect = Client::connect(options("first-failure"), connector);
    match within(WAIT, "Client::connect", connect).await {
        Err(ConnectionError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        Err(other) => panic!("connect failed with {other:?}"),
        Ok(_) => panic!("connect succeeded"),
    }
    // Several times the largest backoff delay (200 ms).
    pass(Duration::from_secs(1)).await;
    assert_eq!(server.attempts(), 1);
}

// ----- 7. dropping every handle disconnects -------------------------------------

/// Window of 1, the server never acks: one publish in flight, one waiting in the
/// driver for room, one in the queue. Every `Client` is dropped: `Incoming` keeps
/// the connection up, and nothing happens. `Incoming` is dropped too: the server
/// reads DISCONNECT (0x00) then EOF, the handles end with `Closed`, and the client
/// closes.
#[tokio::test(start_paused = true)]
async fn dropping_every_handle_disconnects_while_a_publish_waits() {
    let (client, incoming, _server, mut conn) = connected(
        options("dropped")
            .with_receive_maximum(1)
            .with_max_inflight(1)
            .with_request_queue(1),
        64 * 1024,
    )
    .await;
    let mut events = client.events();
    let mut handles = Vec::new();
    for n in 0..3 {
        let publish = client.publish("t", QoS::AtLeastOnce, false, vec![n]);
        handles.push(
            within(WAIT, "publish queued", publish)
                .await
                .expect("queued"),
        );
    }
    assert_matches!(conn.recv().await, Packet::Publish(p) if p.payload[..] == [0]);
    conn.assert_silent(QUIET).await;

    let other = client.clone();
    drop(client);
    // One handle left: nothing happens.
    conn.assert_silent(QUIET).await;
    drop(other);
    // `Incoming` left: nothing happens either.
    conn.assert_silent(QUIET).await;
    drop(incoming);

    let rest = conn.until_closed().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(disconnect_reason(&rest[0]), 0x00);
    for handle in handles {
        assert_matches!(
            within(WAIT, "handle", handle).await,
            Err(PublishError::Closed)
        );
    }
    let (error, _) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::Closed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_matches!(error, ConnectionError::LocalDisconnect);
}

/// The broker is down and every `Client` is dropped: `Incoming` keeps the client
/// retrying. Once `Incoming` is dropped too, the client closes and stops retrying.
#[tokio::test(start_paused = true)]
async fn dropping_every_handle_while_the_broker_is_down_stops_the_client() {
    let (connector, server) = Server::new(4096);
    server.fail_connects(true);
    let (client, incoming) = Client::start(options("dropped-down"), connector).unwrap();
    let mut events = client.events();
    wait_event(&mut events, WAIT, |e| {
        matches!(e, ConnectionEvent::Reconnecting { .. }).then_some(())
    })
    .await;
    drop(client);
    // `Incoming` left: the client goes on trying.
    server.wait_attempts(server.attempts() + 1).await;
    drop(incoming);
    let (error, _) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::Closed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_matches!(error, ConnectionError::LocalDisconnect);
    let attempts = server.attempts();
    // Several times the largest backoff delay (200 ms).
    pass(Duration::from_secs(1)).await;
    assert_eq!(server.attempts(), attempts, "still retrying");
}

// ----- 8. acks in receipt order, never across connections ------------------------

/// QoS 1 and 2 messages 1..4 acked in the order 3, 1, 4, 2: each ack goes out
/// only once every earlier message is acked, so the server reads PUBACK 1 after
/// the second ack and PUBREC 2, PUBACK 3, PUBREC 4 after the last. Then a token
/// of a connection that was dropped is refused with `StaleConnection` on the next
/// connection, and nothing is written there.
#[tokio::test(start_paused = true)]
async fn acks_in_receipt_order_and_stale_tokens_refused() {
    let (client, mut incoming, mut server, mut conn) = connected(options("order"), 64 * 1024).await;
    let mut events = client.events();
    let qos = [
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
    ];
    for (id, qos) in (1..).zip(qos) {
        conn.send(publish(qos, id, "t", vec![])).await;
    }
    let mut tokens = Vec::new();
    for (id, qos) in (1..).zip(qos) {
        let mut message = within(WAIT, "message", incoming.recv()).await.unwrap();
        let token = message.take_ack_token().unwrap();
        assert_eq!((token.packet_id().get(), token.qos()), (id, qos));
        tokens.push(Some(token));
    }
    let mut ack_nth = |n: usize| tokens[n - 1].take().unwrap().ack().unwrap();

    ack_nth(3);
    conn.assert_silent(QUIET).await;
    ack_nth(1);
    assert_eq!(ack_of(&conn.recv().await), Some(("PUBACK", 1, 0)));
    conn.assert_silent(QUIET).await;
    ack_nth(4);
    conn.assert_silent(QUIET).await;
    ack_nth(2);
    let acks = [conn.recv().await, conn.recv().await, conn.recv().await];
    assert_eq!(
        acks.iter().map(ack_of).collect::<Vec<_>>(),
        [
            Some(("PUBREC", 2, 0)),
            Some(("PUBACK", 3, 0)),
            Some(("PUBREC", 4, 0))
        ]
    );
    conn.send(Packet::PubRel(ack(4))).await;
    conn.send(Packet::PubRel(ack(2))).await;
    let comps = [conn.recv().await, conn.recv().await];
    assert_eq!(
        comps.iter().map(ack_of).collect::<Vec<_>>(),
        [Some(("PUBCOMP", 4, 0)), Some(("PUBCOMP", 2, 0))]
    );

    // A message whose connection is dropped before it is acked.
    conn.send(publish(QoS::AtLeastOnce, 5, "t", vec![])).await;
    conn.send(publish(QoS::ExactlyOnce, 6, "t", vec![])).await;
    let mut m5 = within(WAIT, "message 5", incoming.recv()).await.unwrap();
    let m6 = within(WAIT, "message 6", incoming.recv()).await.unwrap();
    drop(conn);
    let mut conn = server.accept_connack().await;
    wait_event(&mut events, WAIT, |e| {
        matches!(e, ConnectionEvent::Connected { .. }).then_some(())
    })
    .await;
    assert_eq!(client.connection_number(), 2);
    assert_matches!(m5.ack(), Err(AckError::StaleConnection));
    let (_, token6) = m6.into_parts();
    let failed = token6
        .unwrap()
        .ack_with(ReasonCode::SUCCESS, AckProperties::EMPTY)
        .expect_err("stale");
    assert_eq!(failed.error, AckError::StaleConnection);
    assert!(failed.token.is_none());
    conn.assert_silent(QUIET).await;
}

// ----- 9. server misbehaviour ----------------------------------------------------

/// Our Receive Maximum is 2 and the application does not ack: a third QoS 1
/// PUBLISH breaks it. The server reads DISCONNECT 0x93 then EOF, the application
/// gets `Disconnected(ProtocolViolation { 0x93, ReceiveMaximumExceeded })`, and
/// the client reconnects after the first backoff delay.
#[tokio::test(start_paused = true)]
async fn receive_maximum_exceeded_disconnects_with_0x93_and_reconnects() {
    let (client, mut incoming, mut server, mut conn) = connected(
        options("rm")
            .with_receive_maximum(2)
            .with_max_inflight(2)
            .with_request_queue(2),
        64 * 1024,
    )
    .await;
    let mut events = client.events();
    for id in 1..=3 {
        conn.send(publish(QoS::AtLeastOnce, id, "t", vec![])).await;
    }
    let rest = conn.until_closed().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(disconnect_reason(&rest[0]), 0x93);

    let error = next_event(&mut events).await;
    assert_matches!(
        error,
        ConnectionEvent::Disconnected(ConnectionError::ProtocolViolation {
            reason: ReasonCode(0x93),
            detail: Violation::ReceiveMaximumExceeded,
        })
    );
    assert_matches!(
        next_event(&mut events).await,
        ConnectionEvent::Reconnecting { attempt: 1, delay, .. }
            if delay <= Duration::from_millis(20)
    );
    let _conn = server.accept_connack().await;
    assert_matches!(
        next_event(&mut events).await,
        ConnectionEvent::Connected { .. }
    );
    // The two messages within the limit were handed over.
    for id in 1..=2 {
        let mut message = within(WAIT, "message", incoming.recv()).await.unwrap();
        assert_eq!(message.take_ack_token().unwrap().packet_id().get(), id);
    }
}

/// Garbage from the server, one kind per connection: each ends the connection
/// with DISCONNECT and the matching reason code (0x81 Malformed Packet, 0x82
/// Protocol Error, 0x95 Packet too large), the application learns why, and the
/// client reconnects with backoff each time.
#[tokio::test(start_paused = true)]
async fn garbage_disconnects_with_the_matching_reason_and_reconnects() {
    let mut opts = options("garbage");
    opts = opts.with_maximum_packet_size(1024);
    let (client, _incoming, mut server, mut conn) = connected(opts, 64 * 1024).await;
    let mut events = client.events();
    let oversized = Packet::Publish(publish(QoS::AtMostOnce, 0, "t", vec![0u8; 2000]))
        .to_bytes(ProtocolVersion::V5)
        .unwrap();
    let cases: [(&str, Vec<u8>, u8); 5] = [
        ("reserved packet type 0", vec![0x00, 0x00], 0x81),
        (
            "PUBLISH with QoS 3",
            vec![0x36, 0x06, 0x00, 0x01, b't', 0x00, 0x01, 0x00],
            0x81,
        ),
        (
            "CONNACK refusing with Session Present",
            vec![0x20, 0x03, 0x01, 0x80, 0x00],
            0x82,
        ),
        ("a second CONNACK", vec![0x20, 0x03, 0x00, 0x00, 0x00], 0x82),
        (
            "a packet over our Maximum Packet Size",
            oversized.to_vec(),
            0x95,
        ),
    ];
    for (connection, (what, bytes, reason)) in (2..).zip(cases) {
        conn.send_bytes(&bytes).await;
        let rest = conn.until_closed().await;
        assert_eq!(rest.len(), 1, "{what}: {rest:?}");
        assert_eq!(disconnect_reason(&rest[0]), reason, "{what}");
        match next_event(&mut events).await {
            ConnectionEvent::Disconnected(ConnectionError::ProtocolViolation {
                reason: ReasonCode(r),
                ..
            }) if r == reason => {}
            other => panic!("{what}: {other:?}"),
        }
        match next_event(&mut events).await {
            ConnectionEvent::Reconnecting {
                attempt: 1, delay, ..
            } if delay >= Duration::from_millis(10) && delay <= Duration::from_millis(20) => {}
            other => panic!("{what}: {other:?}"),
        }
        conn = server.accept_connack().await;
        assert_matches!(
            next_event(&mut events).await,
            ConnectionEvent::Connected { .. }
        );
        assert_eq!(client.connection_number(), connection);
    }
}

/// In MQTT 3.1.1 a client's DISCONNECT means a normal end and carries no reason:
/// garbage closes the connection without one, the application still learns
/// why, and the client reconnects.
#[tokio::test(start_paused = true)]
async fn garbage_in_3_1_1_closes_without_disconnect() {
    let opts = options("garbage-v311").with_version(ProtocolVersion::V311);
    let (client, _incoming, mut server, mut conn) = connected(opts, 64 * 1024).await;
    let mut events = client.events();
    conn.send_bytes(&[0x00, 0x00]).await;
    assert_eq!(conn.until_closed().await, []);
    assert_matches!(
        next_event(&mut events).await,
        ConnectionEvent::Disconnected(ConnectionError::ProtocolViolation {
            reason: ReasonCode(0x81),
            detail: Violation::Decode(_),
        })
    );
    let (mut conn, connect) = server.accept_connect().await;
    assert_eq!(connect.protocol_version, ProtocolVersion::V311);
    conn.send(ConnAck::default()).await;
    wait_event(&mut events, WAIT, |e| {
        matches!(e, ConnectionEvent::Connected { .. }).then_some(())
    })
    .await;
    assert_matches!(conn.next(QUIET).await, Next::Nothing);
}

/// A server that writes before it reads (one loop per connection) must not
/// deadlock with the client: while the client's write queue is behind (the server
/// is not reading), the client still reads, so what the server sends meanwhile
/// arrives and the server's own write never blocks on us.
#[tokio::test(start_paused = true)]
async fn the_client_keeps_reading_while_its_writes_are_blocked() {
    let (client, mut incoming, _server, mut conn) = connected(options("behind"), 8 * 1024).await;
    // 20 × 8 KiB of QoS 0 while the server reads nothing: far more than the pipe
    // and the 64 KiB the driver queues before it stops taking commands.
    let mut first = within(
        WAIT,
        "publish accepted",
        client.publish("out", QoS::AtMostOnce, false, vec![0u8; 8 * 1024]),
    )
    .await
    .unwrap();
    let publisher = client.clone();
    tokio::spawn(async move {
        for _ in 1..20 {
            if publisher
                .publish("out", QoS::AtMostOnce, false, vec![0u8; 8 * 1024])
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Until every task is blocked: the pipe is full, the driver's write queue past
    // its limit, the rest in the request queue.
    settle().await;
    assert!(
        tokio::time::timeout(QUIET, &mut first).await.is_err(),
        "the client's writes are not blocked: the first publish was written"
    );
    conn.send(publish(QoS::AtMostOnce, 0, "in", "hello")).await;
    let message = within(
        Duration::from_secs(1),
        "the server's message",
        incoming.recv(),
    )
    .await
    .unwrap();
    assert_eq!(message.topic(), "in");
    assert_eq!(&message.payload()[..], b"hello");
}
