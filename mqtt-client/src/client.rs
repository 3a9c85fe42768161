//! The application's side: the cloneable [`Client`] handle, incoming [`Message`]s
//! with their [`AckToken`]s, and completion handles.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::packet::{PacketType, Publish};
use mqtt_codec::property::{AckProperties, DisconnectProperties, PublishProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::{PacketId, QoS};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::driver::{self, Command, Control};
use crate::engine::{AckId, PublishOutcome, ServerInfo, SubscribeOutcome, UnsubscribeOutcome};
use crate::error::{AckError, ConnectionError, PublishError, RequestError, ResponseError};
use crate::options::Options;
use crate::session::{Session, SessionStore, StoreError};
use crate::subscription::{SubscribeRequest, Subscription, UnsubscribeRequest};
use crate::transport::Connector;

/// A change in the connection, as seen by [`Client::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Connected (CONNACK accepted).
    Connected {
        /// Whether the server resumed the session.
        session_present: bool,
        /// The server connected to, as the connector names it (a URL without
        /// its password for [`Servers`](crate::transport::Servers)).
        server: String,
    },
    /// The connection ended; why, and who ended it ([`ConnectionError::initiator`]).
    Disconnected(ConnectionError),
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// Rounds of attempts since the last accepted CONNACK, this one included
        /// (a round tries every server of the list once).
        attempt: u32,
        /// Delay before it: zero while a round goes on to the next server.
        delay: Duration,
        /// The server it goes to.
        server: String,
    },
    /// A subscription restored after a lost session was refused.
    ResubscribeFailed {
        /// The filter.
        filter: String,
        /// The SUBACK reason code.
        reason: ReasonCode,
    },
    /// A message from the server was refused and not handed over: its Payload
    /// Format Indicator says UTF-8 and its payload is not (MQTT 5, 3.3.2.3.2).
    /// A QoS 1/2 message was answered with `reason` (0x99 Payload format
    /// invalid), so the server does not send it again; a QoS 0 one was dropped.
    MessageRefused {
        /// The message's topic.
        topic: String,
        /// Its packet identifier (`None` for QoS 0).
        packet_id: Option<PacketId>,
        /// Why: 0x99 Payload format invalid.
        reason: ReasonCode,
    },
    /// The client is closed for good.
    Closed(ConnectionError),
    /// A re-authentication succeeded ([`Client::reauthenticate`]).
    Reauthenticated,
    /// The application dropped the ack token of a QoS 1/2 message of the current
    /// connection without acknowledging it: that ack, and every ack of a message
    /// received after it, is held until the connection ends (the server then sends
    /// the message again on a resumed session). Counted by
    /// [`Client::dropped_ack_tokens`].
    AckTokenDropped {
        /// The message's packet identifier.
        packet_id: PacketId,
    },
    /// The application fell behind by more than [`Options::with_qos0_backlog`] QoS 0
    /// messages, and the client began dropping them ([`crate::Qos0Overflow::Drop`]);
    /// reported once per episode. `total` counts every QoS 0 message dropped since
    /// the client started ([`Client::dropped_qos0`]).
    Qos0Dropped {
        /// QoS 0 messages dropped so far.
        total: u64,
    },
}

/// The outcome of the first connection attempt, for [`ClientBuilder::connect`].
type FirstConnack = oneshot::Receiver<Result<(), ConnectionError>>;

/// State shared by the handles and the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The current connection's number (0: none yet); ack tokens of another are stale.
    pub(crate) epoch: AtomicU64,
    pub(crate) server: Mutex<ServerInfo>,
    pub(crate) client_id: Mutex<String>,
    pub(crate) closed: Mutex<Option<ConnectionError>>,
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
    /// The protocol version of the last connection (it changes once, when the
    /// MQTT 3.1.1 fallback is taken), for checking reason codes where they are given.
    pub(crate) version: Mutex<mqtt_codec::ProtocolVersion>,
    /// Ack tokens of the current connection dropped unacknowledged.
    pub(crate) dropped_tokens: AtomicU64,
    /// QoS 0 messages dropped because the application was behind.
    pub(crate) dropped_qos0: AtomicU64,
    /// True once the driver task has ended.
    pub(crate) finished: watch::Sender<bool>,
    /// Request/response ([`Client::request`]): the driver routes messages on the
    /// response topic to the requests waiting for them.
    pub(crate) responses: Mutex<Responses>,
    /// True once a response topic is in use: until then the driver does not
    /// look at `responses` for every message.
    pub(crate) responses_active: AtomicBool,
    /// The response topic, subscribed to at the first request.
    response_topic: tokio::sync::OnceCell<String>,
    /// What the default response topic is made of.
    response_config: ResponseConfig,
    /// Correlation Data: this client's random prefix and a counter.
    correlation_nonce: u64,
    correlation_next: AtomicU64,
}

