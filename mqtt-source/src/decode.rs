//! Decoding payloads into typed records: a [`Decoder`], and [`Decoded`], the
//! stream of records a source becomes with [`crate::Source::decoded`].
//!
//! A message the decoder refuses is a failure like a nack (`on_failure`
//! decides), counted as `decode_failures`, and never reaches the pipeline.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::message::{Failure, Message};
use crate::Source;

/// Turns a message into a record.
pub trait Decoder: Send {
    /// The record.
    type Item;
    /// Why a message cannot be decoded.
    type Error: fmt::Display;
    /// Decodes one message.
    fn decode(&mut self, message: &Message) -> Result<Self::Item, Self::Error>;
}

impl<T, E: fmt::Display, F: FnMut(&Message) -> Result<T, E> + Send> Decoder for F {
    type Item = T;
    type Error = E;
    fn decode(&mut self, message: &Message) -> Result<T, E> {
        self(message)
    }
}

/// JSON payloads into `T` with serde (feature `json`).
#[cfg(feature = "json")]
pub struct Json<T>(PhantomData<fn() -> T>);

#[cfg(feature = "json")]
impl<T> Json<T> {
    /// The JSON decoder.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

#[cfg(feature = "json")]
impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "json")]
impl<T> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Json")
    }
}

#[cfg(feature = "json")]
impl<T: serde::de::DeserializeOwned> Decoder for Json<T> {
    type Item = T;
    type Error = serde_json::Error;
    fn decode(&mut self, message: &Message) -> Result<T, serde_json::Error> {
        serde_json::from_slice(message.payload())
    }
}

/// A decoded message: the record, and the message to ack or nack.
#[derive(Debug)]
pub struct Record<T> {
    /// The record.
    pub value: T,
    /// The message it came from.
    pub message: Message,
}

/// The stream of records of a source ([`Source::decoded`]).
pub struct Decoded<D> {
    source: Source,
    decoder: D,
}

impl<D> fmt::Debug for Decoded<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoded")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<D: Decoder> Decoded<D> {
    pub(crate) fn new(source: Source, decoder: D) -> Self {
        Self { source, decoder }
    }

    /// The next record; messages that fail to decode are failed meanwhile.
    pub async fn recv(&mut self) -> Option<Record<D::Item>> {
        loop {
            let message = self.source.recv().await?;
            if let Some(record) = self.decode(message) {
                return Some(record);
            }
        }
    }

    fn decode(&mut self, mut message: Message) -> Option<Record<D::Item>> {
        match self.decoder.decode(&message) {
            Ok(value) => Some(Record { value, message }),
            Err(e) => {
                message.conn_metrics_decode_failure();
                tracing::debug!(target: "mqtt_source", event = "decode.error", topic = message.topic(), error = %e);
                message.fail(Failure::Decode(e.to_string()));
                None
            }
        }
    }
}

impl<D> Decoded<D> {
    /// The source, to shut it down or read its metrics.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Back to the source.
    pub fn into_source(self) -> Source {
        self.source
    }
}

impl<D: Decoder + Unpin> futures_core::Stream for Decoded<D> {
    type Item = Record<D::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.source).poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    if let Some(record) = this.decode(message) {
                        return Poll::Ready(Some(record));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
