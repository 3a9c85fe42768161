//! MQTT client built on [`mqtt_codec`]: a sans-IO protocol engine and a tokio driver.

mod client;
mod driver;
pub mod engine;
mod error;
mod options;
pub mod transport;

pub use client::{AckToken, Client, ConnectionEvent, Incoming, Message, PublishHandle};
pub use engine::{PublishOutcome, ServerInfo, SubscribeOutcome, UnsubscribeOutcome};
pub use error::{
    AckError, ConnectRefusal, ConnectionError, Initiator, PublishError, RefusalKind, RequestError,
    Violation,
};
pub use mqtt_codec as codec;
pub use mqtt_codec::{PacketId, ProtocolVersion, QoS};
pub use options::{Backoff, Options, SessionLostPolicy};
pub use transport::{Connector, Tcp};