/// How [`Client::request`] finds its response topic.
#[derive(Debug)]
struct ResponseConfig {
    /// [`Options::with_response_topic`].
    topic: Option<String>,
    /// [`Options::with_request_response_information`].
    use_response_information: bool,
}

/// The requests waiting for a response, by Correlation Data, and the topic
/// their responses come on.
#[derive(Debug, Default)]
pub(crate) struct Responses {
    pub(crate) topic: Option<String>,
    pub(crate) waiting: HashMap<Bytes, oneshot::Sender<Message>>,
}

impl Shared {
    /// A message from the server is a response when it comes on the response
    /// topic: it goes to the request waiting for its Correlation Data (or
    /// nowhere, if none waits any more), acknowledged here, and not to
    /// [`Incoming`]. Other messages come back.
    pub(crate) fn route_response(&self, mut message: Message) -> Option<Message> {
        if !self.responses_active.load(Ordering::Acquire) {
            return Some(message);
        }
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if responses.topic.as_deref() != Some(message.topic()) {
            return Some(message);
        }
        // The client took it: its ack is the client's to give. (A stale token
        // is refused: the server sends the message again, and it comes here.)
        let _ = message.ack();
        let waiter = message
            .properties()
            .correlation_data
            .as_ref()
            .and_then(|c| responses.waiting.remove(c));
        match waiter {
            Some(waiter) => {
                // The request may have timed out meanwhile: then it goes nowhere.
                let _ = waiter.send(message);
            }
            None => tracing::debug!(
                topic = message.topic(),
                "a response nobody waits for (late, or not ours) was dropped"
            ),
        }
        None
    }

    /// The client stopped: waiting requests end at once.
    pub(crate) fn close_responses(&self) {
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        responses.waiting.clear();
    }
}

/// A request waiting for its response: forgotten when the wait ends, whatever
/// ends it (response, timeout, error, the future dropped).
struct Waiting<'a> {
    shared: &'a Shared,
    correlation: Bytes,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut responses = self
            .shared
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        responses.waiting.remove(&self.correlation);
    }
}

impl Shared {
    pub(crate) fn version(&self) -> mqtt_codec::ProtocolVersion {
        *self
            .version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A handle to a running client: cheap to clone, usable from any task.
///
/// The connection itself is run by a driver task spawned by [`Client::connect`] or
/// [`Client::start`] on the current tokio runtime; it ends when the client is
/// disconnected, gives up reconnecting, or when every `Client` handle and the
/// [`Incoming`] are dropped (a normal DISCONNECT): `let (_, mut incoming) = ...`
/// keeps receiving for as long as `incoming` lives. Every handle then returns
/// errors; [`Client::closed`] waits for that end.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
}

impl Client {
    /// Connects and waits for the first CONNACK, without a session store (the
    /// session lives as long as the client). See [`ClientBuilder::connect`].
    pub async fn connect<C: Connector>(
        options: Options,
        connector: C,
    ) -> Result<(Client, Incoming), ConnectionError> {
        Self::builder(options).connect(connector).await
    }

    /// Starts the client without waiting, without a session store. See
    /// [`ClientBuilder::start`].
    pub fn start<C: Connector>(
        options: Options,
        connector: C,
    ) -> Result<(Client, Incoming), ConnectionError> {
        Self::builder(options).start(connector)
    }

    /// A client with these options, to give a session store before connecting.
    pub fn builder(options: Options) -> ClientBuilder {
        ClientBuilder {
            options,
            store: None,
            authenticator: None,
        }
    }

