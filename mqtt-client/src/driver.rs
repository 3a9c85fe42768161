//! The tokio driver: the only code that touches the transport and the clock.
//!
//! One task owns the [`Engine`], the transport and one timer, and follows the
//! calling order stated in the [`crate::engine`] doc. Application acks have their
//! own unbounded channel, read before anything else: they are never stuck behind
//! a full window or a queue of commands. Commands are taken one at a time, and
//! only when the engine can act on them, so a full window holds publishers back
//! in the bounded command channel.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mqtt_codec::packet::{Publish, SubscriptionOptions};
use mqtt_codec::property::{
    AckProperties, DisconnectProperties, SubscribeProperties, UnsubscribeProperties,
};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::QoS;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::client::{AckToken, ConnectionEvent, Message, Shared};
use crate::engine::{
    AckId, Engine, Event, PublishOutcome, Refusal, State, SubscribeOutcome, UnsubscribeOutcome,
};
use crate::error::{ConnectionError, PublishError, RequestError};
use crate::options::{Options, Qos0Overflow};
use crate::session::{Session, SessionChange, SessionStore};
use crate::transport::{Attempt, Connector, ReadHalf, TransportError, TransportStream, WriteHalf};

/// A command from a [`crate::Client`] handle.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        publish: Publish,
        done: oneshot::Sender<Result<PublishOutcome, PublishError>>,
    },
    Subscribe {
        filters: Vec<(MqttString, SubscriptionOptions)>,
        properties: SubscribeProperties,
        done: oneshot::Sender<Result<SubscribeOutcome, RequestError>>,
    },
    Unsubscribe {
        filters: Vec<MqttString>,
        properties: UnsubscribeProperties,
        done: oneshot::Sender<Result<UnsubscribeOutcome, RequestError>>,
    },
}

/// A request that must never wait behind commands: it has its own channel.
#[derive(Debug)]
pub(crate) enum Control {
    Disconnect {
        reason: ReasonCode,
        properties: DisconnectProperties,
        done: oneshot::Sender<Result<(), RequestError>>,
    },
    Reauthenticate {
        done: oneshot::Sender<Result<(), RequestError>>,
    },
}

/// Bytes for the transport, and the QoS 0 publishes they complete once written.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    written: Vec<(
        oneshot::Sender<Result<PublishOutcome, PublishError>>,
        PublishOutcome,
    )>,
}

/// An application's ack.
#[derive(Debug)]
pub(crate) struct AckCommand {
    pub(crate) ticket: AckId,
    pub(crate) reason: ReasonCode,
    pub(crate) properties: AckProperties,
}

/// What the engine hands back when a command ends: where its caller waits.
#[derive(Debug)]
pub(crate) enum Completion {
    Publish(oneshot::Sender<Result<PublishOutcome, PublishError>>),
    Subscribe(oneshot::Sender<Result<SubscribeOutcome, RequestError>>),
    Unsubscribe(oneshot::Sender<Result<UnsubscribeOutcome, RequestError>>),
}

impl Completion {
    /// A publish refused before sending.
    fn fail_publish(self, refusal: Refusal<PublishError>) {
        let error = match refusal {
            Refusal::Invalid(error) => error,
            // `take_pending` asks `can_publish` first: a refusal for lack of room
            // cannot happen; if it did, the caller must not wait for ever.
            Refusal::NotReady | Refusal::Closed => PublishError::Closed,
        };
        if let Completion::Publish(done) = self {
            let _ = done.send(Err(error));
        }
    }

    /// A subscribe or unsubscribe refused before sending.
    fn fail_request(self, refusal: Refusal<RequestError>) {
        let error = match refusal {
            Refusal::Invalid(error) => error,
            // As for publishes: `can_request` was asked first.
            Refusal::NotReady | Refusal::Closed => RequestError::Closed,
        };
        match self {
            Completion::Subscribe(done) => {
                let _ = done.send(Err(error));
            }
            Completion::Unsubscribe(done) => {
                let _ = done.send(Err(error));
            }
            Completion::Publish(_) => {}
        }
    }
}

