//! What the engine gives back: its state, events, outcomes and what the server said.

use std::time::Duration;

use mqtt_codec::packet::Publish;
use mqtt_codec::property::{AckProperties, ConnAckProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::{PacketId, QoS};

use crate::error::{ConnectionError, PublishError, RequestError};

/// Where the engine stands in the connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No transport. One may be opened when [`Engine::wants_transport`](super::Engine::wants_transport) says so.
    Idle,
    /// Transport open, CONNECT written, CONNACK awaited.
    Connecting,
    /// CONNACK accepted: the session is live.
    Connected,
    /// The engine has ended the connection: the driver flushes what is left to
    /// transmit, closes the transport and calls [`Engine::handle_transport_closed`](super::Engine::handle_transport_closed).
    Closing,
    /// Terminal: no further connection will be made.
    Closed,
}

/// What the engine tells the driver and the application.
#[derive(Debug)]
pub enum Event<T> {
    /// A CONNACK accepted the connection.
    Connected {
        /// Whether the server resumed an existing session.
        session_present: bool,
    },
    /// The connection ended; a reconnection follows unless [`Event::Closed`] does.
    ConnectionLost(ConnectionError),
    /// The next connection attempt will start after `delay`.
    Reconnecting {
        /// Attempts since the last established connection (see
        /// [`crate::Backoff::with_stable_after`]), this one included.
        attempt: u32,
        /// The delay before it: zero while a round over several servers goes on.
        delay: Duration,
        /// The server it goes to ([`Engine::server_index`](super::Engine::server_index)).
        server: usize,
    },
    /// The client is closed for good: the error says why.
    Closed(ConnectionError),
    /// A re-authentication ([`Engine::reauthenticate`](super::Engine::reauthenticate))
    /// succeeded (AUTH 0x00).
    Reauthenticated,
    /// A message from the server.
    Message(Received),
    /// A message from the server was refused and not handed over: its Payload
    /// Format Indicator says UTF-8 and its payload is not (MQTT 5, 3.3.2.3.2).
    /// A QoS 1/2 message was answered with `reason` (0x99 Payload format
    /// invalid) in its PUBACK or PUBREC, in its place among the acks; a QoS 0
    /// one was dropped.
    MessageRefused {
        /// The message's topic (resolved if it came with a Topic Alias).
        topic: MqttString,
        /// Its packet identifier (`None` for QoS 0).
        packet_id: Option<PacketId>,
        /// Why: 0x99 Payload format invalid.
        reason: ReasonCode,
    },
    /// An outgoing PUBLISH finished its flow.
    PublishDone {
        /// The token given to [`Engine::publish`](super::Engine::publish).
        token: T,
        /// The outcome.
        result: Result<PublishOutcome, PublishError>,
    },
    /// A SUBSCRIBE was answered.
    SubscribeDone {
        /// The token given to [`Engine::subscribe`](super::Engine::subscribe).
        token: T,
        /// The SUBACK, per filter.
        result: Result<SubscribeOutcome, RequestError>,
    },
    /// An UNSUBSCRIBE was answered.
    UnsubscribeDone {
        /// The token given to [`Engine::unsubscribe`](super::Engine::unsubscribe).
        token: T,
        /// The UNSUBACK, per filter.
        result: Result<UnsubscribeOutcome, RequestError>,
    },
    /// A subscription restored after a session was lost was refused by the server.
    ResubscribeFailed {
        /// The filter.
        filter: MqttString,
        /// The SUBACK reason code.
        reason: ReasonCode,
    },
}

/// A message received from the server, and how to acknowledge it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The PUBLISH (its topic resolved if it came with a Topic Alias).
    pub publish: Publish,
    /// For QoS 1/2: what to give [`Engine::ack`](super::Engine::ack). `None` for QoS 0 and in auto-ack mode.
    pub ack: Option<AckId>,
    /// The filters of our subscriptions this message matched, found by the
    /// Subscription Identifiers it carries (MQTT 5, 3.3.2.3.8): those the
    /// subscriptions were made with, granted or awaiting SUBACK. Empty when it
    /// carries none, or none the session knows (a subscription since
    /// unsubscribed, say).
    pub matched: Vec<MqttString>,
}

/// Identifies one received QoS 1/2 message on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckId {
    pub(super) epoch: u64,
    pub(super) seq: u64,
    pub(super) packet_id: PacketId,
    pub(super) qos: QoS,
}

impl AckId {
    /// The message's packet identifier.
    pub fn packet_id(&self) -> PacketId {
        self.packet_id
    }

    /// The message's QoS (1: PUBACK acknowledges it; 2: PUBREC).
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// The connection the message came on (counting from 1).
    pub fn connection_number(&self) -> u64 {
        self.epoch
    }
}

/// The end of a successful PUBLISH flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The packet identifier (`None` for QoS 0).
    pub packet_id: Option<PacketId>,
    /// The reason code of PUBACK (QoS 1) or PUBCOMP (QoS 2); SUCCESS for QoS 0 and
    /// 3.1.1. May be 0x10 No matching subscribers.
    pub reason: ReasonCode,
    /// The properties of that ack.
    pub properties: AckProperties,
}

/// A SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The packet identifier used.
    pub packet_id: PacketId,
    /// Per filter, in request order: the granted QoS, or the failure reason code.
    pub results: Vec<Result<QoS, ReasonCode>>,
    /// The SUBACK's properties.
    pub properties: AckProperties,
}