    fn spawn<C: Connector>(
        mut options: Options,
        store: Option<Box<dyn SessionStore>>,
        authenticator: Option<Box<dyn crate::engine::Authenticator>>,
        connector: C,
        fail_fast: bool,
    ) -> Result<(Client, Incoming, FirstConnack), ConnectionError> {
        // Credentials in the server URL, unless the options carry their own.
        if options.username.is_none() && options.password.is_none() {
            if let Some((user, password)) = connector.credentials() {
                options.username = Some(user);
                options.password = password;
            }
        }
        options.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ConnectionError::NoRuntime)?;
        let session = match store {
            Some(mut store) => {
                let session = store
                    .load()
                    .map_err(|e| ConnectionError::SessionStore(Arc::new(e)))?;
                if let Some(stored) = &session.client_id {
                    if !options.client_id.is_empty() && *stored != options.client_id {
                        return Err(ConnectionError::SessionStore(Arc::new(
                            StoreError::ClientIdMismatch {
                                stored: stored.clone(),
                                configured: options.client_id,
                            },
                        )));
                    }
                }
                Some((store, session))
            }
            None => None,
        };
        let client_id = match &session {
            Some((
                _,
                Session {
                    client_id: Some(id),
                    ..
                },
            )) => id.clone(),
            _ => options.client_id().to_owned(),
        };
        let (events, _) = broadcast::channel(64);
        let auto_ack = options.auto_ack;
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            server: Mutex::new(ServerInfo::default()),
            client_id: Mutex::new(client_id),
            closed: Mutex::new(None),
            events,
            version: Mutex::new(options.version),
            dropped_tokens: AtomicU64::new(0),
            dropped_qos0: AtomicU64::new(0),
            finished: watch::Sender::new(false),
            responses: Mutex::new(Responses::default()),
            responses_active: AtomicBool::new(false),
            response_topic: tokio::sync::OnceCell::new(),
            response_config: ResponseConfig {
                topic: options.response_topic.clone(),
                use_response_information: options.request_response_information,
            },
            correlation_nonce: driver::random_seed(),
            correlation_next: AtomicU64::new(0),
        });
        let (commands, command_rx) = mpsc::channel(options.request_queue.max(1));
        let (control, control_rx) = mpsc::unbounded_channel();
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let (messages, message_rx) = mpsc::channel(usize::from(options.receive_maximum.max(16)));
        let (first_tx, first_rx) = oneshot::channel();
        let driver = driver::Driver::new(
            options,
            session,
            authenticator,
            connector,
            shared.clone(),
            command_rx,
            control_rx,
            ack_rx,
            acks,
            messages,
            if fail_fast { Some(first_tx) } else { None },
        );
        runtime.spawn(driver.run());
        Ok((
            Client {
                commands,
                control: control.clone(),
                shared,
            },
            Incoming {
                messages: message_rx,
                auto_ack,
                _connection: control,
            },
            first_rx,
        ))
    }

    /// Publishes `payload` to `topic`. See [`Client::publish_with`].
    pub async fn publish(
        &self,
        topic: impl AsRef<str>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<PublishHandle, PublishError> {
        let topic = topic.as_ref();
        let invalid = |reason| PublishError::InvalidTopic {
            topic: topic.to_owned(),
            reason,
        };
        mqtt_codec::topic::check_topic_name(topic).map_err(invalid)?;
        let topic = MqttString::try_from(topic).map_err(invalid)?;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: None,
            properties: None,
            payload: payload.into(),
        };
        self.publish_with(publish).await
    }

    /// Publishes a PUBLISH built by the caller (with MQTT 5 properties, say).
    ///
    /// Returns once the message is accepted for sending: it is in the client's
    /// bounded queue of requests, which the connection sends in order. When that
    /// queue is full (the window of unacknowledged messages — the minimum of the
    /// server's Receive Maximum and [`Options::with_max_inflight`] — is full and as many
    /// requests wait behind it, or the client is reconnecting), this waits: it never
    /// errors for lack of room and never queues without bound.
    ///
    /// The returned handle completes at the end of the flow: QoS 0 when written,
    /// QoS 1 at PUBACK, QoS 2 at PUBCOMP, with the packet identifier, the reason
    /// code and the properties of the final ack. A refusal before sending (larger
    /// than the server's Maximum Packet Size, QoS above its Maximum QoS, ...) and a
    /// failure reason code from the server are errors of the handle.
    pub async fn publish_with(&self, publish: Publish) -> Result<PublishHandle, PublishError> {
        let (done, done_rx) = oneshot::channel();
        self.commands
            .send(Command::Publish { publish, done })
            .await
            .map_err(|_| PublishError::Closed)?;
        Ok(PublishHandle { done: done_rx })
    }

    /// Subscribes to one filter at most at this QoS, with the default options, and
    /// returns the SUBACK. See [`Client::subscribe_with`] for options, several
    /// filters and MQTT 5 properties.
    pub async fn subscribe(
        &self,
        filter: impl Into<String>,
        qos: QoS,
    ) -> Result<SubscribeOutcome, RequestError> {
        self.subscribe_with(Subscription::new(filter, qos)).await
    }

    /// Sends one SUBSCRIBE ([`Subscription`] with its options, or a
    /// [`SubscribeRequest`] of several with its properties) and returns the SUBACK:
    /// per filter, in order, the granted QoS or the failure reason code. Granted
    /// subscriptions are part of the session: restored if the server loses it.
    pub async fn subscribe_with(
        &self,
        request: impl Into<SubscribeRequest>,
    ) -> Result<SubscribeOutcome, RequestError> {
        let (filters, properties) = request.into().into_parts()?;
        self.send_request(|done| Command::Subscribe {
            filters,
            properties,
            done,
        })
        .await
    }

    /// Unsubscribes from one filter and returns the UNSUBACK.
    pub async fn unsubscribe(
        &self,
        filter: impl Into<String>,
    ) -> Result<UnsubscribeOutcome, RequestError> {
        self.unsubscribe_with(UnsubscribeRequest::new().filter(filter))
            .await
    }

    /// Sends one UNSUBSCRIBE (several filters, MQTT 5 properties) and returns the
    /// UNSUBACK.
    pub async fn unsubscribe_with(
        &self,
        request: impl Into<UnsubscribeRequest>,
    ) -> Result<UnsubscribeOutcome, RequestError> {
        let (filters, properties) = request.into().into_parts()?;
        self.send_request(|done| Command::Unsubscribe {
            filters,
            properties,
            done,
        })
        .await
    }

    /// Sends a request through the bounded queue and waits for its answer.
    async fn send_request<R>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<R, RequestError>>) -> Command,
    ) -> Result<R, RequestError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .send(command(done))
            .await
            .map_err(|_| RequestError::Closed)?;
        rx.await.map_err(|_| RequestError::Closed)?
    }

    /// Sends a request and waits for its response (MQTT 5 request/response,
    /// 4.10): publishes `payload` to `topic` at QoS 1 with a Response Topic and a
    /// Correlation Data of its own, and returns the first message that comes
    /// back on the response topic with that Correlation Data, or
    /// [`ResponseError::Timeout`] after `timeout`. See [`Client::request_with`].
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(client: mqtt_client::Client) -> Result<(), mqtt_client::ResponseError> {
    /// let reply = client
    ///     .request("svc/thermostat/get", "line1", Duration::from_secs(5))
    ///     .await?;
    /// println!("{:?}", reply.payload());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request(
        &self,
        topic: impl AsRef<str>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, ResponseError> {
        let topic = topic.as_ref();
        let invalid = |reason| {
            ResponseError::Publish(PublishError::InvalidTopic {
                topic: topic.to_owned(),
                reason,
            })
        };
        mqtt_codec::topic::check_topic_name(topic).map_err(invalid)?;
        let topic = MqttString::try_from(topic).map_err(invalid)?;
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: None,
            payload: payload.into(),
        };
        self.request_with(publish, timeout).await
    }

    /// Sends `publish` as a request (its QoS, properties and all) and waits at
    /// most `timeout` for the response; the Response Topic and Correlation Data
    /// are the client's (any set in `publish` are replaced).
    ///
    /// The first request subscribes (QoS 1) to the response topic:
    /// [`Options::with_response_topic`] if set, else
    /// `{Response Information}/{client id}` when the options asked for Response
    /// Information ([`Options::with_request_response_information`]) and the
    /// server gave it, else `responses/{client id}`. The subscription is part of
    /// the session (restored if the server loses it) and is made once; a failed
    /// one is tried again by the next request.
    ///
    /// Every message on the response topic is taken by the client, acknowledged
    /// on arrival and never handed to [`Incoming`]: the response goes to the
    /// request that waits for its Correlation Data, and one that comes after
    /// its request timed out (or that matches none) is dropped. Requests run
    /// concurrently, each with its own Correlation Data (a random prefix of this
    /// client and a counter). The response topic is fixed at the first request,
    /// from what the server said then.
    pub async fn request_with(
        &self,
        mut publish: Publish,
        timeout: Duration,
    ) -> Result<Message, ResponseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let response_topic = tokio::time::timeout_at(deadline, self.response_topic())
            .await
            .map_err(|_| ResponseError::Timeout)??;
        let response_topic = MqttString::try_from(response_topic.as_str())
            .map_err(|e| ResponseError::ResponseTopic(e.to_string()))?;
        let correlation = self.next_correlation();
        let (tx, rx) = oneshot::channel();
        self.shared
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .waiting
            .insert(correlation.clone(), tx);
        let _waiting = Waiting {
            shared: &self.shared,
            correlation: correlation.clone(),
        };
        let properties = publish.properties.get_or_insert_with(Default::default);
        properties.response_topic = Some(response_topic);
        properties.correlation_data = Some(correlation);
        let exchange = async {
            let handle = self
                .publish_with(publish)
                .await
                .map_err(ResponseError::Publish)?;
            handle.await.map_err(ResponseError::Publish)?;
            rx.await.map_err(|_| ResponseError::Closed)
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| ResponseError::Timeout)?
    }

    /// The response topic, subscribed to at the first call.
    async fn response_topic(&self) -> Result<&String, ResponseError> {
        self.shared
            .response_topic
            .get_or_try_init(|| async {
                let topic = self.default_response_topic()?;
                mqtt_codec::topic::check_topic_name(&topic)
                    .map_err(|e| ResponseError::ResponseTopic(format!("{topic:?}: {e}")))?;
                // Routed from now on, so that nothing on it reaches `Incoming`,
                // even before the SUBACK (a retained message, say).
                self.set_response_route(Some(topic.clone()));
                let subscribed = self
                    .subscribe(topic.as_str(), QoS::AtLeastOnce)
                    .await
                    .and_then(SubscribeOutcome::check);
                match subscribed {
                    Ok(_) => Ok(topic),
                    Err(e) => {
                        self.set_response_route(None);
                        Err(ResponseError::Subscribe(e))
                    }
                }
            })
            .await
    }

    fn default_response_topic(&self) -> Result<String, ResponseError> {
        let config = &self.shared.response_config;
        if let Some(topic) = &config.topic {
            return Ok(topic.clone());
        }
        let client_id = self.client_id();
        if client_id.is_empty() {
            return Err(ResponseError::ResponseTopic(
                "the server has not assigned the client identifier yet".to_owned(),
            ));
        }
        let server = self.server();
        let base = server
            .response_information()
            .filter(|_| config.use_response_information)
            .map(|b| b.trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .unwrap_or("responses");
        Ok(format!("{base}/{client_id}"))
    }

    fn set_response_route(&self, topic: Option<String>) {
        let active = topic.is_some();
        self.shared
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .topic = topic;
        self.shared
            .responses_active
            .store(active, Ordering::Release);
    }

    /// Correlation Data unique to one request: 8 random bytes of this client,
    /// then a counter.
    fn next_correlation(&self) -> Bytes {
        let n = self.shared.correlation_next.fetch_add(1, Ordering::Relaxed);
        let mut data = Vec::with_capacity(16);
        data.extend_from_slice(&self.shared.correlation_nonce.to_be_bytes());
        data.extend_from_slice(&n.to_be_bytes());
        Bytes::from(data)
    }

    /// Disconnects normally (reason 0x00) and waits until the transport is closed.
    /// [`RequestError::Closed`] when the client had already stopped before this
    /// call ([`Client::closed_reason`] says why): nothing was sent then.
    pub async fn disconnect(&self) -> Result<(), RequestError> {
        // 0x00 without properties is valid in every version: nothing to refuse.
        self.disconnect_with(
            ReasonCode::NORMAL_DISCONNECTION,
            DisconnectProperties::EMPTY,
        )
        .await
    }

    /// Re-authenticates (MQTT 5 enhanced authentication, AUTH 0x19) with the
    /// authenticator given to [`ClientBuilder::authenticator`], and waits for the
    /// server's AUTH 0x00. Messages keep flowing meanwhile. A failed exchange
    /// ends the connection (the error is in the events).
    pub async fn reauthenticate(&self) -> Result<(), RequestError> {
        let (done, rx) = oneshot::channel();
        if self.control.send(Control::Reauthenticate { done }).is_err() {
            return Err(RequestError::Closed);
        }
        rx.await.unwrap_or(Err(RequestError::Closed))
    }

    /// Disconnects with a reason code and properties (MQTT 5; 3.1.1 sends a plain
    /// DISCONNECT), and waits until the transport is closed. Acks the application
    /// already gave are written first; then DISCONNECT; unfinished publishes
    /// complete with [`PublishError::Closed`]. Use 0x04 (Disconnect with Will
    /// Message) to have the server publish the will. A reason code DISCONNECT
    /// cannot carry is refused ([`RequestError::Encode`]) and the client goes on;
    /// [`RequestError::Closed`] when the client had already stopped.
    pub async fn disconnect_with(
        &self,
        reason: ReasonCode,
        properties: DisconnectProperties,
    ) -> Result<(), RequestError> {
        // Checked here, so that a refusal never disturbs the connection.
        crate::engine::disconnect_packet(self.shared.version(), reason, properties.clone())?;
        let (done, rx) = oneshot::channel();
        // Its own channel: a disconnect never waits behind publishes that wait for
        // room in the window.
        let control = Control::Disconnect {
            reason,
            properties,
            done,
        };
        if self.control.send(control).is_err() {
            return Err(RequestError::Closed);
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// Connection events (connected, disconnected and why, reconnecting). A
    /// receiver that falls more than 64 events behind loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.events.subscribe()
    }

    /// What the server said in the last CONNACK (Receive Maximum, Maximum QoS, ...).
    pub fn server(&self) -> ServerInfo {
        self.shared
            .server
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The client identifier in use (the assigned one if the server assigned it).
    pub fn client_id(&self) -> String {
        self.shared
            .client_id
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The current connection's number, counting from 1 (0 while not connected).
    pub fn connection_number(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Why the client closed, once it has.
    pub fn closed_reason(&self) -> Option<ConnectionError> {
        self.shared.closed.lock().ok().and_then(|c| c.clone())
    }

    /// True once the driver has stopped.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Waits until the client has stopped for good (its driver task ended: every
    /// handle then returns errors), and says why.
    pub async fn closed(&self) -> ConnectionError {
        let mut finished = self.shared.finished.subscribe();
        // The sender lives in `Shared`, which `self` holds: never closed here.
        let _ = finished.wait_for(|done| *done).await;
        self.closed_reason()
            .unwrap_or(ConnectionError::LocalDisconnect)
    }

    /// QoS 0 messages dropped since the start because the application was more
    /// than [`Options::with_qos0_backlog`] messages behind (see [`crate::Qos0Overflow`]).
    pub fn dropped_qos0(&self) -> u64 {
        self.shared.dropped_qos0.load(Ordering::Relaxed)
    }

    /// Ack tokens of QoS 1/2 messages that the application dropped without
    /// acknowledging them, each held the acks behind it (see
    /// [`ConnectionEvent::AckTokenDropped`]).
    pub fn dropped_ack_tokens(&self) -> u64 {
        self.shared.dropped_tokens.load(Ordering::Relaxed)
    }
}

/// A client about to start: its options and, optionally, where its session is kept.
///
/// ```no_run
/// use mqtt_client::session::{FileStore, FsyncPolicy};
/// use mqtt_client::{Client, Options, Tcp};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = FileStore::open("line-1.session", FsyncPolicy::Always)?;
/// let options = Options::new("line-1").with_clean_start(false).with_session_expiry(3600);
/// let (client, incoming) = Client::builder(options)
///     .session_store(store)
///     .connect(Tcp::new("127.0.0.1:1883"))
///     .await?;
/// # drop((client, incoming));
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until connect or start"]
pub struct ClientBuilder {
    options: Options,
    store: Option<Box<dyn SessionStore>>,
    authenticator: Option<Box<dyn crate::engine::Authenticator>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("options", &self.options)
            .field("session_store", &self.store.is_some())
            .finish()
    }
}

impl ClientBuilder {
    /// Keeps the session in `store`: it is loaded when the client starts (the
    /// client resumes it: unfinished outgoing messages are sent again, incoming
    /// QoS 2 messages acknowledged before are not handed over again), and every
    /// change is applied to it before the packets that depend on it are sent.
    /// Without one, the session lives as long as the client.
    ///
    /// A store is one client's: its session's client identifier must match the
    /// options' (or the options' is empty, and the stored one is used).
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// MQTT 5 enhanced authentication with `authenticator` (its method goes into
    /// every CONNECT; see [`crate::engine::Authenticator`] and, with the crate
    /// feature `scram`, [`crate::scram::Scram`]). Refused with MQTT 3.1.1.
    pub fn authenticator(mut self, authenticator: impl crate::engine::Authenticator) -> Self {
        self.authenticator = Some(Box::new(authenticator));
        self
    }

    /// Connects and waits for the first CONNACK (within a tokio runtime: the
    /// driver is a spawned task). Returns the error of the first attempt if it
    /// fails (a refused CONNACK, an unreachable server): a misconfiguration shows at
    /// start-up. Later connections are automatic.
    pub async fn connect<C: Connector>(
        self,
        connector: C,
    ) -> Result<(Client, Incoming), ConnectionError> {
        let (client, incoming, first) = Client::spawn(
            self.options,
            self.store,
            self.authenticator,
            connector,
            true,
        )?;
        match first.await {
            Ok(Ok(())) => Ok((client, incoming)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(client
                .closed_reason()
                .unwrap_or(ConnectionError::LocalDisconnect)),
        }
    }

    /// Starts the client without waiting (within a tokio runtime): the first
    /// connection is attempted at once and retried with backoff like any
    /// reconnection. Fails only when the options cannot make a valid CONNECT or
    /// the session store cannot be read.
    pub fn start<C: Connector>(self, connector: C) -> Result<(Client, Incoming), ConnectionError> {
        let (client, incoming, _) = Client::spawn(
            self.options,
            self.store,
            self.authenticator,
            connector,
            false,
        )?;
        Ok((client, incoming))
    }
}

/// Completes at the end of a PUBLISH flow: QoS 0 when written, QoS 1 at PUBACK,
/// QoS 2 at PUBCOMP. A failure reason code from the server is an error.
#[derive(Debug)]
pub struct PublishHandle {
    done: oneshot::Receiver<Result<PublishOutcome, PublishError>>,
}

impl Future for PublishHandle {
    type Output = Result<PublishOutcome, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.done)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PublishError::Closed)))
    }
}

