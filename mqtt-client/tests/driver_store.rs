//! The driver with a session store, over the scripted server of `driver_common`:
//! the session passes from one client to the next through a store, a store that
//! fails stops the client before anything that depends on it is sent, and a store
//! that cannot be read (or belongs to another client) fails the start.

#[allow(dead_code, reason = "this file uses part of the harness")]
mod driver_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use driver_common::{ack, assert_matches, publish, within, Next, Server, QUIET, WAIT};
use mqtt_client::session::{MemoryStore, Session, SessionChange, SessionStore, StoreError};
use mqtt_client::{Client, ConnectionError, ErrorKind, Options, PublishError, QoS};
use mqtt_codec::packet::{ConnAck, Packet};

fn durable(client_id: &str) -> Options {
    Options::new(client_id)
        .with_clean_start(false)
        .with_session_expiry(3600)
}

/// A store that works until told to fail.
#[derive(Debug, Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
}

impl SessionStore for Flaky {
    fn load(&mut self) -> Result<Session, StoreError> {
        self.inner.load()
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                context: "writing the test store".to_owned(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.inner.apply(changes)
    }
}

/// A store whose session cannot be read.
#[derive(Debug)]
struct Unreadable;

impl SessionStore for Unreadable {
    fn load(&mut self) -> Result<Session, StoreError> {
        Err(StoreError::Corrupt {
            path: "test.session".into(),
            offset: 12,
            reason: "bad checksum".to_owned(),
        })
    }

