//! The client's handles, over the scripted server of `driver_common`: what keeps
//! the connection up, how its end is awaited, a start outside a runtime, and a
//! dropped ack token.

#[allow(dead_code, reason = "this file uses part of the harness")]
mod driver_common;

use driver_common::{
    assert_matches, connected, publish, wait_event, within, Next, Server, QUIET, WAIT,
};
use mqtt_client::{Client, ConnectionError, ConnectionEvent, Options, QoS};
use mqtt_codec::packet::Packet;

/// `let (_, incoming) = ...`: the connection lives while `Incoming` does, and
/// ends with a normal DISCONNECT once it is dropped too.
#[tokio::test(start_paused = true)]
async fn incoming_alone_keeps_the_connection() {
    let (client, mut incoming, _server, mut conn) =
        connected(Options::new("reader-only"), 4096).await;
    drop(client);
    conn.send(publish(QoS::AtMostOnce, 0, "t", "still here"))
        .await;
    let message = within(WAIT, "message", incoming.recv()).await.unwrap();
    assert_eq!(&message.payload()[..], b"still here");
    assert_matches!(conn.next(QUIET).await, Next::Nothing);
    drop(incoming);
    let rest = conn.until_closed().await;
    assert_matches!(rest.as_slice(), [Packet::Disconnect(d)] if d.reason_code.0 == 0);
}

#[tokio::test(start_paused = true)]
async fn closed_waits_for_the_end_of_the_driver_and_says_why() {
    let (client, _incoming, _server, _conn) = connected(Options::new("closer"), 4096).await;
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.closed().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    within(WAIT, "disconnect", client.disconnect())
        .await
        .unwrap();
    let why = within(WAIT, "closed", waiter).await.unwrap();
    assert_matches!(why, ConnectionError::LocalDisconnect);
    // And at once, once closed.
    assert_matches!(client.closed().await, ConnectionError::LocalDisconnect);
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let (connector, _server) = Server::new(4096);
    let result = Client::start(Options::new("no-runtime"), connector);
    assert_matches!(result, Err(ConnectionError::NoRuntime));
}

/// A token dropped unacknowledged: counted, reported, and the ack of the message
/// after it waits (acks keep the order of arrival).
#[tokio::test(start_paused = true)]
async fn a_dropped_ack_token_is_counted_and_reported() {
    let (client, mut incoming, _server, mut conn) = connected(Options::new("dropper"), 4096).await;
    let mut events = client.events();
    conn.send(publish(QoS::AtLeastOnce, 1, "t", "first")).await;
    conn.send(publish(QoS::AtLeastOnce, 2, "t", "second")).await;
    let first = within(WAIT, "first", incoming.recv()).await.unwrap();
    let mut second = within(WAIT, "second", incoming.recv()).await.unwrap();
    drop(first);
    let (id, _) = wait_event(&mut events, WAIT, |e| match e {
        ConnectionEvent::AckTokenDropped { packet_id } => Some(packet_id.get()),
        _ => None,
    })
    .await;
    assert_eq!(id, 1);
    assert_eq!(client.dropped_ack_tokens(), 1);
    second.ack().unwrap();
    assert_matches!(conn.next(QUIET).await, Next::Nothing);
    // Acked tokens are not counted.
    assert_eq!(client.dropped_ack_tokens(), 1);
}