/// Incoming messages, pulled by the application.
///
/// What is not pulled is not granted: QoS 1/2 messages stop at the Receive
/// Maximum while their acks are not given. The client goes on reading the
/// connection while the application is behind, so acknowledgements behind a burst
/// of messages are read: `subscribe(..).await` then a loop over `recv()` works even
/// with a retained backlog far larger than this channel. QoS 0 messages beyond
/// [`Options::with_qos0_backlog`] are dropped and counted ([`Client::dropped_qos0`],
/// [`ConnectionEvent::Qos0Dropped`]), or, with [`crate::Qos0Overflow::PauseReading`],
/// stop the reading (and then acks behind them wait too). Keep-alive goes on
/// meanwhile.
///
/// `Incoming` keeps the connection up even when every [`Client`] handle is dropped.
#[derive(Debug)]
pub struct Incoming {
    messages: mpsc::Receiver<Message>,
    auto_ack: bool,
    /// Keeps the connection up while the application reads, even with every
    /// `Client` handle dropped.
    _connection: mpsc::UnboundedSender<Control>,
}

impl Incoming {
    /// The next message; `None` once the client is closed and all were taken.
    ///
    /// With [`Options::with_auto_ack`], a QoS 1/2 message is acknowledged here, as the
    /// application takes it: credit is granted only as fast as it pulls. (An
    /// application that must not lose a message it took but did not process acks
    /// itself.)
    pub async fn recv(&mut self) -> Option<Message> {
        let message = self.messages.recv().await;
        message.map(|m| self.take(m))
    }

