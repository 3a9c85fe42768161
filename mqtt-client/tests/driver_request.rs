//! `Client::request`: MQTT 5 request/response against the scripted in-process
//! server, on tokio's paused clock. The first request subscribes to the response
//! topic (the default, or from the server's Response Information); responses are
//! routed by Correlation Data to the request that waits for them, acknowledged,
//! and never handed to `Incoming`; a request that times out is forgotten, and a
//! response after it dropped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

#[allow(dead_code, reason = "this file uses part of the harness")]
mod driver_common;

use std::time::Duration;

use bytes::Bytes;
use driver_common::{
    ack, ack_of, assert_matches, connected, fast_backoff, publish, within, Conn, Server, WAIT,
};
use mqtt_client::{Client, Options, QoS, RequestError, ResponseError};
use mqtt_codec::packet::{ConnAck, Packet, Publish, SubAck};
use mqtt_codec::property::{AckProperties, ConnAckProperties, PublishProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use tokio::time::Instant;

fn options(id: &str) -> Options {
    Options::new(id).with_reconnect(fast_backoff())
}

/// Reads a SUBSCRIBE for `filter` at QoS 1 and answers it with `code`.
async fn answer_subscribe(conn: &mut Conn, filter: &str, code: ReasonCode) {
    let Packet::Subscribe(sub) = conn.recv().await else {
        panic!("expected SUBSCRIBE");
    };
    assert_eq!(sub.filters.len(), 1);
    assert_eq!(sub.filters[0].0.as_str(), filter);
    assert_eq!(sub.filters[0].1.qos, QoS::AtLeastOnce);
    conn.send(SubAck {
        packet_id: sub.packet_id,
        properties: AckProperties::EMPTY,
        reason_codes: vec![code],
    })
    .await;
}

/// Reads a request PUBLISH (QoS 1) to `topic`, acknowledges it, and returns its
/// Response Topic and Correlation Data.
async fn take_request(conn: &mut Conn, topic: &str) -> (String, Bytes) {
    let Packet::Publish(p) = conn.recv().await else {
        panic!("expected the request PUBLISH");
    };
    assert_eq!(p.topic.as_str(), topic);
    let id = p.packet_id.expect("QoS 1").get();
    conn.send(Packet::PubAck(ack(id))).await;
    let props = p.properties();
    (
        props
            .response_topic
            .as_ref()
            .expect("a Response Topic")
            .to_string(),
        props.correlation_data.clone().expect("Correlation Data"),
    )
}

/// A response from the server: QoS 1 with identifier `id`.
fn response(id: u16, topic: &str, correlation: &Bytes, payload: &'static str) -> Publish {
    Publish {
        properties: Some(Box::new(PublishProperties {
            correlation_data: Some(correlation.clone()),
            ..PublishProperties::EMPTY
        })),
        ..publish(QoS::AtLeastOnce, id, topic, payload)
    }
}

/// The next packet must be a success PUBACK of `id`.
async fn expect_puback(conn: &mut Conn, id: u16) {
    let packet = conn.recv().await;
    assert_eq!(ack_of(&packet), Some(("PUBACK", id, 0)), "{packet:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_gets_the_response_with_its_correlation_data() {
    let (client, mut incoming, _server, mut conn) = connected(options("req-1"), 64 * 1024).await;
    let requester = client.clone();
    let request = tokio::spawn(async move {
        requester
            .request("service/echo", "ping", Duration::from_secs(5))
            .await
    });

    answer_subscribe(&mut conn, "responses/req-1", ReasonCode::GRANTED_QOS_1).await;
    let (topic, correlation) = take_request(&mut conn, "service/echo").await;
    assert_eq!(topic, "responses/req-1");
    assert_eq!(correlation.len(), 16);

    // Another request's response (not ours), an ordinary message, then ours.
    let other = Bytes::from_static(b"someone else");
    conn.send(response(5, &topic, &other, "not yours")).await;
    conn.send(publish(QoS::AtMostOnce, 0, "news", "ordinary"))
        .await;
    conn.send(response(7, &topic, &correlation, "pong")).await;

    let message = within(WAIT, "the response", request)
        .await
        .unwrap()
        .expect("a response");
    assert_eq!(message.topic(), "responses/req-1");
    assert_eq!(&message.payload()[..], b"pong");
    assert_eq!(
        message.properties().correlation_data.as_ref(),
        Some(&correlation)
    );
    // Both messages on the response topic were acknowledged by the client.
    expect_puback(&mut conn, 5).await;
    expect_puback(&mut conn, 7).await;

    // Only the ordinary message reaches `Incoming`.
    let mut message = within(WAIT, "the ordinary message", incoming.recv())
        .await
        .unwrap();
    assert_eq!(message.topic(), "news");
    message.ack().unwrap();
    assert!(incoming.try_recv().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_request_times_out_is_forgotten_and_its_late_response_is_dropped() {
    let (client, mut incoming, _server, mut conn) = connected(options("req-2"), 64 * 1024).await;
    let requester = client.clone();
    let start = Instant::now();
    let request = tokio::spawn(async move {
        requester
            .request("service/slow", "1", Duration::from_secs(1))
            .await
    });
    answer_subscribe(&mut conn, "responses/req-2", ReasonCode::GRANTED_QOS_1).await;
    let (topic, late) = take_request(&mut conn, "service/slow").await;

    let result = within(WAIT, "the timeout", request).await.unwrap();
    assert_matches!(result, Err(ResponseError::Timeout));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1100),
        "{elapsed:?}"
    );
    assert_eq!(
        ResponseError::Timeout.kind(),
        mqtt_client::ErrorKind::Transient
    );

    // The late response is acknowledged and dropped.
    conn.send(response(3, &topic, &late, "too late")).await;
    expect_puback(&mut conn, 3).await;

    // The next request does not subscribe again, and gets its own response.
    let requester = client.clone();
    let request = tokio::spawn(async move {
        requester
            .request("service/slow", "2", Duration::from_secs(1))
            .await
    });
    let (_, correlation) = take_request(&mut conn, "service/slow").await;
    assert_ne!(
        correlation, late,
        "each request has its own Correlation Data"
    );
    conn.send(response(4, &topic, &correlation, "on time"))
        .await;
    let message = within(WAIT, "the response", request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload()[..], b"on time");
    expect_puback(&mut conn, 4).await;
    assert!(
        incoming.try_recv().is_none(),
        "no response reaches Incoming"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_each_get_their_own_response() {
    let (client, _incoming, _server, mut conn) = connected(options("req-3"), 64 * 1024).await;
    let first = {
        let c = client.clone();
        tokio::spawn(async move { c.request("svc", "a", Duration::from_secs(5)).await })
    };
    answer_subscribe(&mut conn, "responses/req-3", ReasonCode::GRANTED_QOS_1).await;
    let (topic, a) = take_request(&mut conn, "svc").await;
    let second = {
        let c = client.clone();
        tokio::spawn(async move { c.request("svc", "b", Duration::from_secs(5)).await })
    };
    let (_, b) = take_request(&mut conn, "svc").await;

    // Answered in the other order.
    conn.send(response(1, &topic, &b, "for b")).await;
    conn.send(response(2, &topic, &a, "for a")).await;

    let second = within(WAIT, "b", second).await.unwrap().unwrap();
    let first = within(WAIT, "a", first).await.unwrap().unwrap();
    assert_eq!(&first.payload()[..], b"for a");
    assert_eq!(&second.payload()[..], b"for b");
}

#[tokio::test(start_paused = true)]
async fn the_servers_response_information_makes_the_default_topic() {
    let opts = options("req-4").with_request_response_information(true);
    let (connector, mut server) = Server::new(64 * 1024);
    let accept = async {
        let (mut conn, connect) = server.accept_connect().await;
        assert_eq!(connect.properties.request_response_information, Some(true));
        conn.send(ConnAck {
            properties: ConnAckProperties {
                response_information: Some(MqttString::try_from("reply/base/").unwrap()),
                ..ConnAckProperties::EMPTY
            },
            ..ConnAck::default()
        })
        .await;
        conn
    };
    let (client, mut conn) = tokio::join!(Client::connect(opts, connector), accept);
    let (client, _incoming) = client.unwrap();
    assert_eq!(client.server().response_information(), Some("reply/base/"));

    let requester = client.clone();
    let request =
        tokio::spawn(async move { requester.request("svc", "x", Duration::from_secs(5)).await });
    answer_subscribe(&mut conn, "reply/base/req-4", ReasonCode::GRANTED_QOS_1).await;
    let (topic, correlation) = take_request(&mut conn, "svc").await;
    assert_eq!(topic, "reply/base/req-4");
    conn.send(response(1, &topic, &correlation, "ok")).await;
    let message = within(WAIT, "the response", request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload()[..], b"ok");
}

#[tokio::test(start_paused = true)]
async fn a_refused_response_subscription_fails_the_request_and_is_tried_again() {
    let opts = options("req-5").with_response_topic("my/replies");
    let (client, _incoming, _server, mut conn) = connected(opts, 64 * 1024).await;

    let requester = client.clone();
    let request =
        tokio::spawn(async move { requester.request("svc", "x", Duration::from_secs(5)).await });
    answer_subscribe(&mut conn, "my/replies", ReasonCode::NOT_AUTHORIZED).await;
    let result = within(WAIT, "the refusal", request).await.unwrap();
    assert_matches!(
        &result,
        Err(ResponseError::Subscribe(RequestError::Rejected { .. }))
    );
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("Not authorized (0x87)"));

    // The next request subscribes again; granted, it goes through.
    let requester = client.clone();
    let request =
        tokio::spawn(async move { requester.request("svc", "y", Duration::from_secs(5)).await });
    answer_subscribe(&mut conn, "my/replies", ReasonCode::GRANTED_QOS_1).await;
    let (topic, correlation) = take_request(&mut conn, "svc").await;
    assert_eq!(topic, "my/replies");
    conn.send(response(9, &topic, &correlation, "ok")).await;
    let message = within(WAIT, "the response", request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&message.payload()[..], b"ok");
}

#[tokio::test(start_paused = true)]
async fn a_request_ends_when_the_client_closes() {
    let (client, _incoming, _server, mut conn) = connected(options("req-6"), 64 * 1024).await;
    let requester = client.clone();
    // At QoS 0 (through `request_with`): its handle completes once written, so
    // the request is waiting for its response when the client closes.
    let request = tokio::spawn(async move {
        let publish = publish(QoS::AtMostOnce, 0, "svc", "x");
        requester
            .request_with(publish, Duration::from_secs(60))
            .await
    });
    answer_subscribe(&mut conn, "responses/req-6", ReasonCode::GRANTED_QOS_1).await;
    let Packet::Publish(p) = conn.recv().await else {
        panic!("expected the request");
    };
    assert_eq!(p.qos, QoS::AtMostOnce);
    assert!(p.properties().correlation_data.is_some());

    within(WAIT, "disconnect", client.disconnect())
        .await
        .unwrap();
    let result = within(WAIT, "the request to end", request).await.unwrap();
    assert_matches!(result, Err(ResponseError::Closed));
}
