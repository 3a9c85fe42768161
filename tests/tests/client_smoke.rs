//! First contact of the client with a real mosquitto.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::time::Duration;

use mqtt_client::{Client, Options, ProtocolVersion, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;

async fn roundtrip(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (sub, mut incoming) =
        Client::connect(Options::new("sub").with_version(version), Tcp::new(&addr))
            .await
            .unwrap();
    let granted = sub.subscribe("t/#", QoS::ExactlyOnce).await.unwrap();
    assert_eq!(granted.results, vec![Ok(QoS::ExactlyOnce)]);
    let (publisher, _) =
        Client::connect(Options::new("pub").with_version(version), Tcp::new(&addr))
            .await
            .unwrap();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let handle = publisher
            .publish("t/a", qos, false, format!("{qos:?}"))
            .await
            .unwrap();
        let outcome = handle.await.unwrap();
        assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
        let mut m = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.topic(), "t/a");
        assert_eq!(m.qos(), qos);
        assert_eq!(&m.payload()[..], format!("{qos:?}").as_bytes());
        m.ack().unwrap();
    }
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
    assert!(sub.is_closed());
}

#[tokio::test]
async fn qos_0_1_2_roundtrip_v5() {
    roundtrip(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn qos_0_1_2_roundtrip_v311() {
    roundtrip(ProtocolVersion::V311).await;
}