    /// A message if one is ready.
    pub fn try_recv(&mut self) -> Option<Message> {
        let message = self.messages.try_recv().ok();
        message.map(|m| self.take(m))
    }

    fn take(&self, mut message: Message) -> Message {
        if self.auto_ack {
            // A stale token (the connection was lost meanwhile) is refused: the
            // server sends the message again.
            let _ = message.ack();
        }
        message
    }
}

impl futures_core::Stream for Incoming {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let polled = self.messages.poll_recv(cx);
        polled.map(|m| m.map(|m| self.take(m)))
    }
}

/// A message from the server.
///
/// A QoS 1/2 message carries its [`AckToken`] (unless [`Options::with_auto_ack`] is on):
/// dropping the message drops the token unacknowledged (see [`AckToken`]).
#[derive(Debug)]
#[must_use = "a QoS 1/2 message must be acknowledged (ack), or its ack and every later one wait"]
pub struct Message {
    publish: Publish,
    token: Option<AckToken>,
    /// The filters of our subscriptions it matched (by Subscription Identifier).
    matched: Vec<MqttString>,
}

impl Message {
    pub(crate) fn new(publish: Publish, token: Option<AckToken>, matched: Vec<MqttString>) -> Self {
        Self {
            publish,
            token,
            matched,
        }
    }

