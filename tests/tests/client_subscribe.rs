//! Subscribing through the client's one shape (`Subscription`, `SubscribeRequest`,
//! `UnsubscribeRequest`) against mosquitto: MQTT 5 options and properties reach
//! the broker and act, and invalid input is refused before anything is sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use client_common::{assert_no_message, recv, QUIET};
use mqtt_client::{
    Client, ErrorKind, Options, PublishError, QoS, RequestError, RetainHandling, SubscribeRequest,
    Subscription, Tcp, UnsubscribeRequest,
};
use mqtt_tests::broker::Mosquitto;

#[tokio::test]
async fn v5_subscription_options_and_identifier_act_at_the_broker() {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (client, mut incoming) = Client::connect(Options::new("opts"), Tcp::new(addr.clone()))
        .await
        .unwrap();
    // A retained message that Retain Handling 2 must not send.
    let (other, _other_in) = Client::connect(Options::new("other"), Tcp::new(addr))
        .await
        .unwrap();
    other
        .publish("opts/retained", QoS::AtLeastOnce, true, "old")
        .await
        .unwrap()
        .await
        .unwrap();

    let outcome = client
        .subscribe_with(
            SubscribeRequest::new()
                .subscription(Subscription::new("opts/own", QoS::AtLeastOnce).no_local(true))
                .subscription(
                    Subscription::new("opts/retained", QoS::AtLeastOnce)
                        .retain_handling(RetainHandling::DoNotSend),
                )
                .identifier(42)
                .user_property("who", "test"),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.results,
        [Ok(QoS::AtLeastOnce), Ok(QoS::AtLeastOnce)]
    );

    // No Local: our own message on opts/own does not come back.
    client
        .publish("opts/own", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_no_message(&mut incoming, QUIET, "No Local / Retain Handling").await;
    // Another client's does, with the subscription identifier.
    other
        .publish("opts/own", QoS::AtLeastOnce, false, "theirs")
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert_eq!(&m.payload()[..], b"theirs");
    assert_eq!(m.properties().subscription_identifiers, [42]);
    m.ack().unwrap();

    let outcome = client
        .unsubscribe_with(
            UnsubscribeRequest::new()
                .filter("opts/own")
                .filter("opts/retained"),
        )
        .await
        .unwrap();
    assert_eq!(outcome.results.len(), 2);
    other
        .publish("opts/own", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_no_message(&mut incoming, QUIET, "unsubscribed").await;
}

#[tokio::test]
async fn invalid_filters_and_topics_are_refused_before_sending() {
    let broker = Mosquitto::start();
    let (client, _incoming) =
        Client::connect(Options::new("invalid"), Tcp::new(broker.addr().to_string()))
            .await
            .unwrap();
    match client.subscribe("a/#/b", QoS::AtMostOnce).await {
        Err(RequestError::InvalidFilter { filter, .. }) => assert_eq!(filter, "a/#/b"),
        other => panic!("expected InvalidFilter, got {other:?}"),
    }
    assert!(matches!(
        client.subscribe_with(SubscribeRequest::new()).await,
        Err(RequestError::Empty)
    ));
    match client.publish("a/+", QoS::AtMostOnce, false, "x").await {
        Err(PublishError::InvalidTopic { topic, .. }) => assert_eq!(topic, "a/+"),
        other => panic!("expected InvalidTopic, got {other:?}"),
    }
    // The connection is untouched.
    client.subscribe("a/b", QoS::AtMostOnce).await.unwrap();
    let e = client.unsubscribe("bad\0filter").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        std::error::Error::source(&e).is_some(),
        "the codec's reason is the source"
    );
}