/// Commands taken from the queue in one go.
const COMMAND_BATCH: usize = 256;

/// Bytes waiting for the transport above which no input is taken until they are
/// written (bounds memory when the socket is blocked, and batches writes).
const WRITE_FIRST: usize = 64 * 1024;

/// Bytes asked of the transport per read.
const READ_SIZE: usize = 64 * 1024;

type Halves<S> = (ReadHalf<S>, WriteHalf<S>);

pub(crate) struct Driver<C: Connector> {
    engine: Engine<Completion>,
    /// Where the session is kept, when the application gave a store: changes are
    /// applied there before the bytes that depend on them are queued for writing.
    store: Option<Box<dyn SessionStore>>,
    /// The changes of one step, handed to the store in one call.
    changes: Vec<SessionChange>,
    connector: C,
    connect_timeout: Duration,
    /// The client's Maximum Packet Size, for transports with frames of their own.
    maximum_packet_size: u32,
    /// The server of the current (or last) transport.
    server: usize,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    control: mpsc::UnboundedReceiver<Control>,
    acks: mpsc::UnboundedReceiver<AckCommand>,
    ack_sender: mpsc::UnboundedSender<AckCommand>,
    messages: mpsc::Sender<Message>,
    /// Messages read that `Incoming` has no room for yet.
    undelivered: Backlog,
    /// A command taken from the channel that the engine cannot act on yet.
    pending: Option<Command>,
    /// Every `Client` handle is gone.
    commands_closed: bool,
    /// Disconnect requests waiting for the transport to close.
    disconnect_waiters: Vec<oneshot::Sender<Result<(), RequestError>>>,
    /// Re-authentications waiting for the server's AUTH 0x00.
    reauth_waiters: Vec<oneshot::Sender<Result<(), RequestError>>>,
    first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    read_buf: BytesMut,
    write_queue: VecDeque<Chunk>,
    /// Bytes were written since the last flush: a transport that buffers
    /// (WebSocket: one message per flush; TLS: records) sends them on flush.
    unflushed: bool,
    /// How long the last bytes of a closing connection may take to be written.
    flush_limit: Duration,
}