    /// The topic (resolved when the server used a Topic Alias).
    pub fn topic(&self) -> &str {
        self.publish.topic.as_str()
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.publish.payload
    }

    /// The QoS it was delivered at.
    pub fn qos(&self) -> QoS {
        self.publish.qos
    }

    /// RETAIN.
    pub fn retain(&self) -> bool {
        self.publish.retain
    }

    /// DUP: the server may have sent it before (it is still handed over only once
    /// for QoS 2 within a session).
    pub fn dup(&self) -> bool {
        self.publish.dup
    }

    /// The MQTT 5 properties (empty in 3.1.1).
    pub fn properties(&self) -> &PublishProperties {
        self.publish.properties()
    }

    /// The Subscription Identifiers the server put on it (MQTT 5, 3.3.2.3.8):
    /// one per matching subscription made with an identifier. Empty in 3.1.1.
    pub fn subscription_identifiers(&self) -> &[u32] {
        &self.publish.properties().subscription_identifiers
    }

    /// The filters of this client's subscriptions the message matched, found by
    /// its [Subscription Identifiers](Message::subscription_identifiers): the
    /// subscriptions made with them ([`crate::SubscribeRequest::identifier`], or
    /// [`Options::with_automatic_subscription_identifiers`]), granted or still
    /// awaiting their SUBACK. A subscription without an identifier is never
    /// named here, nor one unsubscribed since.
    pub fn matched_filters(&self) -> impl Iterator<Item = &str> + '_ {
        self.matched.iter().map(MqttString::as_str)
    }

    /// The whole PUBLISH.
    pub fn publish(&self) -> &Publish {
        &self.publish
    }

    /// Takes the ack token (QoS 1/2 without auto-ack), to ack later or elsewhere.
    pub fn take_ack_token(&mut self) -> Option<AckToken> {
        self.token.take()
    }

    /// Acknowledges with success, if there is anything to acknowledge.
    pub fn ack(&mut self) -> Result<(), AckError> {
        match self.token.take() {
            Some(token) => token.ack(),
            None => Ok(()),
        }
    }

    /// Acknowledges with a reason code and properties (MQTT 5), if there is
    /// anything to acknowledge. An invalid reason code leaves the token in the
    /// message, to ack again.
    pub fn ack_with(
        &mut self,
        reason: ReasonCode,
        properties: AckProperties,
    ) -> Result<(), AckError> {
        let Some(token) = self.token.take() else {
            return Ok(());
        };
        token.ack_with(reason, properties).map_err(|failed| {
            self.token = failed.token;
            failed.error
        })
    }

    /// Splits into the PUBLISH and the ack token.
    pub fn into_parts(self) -> (Publish, Option<AckToken>) {
        (self.publish, self.token)
    }
}