impl PublishOutcome {
    /// The Reason String of the final ack, if the server sent one.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties
            .reason_string
            .as_ref()
            .map(MqttString::as_str)
    }
}

impl SubscribeOutcome {
    /// The Reason String of the SUBACK, if the server sent one.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties
            .reason_string
            .as_ref()
            .map(MqttString::as_str)
    }

    /// The outcome when every filter was granted; else
    /// [`RequestError::Rejected`] with each refused filter's position and
    /// reason code and the SUBACK's properties, whose `Display` includes the
    /// Reason String (`refused by the server: filter 0: Not authorized (0x87)
    /// ("topic denied by ACL")`).
    pub fn check(self) -> Result<Self, RequestError> {
        let failures: Vec<(usize, ReasonCode)> = self
            .results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.err().map(|code| (i, code)))
            .collect();
        if failures.is_empty() {
            Ok(self)
        } else {
            Err(RequestError::Rejected {
                failures,
                properties: self.properties,
            })
        }
    }
}

/// An UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeOutcome {
    /// The packet identifier used.
    pub packet_id: PacketId,
    /// Per filter, in request order (MQTT 5); empty in 3.1.1, which has none.
    pub results: Vec<ReasonCode>,
    /// The UNSUBACK's properties.
    pub properties: AckProperties,
}

impl UnsubscribeOutcome {
    /// The Reason String of the UNSUBACK, if the server sent one.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties
            .reason_string
            .as_ref()
            .map(MqttString::as_str)
    }

    /// The outcome when no filter was refused (0x00 Success and 0x11 No
    /// subscription existed both leave no subscription); else
    /// [`RequestError::Rejected`] with each refused filter's position and reason
    /// code (0x80 and above) and the UNSUBACK's properties.
    pub fn check(self) -> Result<Self, RequestError> {
        let failures: Vec<(usize, ReasonCode)> = self
            .results
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, code)| !code.is_success())
            .collect();
        if failures.is_empty() {
            Ok(self)
        } else {
            Err(RequestError::Rejected {
                failures,
                properties: self.properties,
            })
        }
    }
}

/// A command the engine could not take; the token comes back.
#[derive(Debug)]
pub struct Refused<T, E> {
    /// Why.
    pub error: Refusal<E>,
    /// The token given with the command.
    pub token: T,
}

impl<T, E> Refused<T, E> {
    pub(super) fn invalid(error: E, token: T) -> Self {
        Self {
            error: Refusal::Invalid(error),
            token,
        }
    }
}

/// Why the engine did not take a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal<E> {
    /// Not now: not connected, the window is full, or no packet identifier is
    /// free. A driver gives a command only when [`Engine::can_publish`] or
    /// [`Engine::can_request`] says it would be taken, and never sees this.
    ///
    /// [`Engine::can_publish`]: super::Engine::can_publish
    /// [`Engine::can_request`]: super::Engine::can_request
    NotReady,
    /// The engine is closed for good.
    Closed,
    /// The command cannot be sent to this server as it is: the application's error.
    Invalid(E),
}

/// What the server said about itself in CONNACK, with the protocol defaults
/// applied where a property was absent.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// Session Present of the last CONNACK.
    pub session_present: bool,
    /// The CONNACK properties as received (MQTT 5; empty in 3.1.1).
    pub properties: ConnAckProperties,
}

impl ServerInfo {
    /// Receive Maximum (65,535 when absent).
    pub fn receive_maximum(&self) -> u16 {
        self.properties.receive_maximum.unwrap_or(u16::MAX)
    }

    /// Maximum QoS (2 when absent).
    pub fn maximum_qos(&self) -> QoS {
        self.properties.maximum_qos.unwrap_or(QoS::ExactlyOnce)
    }

    /// Retain Available (true when absent).
    pub fn retain_available(&self) -> bool {
        self.properties.retain_available.unwrap_or(true)
    }

    /// Maximum Packet Size (`None`: only the protocol's limit).
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.properties.maximum_packet_size
    }

    /// Topic Alias Maximum (0 when absent).
    pub fn topic_alias_maximum(&self) -> u16 {
        self.properties.topic_alias_maximum.unwrap_or(0)
    }

    /// Wildcard Subscription Available (true when absent).
    pub fn wildcard_subscription_available(&self) -> bool {
        self.properties
            .wildcard_subscription_available
            .unwrap_or(true)
    }

    /// Subscription Identifiers Available (true when absent).
    pub fn subscription_identifiers_available(&self) -> bool {
        self.properties
            .subscription_identifiers_available
            .unwrap_or(true)
    }

    /// Shared Subscription Available (true when absent).
    pub fn shared_subscription_available(&self) -> bool {
        self.properties
            .shared_subscription_available
            .unwrap_or(true)
    }

    /// Server Keep Alive, if the server imposed one.
    pub fn server_keep_alive(&self) -> Option<u16> {
        self.properties.server_keep_alive
    }

    /// Response Information (3.2.2.3.15), if the server sent it: the base of
    /// response topics, given when CONNECT asked for it
    /// ([`crate::Options::with_request_response_information`]).
    pub fn response_information(&self) -> Option<&str> {
        self.properties
            .response_information
            .as_ref()
            .map(MqttString::as_str)
    }

    /// Assigned Client Identifier, if the server assigned one.
    pub fn assigned_client_identifier(&self) -> Option<&str> {
        self.properties
            .assigned_client_identifier
            .as_ref()
            .map(MqttString::as_str)
    }
}
