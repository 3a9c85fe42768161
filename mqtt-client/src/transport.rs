//! The transport seam: how the driver opens a byte stream to the server.
//!
//! The driver needs nothing but an ordered, reliable byte stream; TCP is provided
//! here, and TLS and WebSocket transports plug in behind the same trait.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Opens a new transport to the server, once per connection attempt.
pub trait Connector: Send + Sync + 'static {
    /// The byte stream.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Opens a stream. The driver bounds it with the connect timeout.
    fn connect(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP, with Nagle's algorithm off (MQTT packets are small and latency
/// matters more than coalescing; the driver batches writes itself).
#[derive(Debug, Clone)]
pub struct Tcp {
    address: String,
}

impl Tcp {
    /// A TCP connector to `address` (`host:port`), resolved at every attempt.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
        }
    }
}

impl Connector for Tcp {
    type Stream = TcpStream;

    async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