impl<C: Connector> Driver<C> {
    #[allow(
        clippy::too_many_arguments,
        reason = "internal constructor, one call site"
    )]
    pub(crate) fn new(
        mut options: Options,
        session: Option<(Box<dyn SessionStore>, Session)>,
        authenticator: Option<Box<dyn crate::engine::Authenticator>>,
        connector: C,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
        control: mpsc::UnboundedReceiver<Control>,
        acks: mpsc::UnboundedReceiver<AckCommand>,
        ack_sender: mpsc::UnboundedSender<AckCommand>,
        messages: mpsc::Sender<Message>,
        first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    ) -> Self {
        options.jitter_seed = random_seed();
        // Automatic acks are given by `Incoming` as the application takes each
        // message, not by the engine on arrival: credit follows what is pulled.
        options.auto_ack = false;
        let connect_timeout = options.connect_timeout;
        let maximum_packet_size = options.maximum_packet_size;
        let undelivered = Backlog::new(&options);
        let flush_limit = options.ping_timeout.min(Duration::from_secs(5));
        let (mut engine, store) = match session {
            Some((store, session)) => (Engine::resume(options, session), Some(store)),
            None => (Engine::new(options), None),
        };
        engine.set_server_count(connector.server_count());
        if let Some(authenticator) = authenticator {
            engine.set_authenticator(authenticator);
        }
        Self {
            engine,
            store,
            changes: Vec::new(),
            connector,
            connect_timeout,
            maximum_packet_size,
            server: 0,
            shared,
            commands,
            control,
            acks,
            ack_sender,
            messages,
            undelivered,
            pending: None,
            commands_closed: false,
            disconnect_waiters: Vec::new(),
            reauth_waiters: Vec::new(),
            first,
            read_buf: BytesMut::with_capacity(READ_SIZE),
            write_queue: VecDeque::new(),
            unflushed: false,
            flush_limit,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut transport: Option<Halves<C::Stream>> = None;
        loop {
            if transport.is_none() {
                if self.engine.is_closed() {
                    break;
                }
                let now = now();
                if self.engine.wants_transport(now) {
                    transport = self.open().await;
                    self.outputs();
                    continue;
                }
            }
            self.take_pending(now());
            self.outputs();
            if let Some((_, writer)) = transport.as_mut() {
                if self.engine.should_close_transport() {
                    // Flush what the engine wrote last (acks, DISCONNECT), then close;
                    // bounded: a peer that stopped reading must not hold the driver.
                    let limit = self.flush_limit;
                    let _ = tokio::time::timeout(limit, async {
                        flush(writer, &mut self.write_queue).await?;
                        writer.shutdown().await
                    })
                    .await;
                    transport = None;
                    self.transport_lost();
                    self.engine.handle_transport_closed(now());
                    self.outputs();
                    continue;
                }
            }
            self.step(&mut transport).await;
        }
        // The events of the last step (ConnectionLost, Closed, completions) first.
        self.outputs();
        self.finish().await;
    }

    /// The transport is gone: what was not written never will be.
    fn transport_lost(&mut self) {
        self.unflushed = false;
        for chunk in self.write_queue.drain(..) {
            for (done, _) in chunk.written {
                let _ = done.send(Err(PublishError::ConnectionLost));
            }
        }
    }

    /// Opens a transport; the engine learns the outcome.
    async fn open(&mut self) -> Option<Halves<C::Stream>> {
        if let Some(reference) = self.engine.take_redirect() {
            if let Some(server) = self.connector.redirect(&reference, self.server) {
                self.engine
                    .redirected(server, self.connector.server_count());
            }
        }
        self.server = self.engine.server_index();
        let attempt = Attempt::new(self.server, self.maximum_packet_size);
        // A disconnect (or every handle dropped) ends a hanging attempt at once.
        let attempt = tokio::time::timeout(self.connect_timeout, self.connector.connect(attempt));
        let interrupted = {
            let mut attempt = std::pin::pin!(attempt);
            loop {
                tokio::select! {
                    result = &mut attempt => break Ok(result),
                    control = self.control.recv() => match control {
                        Some(Control::Reauthenticate { done }) => {
                            let _ = done.send(Err(RequestError::NotConnected));
                        }
                        other => break Err(other),
                    },
                }
            }
        };
        let result = match interrupted {
            Ok(result) => result,
            Err(control) => {
                let now = now();
                match control {
                    Some(Control::Disconnect {
                        reason,
                        properties,
                        done,
                    }) => self.disconnect(now, reason, properties, done),
                    Some(Control::Reauthenticate { .. }) | None => self.disconnect_quietly(now),
                }
                return None;
            }
        };
        let now = now();
        match result {
            Ok(Ok(stream)) => {
                self.read_buf.clear();
                self.transport_lost();
                self.engine.handle_transport_open(now);
                Some(crate::transport::split(stream))
            }
            Ok(Err(e)) => {
                let error = self.transport_error(e);
                self.open_failed(now, error);
                None
            }
            Err(_) => {
                let error = self.transport_error(TransportError::Timeout);
                self.open_failed(now, error);
                None
            }
        }
    }

    /// A transport error of the current server, as the application sees it.
    fn transport_error(&self, error: TransportError) -> ConnectionError {
        match error {
            TransportError::Io(e) => ConnectionError::io(e),
            error => ConnectionError::Transport {
                server: self.connector.server_name(self.server),
                error: Arc::new(error),
            },
        }
    }

    /// A read or write error of an open transport: typed when the transport says
    /// more than I/O (a TLS alert, a WebSocket close).
    fn read_error(&self, error: std::io::Error) -> ConnectionError {
        self.transport_error(TransportError::from_io(error))
    }

    fn open_failed(&mut self, now: Instant, error: ConnectionError) {
        self.engine.handle_transport_error(now, error.clone());
        if self.engine.round_in_progress() {
            // Another server of the list is tried at once, `Client::connect`
            // included: its error is that of the whole round.
            return;
        }
        if let Some(first) = self.first.take() {
            // `Client::connect`: the first round's failure is the caller's error.
            let _ = first.send(Err(error));
            // 0x00 and no properties: cannot be refused.
            let _ = self.engine.disconnect(
                now,
                ReasonCode::NORMAL_DISCONNECTION,
                DisconnectProperties::EMPTY,
            );
        }
    }

    /// Waits for the next input and gives it to the engine.
    async fn step(&mut self, transport: &mut Option<Halves<C::Stream>>) {
        let deadline = self
            .engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let queued: usize = self.write_queue.iter().map(|c| c.bytes.len()).sum();
        // Writing comes last in the select below (it waits for input to pause);
        // past `WRITE_FIRST` queued bytes, input waits for the write instead.
        let behind = queued >= WRITE_FIRST;
        // Reading goes on while the application is behind, up to the backlog's
        // bound (QoS 1/2 are bounded by our Receive Maximum; QoS 0 beyond its limit
        // is dropped and counted, or pauses reading, as the options say), so that
        // an ack or SUBACK behind a burst of messages is still read. A CONNACK is
        // read in any case: what follows it in the same read is bounded by one read.
        // Reading goes on while the write queue is behind: it brings acks (bounded
        // by the windows) and PUBLISHes, and a server that writes before it reads
        // must not deadlock with us.
        let reading = transport.is_some()
            && (!self.undelivered.is_full() || self.engine.state() == State::Connecting);
        let writing = transport.is_some() && (queued > 0 || self.unflushed);
        // Commands wait while the transport is behind: QoS 0 publishes take no
        // window slot, and must not pile up in memory when the socket is blocked.
        let taking = self.pending.is_none() && !behind && !self.commands_closed;
        let delivering = !self.undelivered.is_empty();
        if self.read_buf.capacity() - self.read_buf.len() < READ_SIZE / 4 {
            self.read_buf.reserve(READ_SIZE);
        }
        let (reader, writer) = match transport.as_mut() {
            Some((r, w)) => (Some(r), Some(w)),
            None => (None, None),
        };
        tokio::select! {
            biased;
            control = self.control.recv() => match control {
                Some(Control::Disconnect { reason, properties, done }) => {
                    self.disconnect(now(), reason, properties, done);
                }
                Some(Control::Reauthenticate { done }) => match self.engine.reauthenticate(now()) {
                    Ok(()) => self.reauth_waiters.push(done),
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                },
                None => {
                    // Every `Client` handle and the `Incoming` are gone: nobody can
                    // use the client any more.
                    self.disconnect_quietly(now());
                }
            },
            Some(ack) = self.acks.recv() => {
                let now = now();
                let _ = self.engine.ack(now, ack.ticket, ack.reason, ack.properties);
                // Take every ack already queued before anything else.
                while let Ok(ack) = self.acks.try_recv() {
                    let _ = self.engine.ack(now, ack.ticket, ack.reason, ack.properties);
                }
            }
            permit = async { self.messages.clone().reserve_owned().await }, if delivering => {
                match permit {
                    Ok(permit) => {
                        if let Some(m) = self.undelivered.pop_front() {
                            permit.send(m);
                        }
                        while let Some(m) = self.undelivered.pop_front() {
                            match self.messages.try_send(m) {
                                Ok(()) => {}
                                Err(mpsc::error::TrySendError::Full(m)) => {
                                    self.undelivered.push_front(m);
                                    break;
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => break,
                            }
                        }
                    }
                    // The application dropped `Incoming`: messages go nowhere.
                    Err(_) => self.undelivered.clear(),
                }
                if !self.undelivered.is_full() {
                    self.engine.set_reading_paused(now(), false);
                }
            }
            result = read_some(reader, &mut self.read_buf), if reading => {
                let now = now();
                match result {
                    Ok(0) => {
                        *transport = None;
                        self.transport_lost();
                        self.engine.handle_transport_error(now, ConnectionError::TransportClosed);
                    }
                    Ok(_) => self.engine.handle_read(now, &mut self.read_buf),
                    Err(e) => {
                        *transport = None;
                        self.transport_lost();
                        let error = self.read_error(e);
                        self.engine.handle_transport_error(now, error);
                    }
                }
            }
            () = sleep_until(deadline) => {
                self.engine.handle_timeout(now());
            }
            command = self.commands.recv(), if taking => {
                match command {
                    Some(command) => {
                        let now = now();
                        self.pending = Some(command);
                        self.take_pending(now);
                        // Take what else is queued while the engine can act on it,
                        // so that one write carries many packets.
                        for _ in 0..COMMAND_BATCH {
                            let pending_bytes = queued + self.engine.pending_transmit();
                            if self.pending.is_some() || pending_bytes >= WRITE_FIRST {
                                break;
                            }
                            match self.commands.try_recv() {
                                Ok(command) => {
                                    self.pending = Some(command);
                                    self.take_pending(now);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    // Every `Client` is gone: no more commands. The connection lives
                    // on while `Incoming` does (it holds the control channel).
                    None => self.commands_closed = true,
                }
            }
            // Last: bytes go out once no input is ready, so that one system call
            // carries everything a burst of input produced (acks, publishes).
            result = write_or_flush(writer, &mut self.write_queue, &mut self.unflushed), if writing => {
                if let Err(e) = result {
                    *transport = None;
                    self.transport_lost();
                    let error = self.read_error(e);
                    self.engine.handle_transport_error(now(), error);
                }
            }
        }
    }

    /// Gives the pending command to the engine if it can act on it now.
    fn take_pending(&mut self, now: Instant) {
        let Some(command) = self.pending.take() else {
            return;
        };
        if self.engine.is_closed() {
            fail_command(command);
            return;
        }
        let ready = match &command {
            Command::Publish { publish, .. } => self.engine.can_publish(publish.qos),
            Command::Subscribe { .. } | Command::Unsubscribe { .. } => self.engine.can_request(),
        };
        if !ready {
            self.pending = Some(command);
            return;
        }
        match command {
            Command::Publish { publish, done } => {
                if let Err(refused) = self.engine.publish(now, publish, Completion::Publish(done)) {
                    refused.token.fail_publish(refused.error);
                }
            }
            Command::Subscribe {
                filters,
                properties,
                done,
            } => {
                let token = Completion::Subscribe(done);
                if let Err(refused) = self.engine.subscribe(now, filters, properties, token) {
                    refused.token.fail_request(refused.error);
                }
            }
            Command::Unsubscribe {
                filters,
                properties,
                done,
            } => {
                let token = Completion::Unsubscribe(done);
                if let Err(refused) = self.engine.unsubscribe(now, filters, properties, token) {
                    refused.token.fail_request(refused.error);
                }
            }
        }
    }

    /// The application disconnects: acks already given go out first, then
    /// DISCONNECT; a command still waiting for room fails with `Closed`.
    fn disconnect(
        &mut self,
        now: Instant,
        reason: ReasonCode,
        properties: DisconnectProperties,
        done: oneshot::Sender<Result<(), RequestError>>,
    ) {
        while let Ok(ack) = self.acks.try_recv() {
            let _ = self.engine.ack(now, ack.ticket, ack.reason, ack.properties);
        }
        match self.engine.disconnect(now, reason, properties) {
            Ok(()) => {
                self.disconnect_waiters.push(done);
                if let Some(command) = self.pending.take() {
                    fail_command(command);
                }
            }
            Err(error) => {
                let _ = done.send(Err(error));
            }
        }
    }

    fn disconnect_quietly(&mut self, now: Instant) {
        let (done, _) = oneshot::channel();
        // 0x00 and no properties: cannot be refused.
        self.disconnect(
            now,
            ReasonCode::NORMAL_DISCONNECTION,
            DisconnectProperties::EMPTY,
            done,
        );
    }

    /// Drains the engine's outputs: session changes to the store first, then bytes
    /// to the write queue (so nothing leaves before what it depends on is stored),
    /// then events to their owners.
    fn outputs(&mut self) {
        self.store_changes();
        while let Some(bytes) = self.engine.poll_transmit() {
            self.write_queue.push_back(Chunk {
                bytes,
                written: Vec::new(),
            });
        }
        while let Some(event) = self.engine.poll_event() {
            self.dispatch(event);
        }
        if self.undelivered.is_full() {
            self.engine.set_reading_paused(now(), true);
        }
    }

    /// Applies the engine's session changes to the store. On failure the engine
    /// drops the bytes that may depend on them and closes for good.
    fn store_changes(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if !self.engine.has_session_changes() {
            return;
        }
        self.changes.extend(self.engine.poll_session_changes());
        let result = store.apply(&self.changes);
        self.changes.clear();
        if let Err(error) = result {
            self.store = None;
            let error = ConnectionError::SessionStore(Arc::new(error));
            self.engine.handle_store_failure(now(), error);
        }
    }

    fn dispatch(&mut self, event: Event<Completion>) {
        match event {
            Event::Message(received) => {
                let token = received
                    .ack
                    .map(|t| AckToken::new(t, self.ack_sender.clone(), self.shared.clone()));
                let message = Message::new(received.publish, token, received.matched);
                // Responses to `Client::request` go to their requests.
                let Some(message) = self.shared.route_response(message) else {
                    return;
                };
                let message = if self.undelivered.is_empty() {
                    match self.messages.try_send(message) {
                        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
                        Err(mpsc::error::TrySendError::Full(m)) => Some(m),
                    }
                } else {
                    Some(message)
                };
                if let Some(message) = message {
                    if let Some((total, first)) = self.undelivered.push(message) {
                        self.shared.dropped_qos0.store(total, Ordering::Relaxed);
                        if first {
                            let _ = self
                                .shared
                                .events
                                .send(ConnectionEvent::Qos0Dropped { total });
                        }
                    }
                }
            }
            Event::PublishDone {
                token: Completion::Publish(tx),
                result: Ok(outcome),
            } if outcome.packet_id.is_none() => {
                // QoS 0: done when the bytes it left in (the last chunk) are written.
                match self.write_queue.back_mut() {
                    Some(chunk) => chunk.written.push((tx, outcome)),
                    None => {
                        let _ = tx.send(Ok(outcome));
                    }
                }
            }
            Event::PublishDone {
                token: Completion::Publish(tx),
                result,
            } => {
                let _ = tx.send(result);
            }
            Event::SubscribeDone {
                token: Completion::Subscribe(tx),
                result,
            } => {
                let _ = tx.send(result);
            }
            Event::UnsubscribeDone {
                token: Completion::Unsubscribe(tx),
                result,
            } => {
                let _ = tx.send(result);
            }
            Event::PublishDone { .. }
            | Event::SubscribeDone { .. }
            | Event::UnsubscribeDone { .. } => {}
            Event::Connected { session_present } => {
                if let Ok(mut version) = self.shared.version.lock() {
                    *version = self.engine.version();
                }
                if let Ok(mut server) = self.shared.server.lock() {
                    *server = self.engine.server().clone();
                }
                if let Ok(mut id) = self.shared.client_id.lock() {
                    self.engine.client_id().clone_into(&mut id);
                }
                self.shared
                    .epoch
                    .store(self.engine.connection_number(), Ordering::Release);
                // Broadcast first: a receiver made right after `Client::connect`
                // returns never sees this connection's event.
                let _ = self.shared.events.send(ConnectionEvent::Connected {
                    session_present,
                    server: self.connector.server_name(self.server),
                });
                if let Some(first) = self.first.take() {
                    let _ = first.send(Ok(()));
                }
            }
            Event::ConnectionLost(error) => {
                for waiter in self.reauth_waiters.drain(..) {
                    let _ = waiter.send(Err(RequestError::ConnectionLost));
                }
                // Tokens of the lost connection are now stale.
                self.shared.epoch.store(0, Ordering::Release);
                // A round over several servers goes on before `Client::connect`
                // gives up.
                let more = self.engine.round_in_progress();
                if let Some(first) = self.first.take_if(|_| !more) {
                    let _ = first.send(Err(error.clone()));
                    // 0x00 and no properties: cannot be refused.
                    let _ = self.engine.disconnect(
                        now(),
                        ReasonCode::NORMAL_DISCONNECTION,
                        DisconnectProperties::EMPTY,
                    );
                }
                let _ = self
                    .shared
                    .events
                    .send(ConnectionEvent::Disconnected(error));
            }
            Event::Reconnecting {
                attempt,
                delay,
                server,
            } => {
                let _ = self.shared.events.send(ConnectionEvent::Reconnecting {
                    attempt,
                    delay,
                    server: self.connector.server_name(server),
                });
            }
            Event::ResubscribeFailed { filter, reason } => {
                let _ = self.shared.events.send(ConnectionEvent::ResubscribeFailed {
                    filter: filter.to_string(),
                    reason,
                });
            }
            Event::MessageRefused {
                topic,
                packet_id,
                reason,
            } => {
                let _ = self.shared.events.send(ConnectionEvent::MessageRefused {
                    topic: topic.to_string(),
                    packet_id,
                    reason,
                });
            }
            Event::Reauthenticated => {
                for waiter in self.reauth_waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                let _ = self.shared.events.send(ConnectionEvent::Reauthenticated);
            }
            Event::Closed(error) => {
                self.shared.epoch.store(0, Ordering::Release);
                if let Some(first) = self.first.take() {
                    let _ = first.send(Err(error.clone()));
                }
                if let Ok(mut closed) = self.shared.closed.lock() {
                    *closed = Some(error.clone());
                }
                let _ = self.shared.events.send(ConnectionEvent::Closed(error));
            }
        }
    }

    /// The engine is closed: every waiting caller learns it.
    async fn finish(mut self) {
        if let Some(store) = self.store.as_mut() {
            // Everything was applied before it was sent; this makes it durable under
            // a lax fsync policy. A failure here has no one left to tell: the
            // client is closed, and the store reports it again when next opened.
            let _ = store.flush();
        }
        self.commands.close();
        self.control.close();
        while let Ok(control) = self.control.try_recv() {
            match control {
                Control::Disconnect { done, .. } => {
                    let _ = done.send(Ok(()));
                }
                Control::Reauthenticate { done } => {
                    let _ = done.send(Err(RequestError::Closed));
                }
            }
        }
        for waiter in self.reauth_waiters.drain(..) {
            let _ = waiter.send(Err(RequestError::Closed));
        }
        self.shared.close_responses();
        if let Some(command) = self.pending.take() {
            fail_command(command);
        }
        while let Ok(command) = self.commands.try_recv() {
            fail_command(command);
        }
        self.transport_lost();
        for waiter in self.disconnect_waiters.drain(..) {
            let _ = waiter.send(Ok(()));
        }
        // Messages already read are handed over as the application takes them, in
        // the background: a `disconnect().await` in the task that reads `Incoming`
        // must not wait for itself. Bounded: an application that stopped reading
        // does not keep them forever (QoS 1/2 ones come again on a resumed session).
        let undelivered = self.undelivered.take();
        if !undelivered.is_empty() {
            let messages = self.messages.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), async move {
                    for message in undelivered {
                        if messages.send(message).await.is_err() {
                            break;
                        }
                    }
                })
                .await;
            });
        }
        self.shared.finished.send_replace(true);
    }
}

/// Messages read that `Incoming` has no room for, in order.
///
/// QoS 1/2 messages are bounded by the Receive Maximum we advertise (and in lenient
/// mode, past it, by pausing reading). QoS 0 messages beyond `qos0_limit` are
/// dropped and counted ([`Qos0Overflow::Drop`]) or pause reading
/// ([`Qos0Overflow::PauseReading`]).
#[derive(Debug)]
struct Backlog {
    queue: VecDeque<Message>,
    qos0: usize,
    qos0_limit: usize,
    overflow: Qos0Overflow,
    /// Past this many messages of any QoS, reading pauses.
    limit: usize,
    /// QoS 0 messages dropped since the client started.
    dropped: u64,
    /// Dropping since the backlog last had room (one event per episode).
    dropping: bool,
}

impl Backlog {
    fn new(options: &Options) -> Self {
        let qos0_limit = options.qos0_backlog.max(1);
        Self {
            queue: VecDeque::new(),
            qos0: 0,
            qos0_limit,
            overflow: options.qos0_overflow,
            limit: qos0_limit + usize::from(options.receive_maximum.max(1)),
            dropped: 0,
            dropping: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Reading must pause.
    fn is_full(&self) -> bool {
        self.queue.len() >= self.limit
            || (self.overflow == Qos0Overflow::PauseReading && self.qos0 >= self.qos0_limit)
    }

    /// Queues a message, or drops it (QoS 0 over its limit): then returns the total
    /// dropped so far, and whether this starts a new episode of dropping.
    fn push(&mut self, message: Message) -> Option<(u64, bool)> {
        if message.qos() == QoS::AtMostOnce {
            if self.qos0 >= self.qos0_limit && self.overflow == Qos0Overflow::Drop {
                self.dropped += 1;
                let first = !self.dropping;
                self.dropping = true;
                return Some((self.dropped, first));
            }
            self.qos0 += 1;
        }
        self.queue.push_back(message);
        None
    }

    fn pop_front(&mut self) -> Option<Message> {
        let message = self.queue.pop_front()?;
        if message.qos() == QoS::AtMostOnce {
            self.qos0 -= 1;
        }
        self.dropping = false;
        Some(message)
    }

    fn push_front(&mut self, message: Message) {
        if message.qos() == QoS::AtMostOnce {
            self.qos0 += 1;
        }
        self.queue.push_front(message);
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.qos0 = 0;
    }

    fn take(&mut self) -> VecDeque<Message> {
        self.qos0 = 0;
        std::mem::take(&mut self.queue)
    }
}

fn fail_command(command: Command) {
    match command {
        Command::Publish { done, .. } => {
            let _ = done.send(Err(PublishError::Closed));
        }
        Command::Subscribe { done, .. } => {
            let _ = done.send(Err(RequestError::Closed));
        }
        Command::Unsubscribe { done, .. } => {
            let _ = done.send(Err(RequestError::Closed));
        }
    }
}

async fn read_some<S: TransportStream>(
    reader: Option<&mut ReadHalf<S>>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read_bytes(buf).await,
        None => std::future::pending().await,
    }
}

async fn write_some<S: TransportStream>(
    writer: Option<&mut WriteHalf<S>>,
    queue: &mut VecDeque<Chunk>,
) -> std::io::Result<()> {
    let Some(w) = writer else {
        return std::future::pending().await;
    };
    // One system call for everything queued (up to 64 buffers).
    let slices: Vec<std::io::IoSlice<'_>> = queue
        .iter()
        .take(64)
        .map(|c| std::io::IoSlice::new(&c.bytes))
        .collect();
    let mut n = w.write_vectored(&slices).await?;
    drop(slices);
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            break;
        };
        let take = n.min(front.bytes.len());
        front.bytes.advance(take);
        n -= take;
        if front.bytes.is_empty() {
            if let Some(chunk) = queue.pop_front() {
                for (done, outcome) in chunk.written {
                    let _ = done.send(Ok(outcome));
                }
            }
        }
    }
    Ok(())
}

/// Writes what is queued; once the queue is empty, flushes. A flush cut short
/// (another branch of the loop won) leaves `unflushed` set and comes again.
async fn write_or_flush<S: TransportStream>(
    writer: Option<&mut WriteHalf<S>>,
    queue: &mut VecDeque<Chunk>,
    unflushed: &mut bool,
) -> std::io::Result<()> {
    let Some(w) = writer else {
        return std::future::pending().await;
    };
    if queue.is_empty() {
        w.flush().await?;
        *unflushed = false;
    } else {
        write_some(Some(&mut *w), queue).await?;
        *unflushed = true;
    }
    Ok(())
}

async fn flush<S: TransportStream>(
    writer: &mut WriteHalf<S>,
    queue: &mut VecDeque<Chunk>,
) -> std::io::Result<()> {
    while !queue.is_empty() {
        write_some(Some(&mut *writer), queue).await?;
    }
    writer.flush().await
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The current time, on tokio's clock (so that a paused test clock drives the
/// engine too), as the `std::time::Instant` the engine takes. The driver reads
/// the time only here.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A seed for the reconnection jitter, different in every process and client.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