    fn apply(&mut self, _: &[SessionChange]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Client A publishes QoS 1 and QoS 2 and takes a QoS 2 message, then stops
/// (the server answers nothing). Client B, given the same store, resumes the
/// session: the server reads the two PUBLISHes again with DUP and their
/// identifiers, and a resent PUBLISH of the QoS 2 message A acknowledged is
/// answered with PUBREC and not handed over.
#[tokio::test(start_paused = true)]
async fn a_second_client_resumes_the_session_through_the_store() {
    let store = MemoryStore::new();
    let (connector, mut server) = Server::new(64 * 1024);
    let (a, conn) = tokio::join!(
        within(
            WAIT,
            "A connects",
            Client::builder(durable("resumer"))
                .session_store(store.clone())
                .connect(connector.clone())
        ),
        server.accept_connack(),
    );
    let (a, mut a_incoming) = a.unwrap();
    let mut conn = conn;
    let one = a
        .publish("t/1", QoS::AtLeastOnce, false, "one")
        .await
        .unwrap();
    let two = a
        .publish("t/2", QoS::ExactlyOnce, false, "two")
        .await
        .unwrap();
    let first = match conn.recv().await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    let second = match conn.recv().await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    conn.send(publish(QoS::ExactlyOnce, 9, "in", "once")).await;
    let mut message = within(WAIT, "A's message", a_incoming.recv())
        .await
        .unwrap();
    message.ack().unwrap();
    assert_matches!(conn.recv().await, Packet::PubRec(rec) if rec.packet_id.get() == 9);
    within(WAIT, "A disconnects", a.disconnect()).await.unwrap();
    assert_matches!(within(WAIT, "handle", one).await, Err(PublishError::Closed));
    assert_matches!(within(WAIT, "handle", two).await, Err(PublishError::Closed));

    let session = store.session();
    assert_eq!(session.outgoing.len(), 2);
    assert_eq!(session.awaiting_release.len(), 1);

    let b = tokio::spawn(
        Client::builder(durable("resumer"))
            .session_store(store.clone())
            .connect(connector),
    );
    let (mut conn, connect) = server.accept_connect().await;
    assert!(!connect.clean_start);
    conn.send(ConnAck {
        session_present: true,
        ..ConnAck::default()
    })
    .await;
    let (b, mut b_incoming) = within(WAIT, "B connects", b).await.unwrap().unwrap();
    for original in [&first, &second] {
        match conn.recv().await {
            Packet::Publish(p) => {
                assert!(p.dup, "resent with DUP");
                assert_eq!(p.packet_id, original.packet_id);
                assert_eq!(p.payload, original.payload);
            }
            other => panic!("expected the resent PUBLISH, got {other:?}"),
        }
    }
    let mut again = publish(QoS::ExactlyOnce, 9, "in", "once");
    again.dup = true;
    conn.send(again).await;
    assert_matches!(conn.recv().await, Packet::PubRec(rec) if rec.packet_id.get() == 9);
    assert!(
        tokio::time::timeout(QUIET, b_incoming.recv())
            .await
            .is_err(),
        "the acknowledged QoS 2 message was handed over again"
    );
    let first_id = first.packet_id.unwrap().get();
    conn.send(Packet::PubAck(ack(first_id))).await;
    // The completion reaches the store when B's driver reads the PUBACK.
    let b_session = within(WAIT, "the PUBACK applied to the store", async {
        loop {
            let s = store.session();
            if s.outgoing.len() == 1 {
                break s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(b_session.outgoing[0].publish.packet_id, second.packet_id);
    within(WAIT, "B disconnects", b.disconnect()).await.unwrap();
}

/// The store fails when a PUBLISH is to be stored: the PUBLISH never reaches the
/// server, the client closes with the store's error (DISCONNECT 0x80 first), and
/// the handle fails.
#[tokio::test(start_paused = true)]
async fn a_failing_store_stops_the_client_before_the_publish_leaves() {
    let store = Flaky::default();
    let (connector, mut server) = Server::new(64 * 1024);
    let (client, conn) = tokio::join!(
        within(
            WAIT,
            "connect",
            Client::builder(durable("flaky"))
                .session_store(store.clone())
                .connect(connector)
        ),
        server.accept_connack(),
    );
    let (client, _incoming) = client.unwrap();
    let mut conn = conn;
    store.failing.store(true, Ordering::SeqCst);
    let handle = client
        .publish("t", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let rest = conn.until_closed().await;
    assert_eq!(rest.len(), 1, "only DISCONNECT: {rest:?}");
    assert_matches!(&rest[0], Packet::Disconnect(d) if d.reason_code.0 == 0x80);
    assert_matches!(
        within(WAIT, "handle", handle).await,
        Err(PublishError::Closed)
    );
    assert_matches!(
        client.closed_reason(),
        Some(ConnectionError::SessionStore(e)) if matches!(*e, StoreError::Io { .. })
    );
    let why = client.closed_reason().unwrap();
    assert_eq!(why.kind(), ErrorKind::Storage);
    // The chain reaches the I/O error: store error, then io::Error.
    let store = std::error::Error::source(&why).unwrap();
    assert!(std::error::Error::source(store).is_some());
    assert!(matches!(
        conn.next(QUIET).await,
        Next::Closed | Next::Nothing
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_store_fails_the_start_before_any_connection() {
    let (connector, server) = Server::new(4096);
    let result = Client::builder(durable("unreadable"))
        .session_store(Unreadable)
        .start(connector);
    assert_matches!(
        result,
        Err(ConnectionError::SessionStore(e)) if matches!(*e, StoreError::Corrupt { .. })
    );
    assert_eq!(server.attempts(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_store_of_another_client_fails_the_start() {
    let mut store = MemoryStore::new();
    store
        .apply(&[SessionChange::ClientId("someone-else".to_owned())])
        .unwrap();
    let (connector, server) = Server::new(4096);
    let result = Client::builder(durable("me"))
        .session_store(store)
        .start(connector);
    assert_matches!(
        result,
        Err(ConnectionError::SessionStore(e))
            if matches!(&*e, StoreError::ClientIdMismatch { stored, .. } if stored == "someone-else")
    );
    assert_eq!(server.attempts(), 0);
}

/// An empty client id takes the stored one (a server-assigned id, say).
#[tokio::test(start_paused = true)]
async fn an_empty_client_id_takes_the_stored_one() {
    let mut store = MemoryStore::new();
    store
        .apply(&[SessionChange::ClientId("assigned-7".to_owned())])
        .unwrap();
    let (connector, mut server) = Server::new(4096);
    let started = Client::builder(durable(""))
        .session_store(store)
        .start(connector)
        .unwrap();
    let (_conn, connect) = server.accept_connect().await;
    assert_eq!(connect.client_id.as_str(), "assigned-7");
    assert_eq!(started.0.client_id(), "assigned-7");
}