/// The right to acknowledge one QoS 1/2 message, on the connection it came on.
///
/// Acks reach the server in the order the messages arrived, whatever order the
/// application acks in; an ack waits for the acks of earlier messages. A token
/// from an earlier connection is refused ([`AckError::StaleConnection`]): the
/// server sends the message again. Dropping a token without acking leaves the
/// message unacknowledged, and later acks wait behind it until the connection
/// ends (acks must keep the order of arrival [MQTT-4.6.0-2], and acking it in the
/// application's place could lose it); the server sends it again on a resumed
/// session. That is counted ([`Client::dropped_ack_tokens`]) and reported
/// ([`ConnectionEvent::AckTokenDropped`]), never silent.
#[derive(Debug)]
#[must_use = "an ack token dropped without ack holds every later ack of the connection"]
pub struct AckToken {
    ticket: AckId,
    acks: mpsc::UnboundedSender<driver::AckCommand>,
    shared: Arc<Shared>,
    /// Acked, or known stale: nothing to report when dropped.
    settled: bool,
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if self.settled
            || self.shared.epoch.load(Ordering::Acquire) != self.ticket.connection_number()
        {
            return;
        }
        self.shared.dropped_tokens.fetch_add(1, Ordering::Relaxed);
        let _ = self.shared.events.send(ConnectionEvent::AckTokenDropped {
            packet_id: self.ticket.packet_id(),
        });
    }
}

impl AckToken {
    pub(crate) fn new(
        ticket: AckId,
        acks: mpsc::UnboundedSender<driver::AckCommand>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            ticket,
            acks,
            shared,
            settled: false,
        }
    }

    /// The message's packet identifier.
    pub fn packet_id(&self) -> PacketId {
        self.ticket.packet_id()
    }

    /// The message's QoS (1: PUBACK acknowledges it; 2: PUBREC).
    pub fn qos(&self) -> QoS {
        self.ticket.qos()
    }

    /// Whether the message's connection is still the client's current one: once
    /// it is not, an ack is refused ([`AckError::StaleConnection`]) and the server
    /// sends the message again on the resumed session.
    pub fn is_current(&self) -> bool {
        self.shared.epoch.load(Ordering::Acquire) == self.ticket.connection_number()
    }

    /// Whether `reason` may acknowledge this message: a PUBACK (QoS 1) or PUBREC
    /// (QoS 2) reason code of the connection's protocol version (3.1.1 has only
    /// success).
    pub fn check(&self, reason: ReasonCode) -> Result<(), AckError> {
        let kind = match self.ticket.qos() {
            QoS::ExactlyOnce => PacketType::PubRec,
            _ => PacketType::PubAck,
        };
        if reason.is_valid_in(kind, self.shared.version()) {
            Ok(())
        } else {
            Err(AckError::InvalidReasonCode)
        }
    }

    /// Acknowledges with success (PUBACK for QoS 1, PUBREC for QoS 2).
    pub fn ack(self) -> Result<(), AckError> {
        self.ack_with(ReasonCode::SUCCESS, AckProperties::EMPTY)
            .map_err(|failed| failed.error)
    }

    /// Acknowledges with a reason code and properties (MQTT 5). A failure code
    /// (0x80 and above) refuses the message: the server will not send it again.
    ///
    /// A reason code that cannot acknowledge this message ([`AckToken::check`])
    /// is refused here, before anything is queued, and the token comes back in the
    /// error to ack again: an invalid ack never holds up the acks behind it.
    pub fn ack_with(
        mut self,
        reason: ReasonCode,
        properties: AckProperties,
    ) -> Result<(), AckFailed> {
        if let Err(error) = self.check(reason) {
            return Err(AckFailed {
                error,
                token: Some(self),
            });
        }
        self.settled = true;
        if self.shared.epoch.load(Ordering::Acquire) != self.ticket.connection_number() {
            return Err(AckFailed {
                error: AckError::StaleConnection,
                token: None,
            });
        }
        self.acks
            .send(driver::AckCommand {
                ticket: self.ticket,
                reason,
                properties,
            })
            .map_err(|_| AckFailed {
                error: AckError::Closed,
                token: None,
            })
    }
}

/// An ack that was not queued: why, and the token when it can be used again (an
/// invalid reason code).
#[derive(Debug)]
pub struct AckFailed {
    /// Why.
    pub error: AckError,
    /// The token, when the message can still be acknowledged with it.
    pub token: Option<AckToken>,
}

impl std::fmt::Display for AckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AckFailed {}
