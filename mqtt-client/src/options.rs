//! Configuration of a client: what goes into CONNECT, and how the client behaves.

use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::packet::LastWill;
use mqtt_codec::property::Secret;
use mqtt_codec::ProtocolVersion;

/// Everything a client needs to know before it connects.
///
/// Build one with [`Options::new`] and the `with_*` methods (the fields are
/// private, so that options can be added without breaking anyone). The defaults are those of an experienced
/// MQTT user: MQTT 5, keep-alive 60 s, clean start, a session that ends with the
/// connection, 100 messages in flight each way, reconnect with backoff forever.
#[derive(Clone)]
pub struct Options {
    /// Protocol version; MQTT 5 by default.
    pub(crate) version: ProtocolVersion,
    /// Client identifier. Empty asks an MQTT 5 server to assign one (the Assigned
    /// Client Identifier is then adopted for every later connection); in 3.1.1 an
    /// empty identifier requires `clean_start`.
    pub(crate) client_id: String,
    /// Clean Start (Clean Session in 3.1.1) of the first connection. In MQTT 5,
    /// reconnections never ask for a clean start: they resume the session if the
    /// server kept it (its life is the Session Expiry Interval). In 3.1.1 every
    /// connection sends this flag as configured, since Clean Session 0 there makes
    /// the session outlive the connection, which only the application may ask for.
    pub(crate) clean_start: bool,
    /// Session Expiry Interval in seconds (MQTT 5); `None` leaves it out (0: the
    /// session ends with the connection). In 3.1.1 a session is kept when
    /// `clean_start` is false.
    pub(crate) session_expiry_interval: Option<u32>,
    /// Keep Alive, in seconds; 0 turns keep-alive off. The server's Keep Alive
    /// (MQTT 5 CONNACK) overrides it.
    pub(crate) keep_alive: u16,
    /// How long after a PINGREQ a PINGRESP must arrive before the connection is
    /// declared dead. A dead connection is found at most `keep_alive + ping_timeout`
    /// after the last packet was sent, plus any time the client stopped reading
    /// because the application was not taking messages (the answer may be unread,
    /// not missing). A connection that keeps sending (QoS 0 only) never pings: its
    /// loss is found by TCP, or once the QoS 1/2 window fills.
    pub(crate) ping_timeout: Duration,
    /// How long the client waits for CONNACK after the transport is open.
    pub(crate) connect_timeout: Duration,
    /// User Name.
    pub(crate) username: Option<String>,
    /// Password; never printed by `Debug`.
    pub(crate) password: Option<Secret>,
    /// Will message, with MQTT 5 will properties (will delay interval included).
    pub(crate) will: Option<LastWill>,
    /// The most QoS 1/2 messages we take in at once: advertised to an MQTT 5 server
    /// as Receive Maximum and enforced (a server that exceeds it is disconnected
    /// with 0x93). It also bounds our outgoing window, together with the server's
    /// Receive Maximum.
    pub(crate) receive_maximum: u16,
    /// The most QoS 1/2 PUBLISHes we keep unacknowledged towards the server; the
    /// effective window is the minimum of this and the server's Receive Maximum.
    pub(crate) max_inflight: u16,
    /// Disconnect (0x93) a server that sends more unacknowledged QoS 1/2 messages
    /// than our Receive Maximum [MQTT-3.3.4-9]: true by default. When false the
    /// excess is taken and counted ([`crate::engine::Engine::receive_maximum_overruns`]):
    /// mosquitto up to 2.0.12 overruns the Receive Maximum when it holds a backlog
    /// for the client, and on every resumed session after that, so a strict client
    /// cannot drain that backlog. Memory stays bounded either way: the client stops
    /// reading the socket while the application does not take messages.
    pub(crate) strict_receive_maximum: bool,
    /// Maximum Packet Size we accept, advertised (MQTT 5) and enforced on every
    /// incoming packet (DISCONNECT 0x95).
    pub(crate) maximum_packet_size: u32,
    /// Topic Alias Maximum we accept from the server (MQTT 5); 0 refuses aliases.
    pub(crate) topic_alias_maximum: u16,
    /// Set Topic Aliases on outgoing PUBLISHes when the server accepts them
    /// (MQTT 5): true by default.
    pub(crate) outgoing_topic_aliases: bool,
    /// Give every SUBSCRIBE without a Subscription Identifier one of the
    /// engine's (MQTT 5): false by default.
    pub(crate) automatic_subscription_identifiers: bool,
    /// Request Response Information (MQTT 5).
    pub(crate) request_response_information: bool,
    /// The topic [`crate::Client::request`] awaits responses on (`None`: the
    /// default, from the server's Response Information and the client id).
    pub(crate) response_topic: Option<String>,
    /// Request Problem Information (MQTT 5); `None` leaves the server default (true).
    pub(crate) request_problem_information: Option<bool>,
    /// User Properties of CONNECT (MQTT 5).
    pub(crate) user_properties: Vec<(String, String)>,
    /// Requests (publish, subscribe, unsubscribe) accepted by [`crate::Client`]
    /// handles but not yet taken by the connection: beyond the window, callers
    /// wait. Bounds the memory of a client whose server is slow or away.
    pub(crate) request_queue: usize,
    /// Reconnection schedule.
    pub(crate) reconnect: Backoff,
    /// Resubscribe to every active subscription when a reconnection finds no session.
    pub(crate) restore_subscriptions: bool,
    /// Fall back to MQTT 3.1.1 when the server refuses MQTT 5.
    pub(crate) protocol_fallback: bool,
    /// Follow a Server Reference (CONNACK 0x9C/0x9D, DISCONNECT).
    pub(crate) follow_redirects: bool,
    /// What to do with outgoing messages still unfinished when a reconnection
    /// finds no session.
    pub(crate) session_lost: SessionLostPolicy,
    /// Acknowledge every incoming QoS 1/2 message automatically (simple uses).
    /// The [`crate::Client`] acks a message when the application asks
    /// [`crate::Incoming`] for the next one (see [`crate::Incoming::recv`]), so
    /// credit is still granted only as fast as it pulls; the engine alone acks on
    /// arrival. Off by default: the application acks.
    pub(crate) auto_ack: bool,
    /// QoS 0 messages read and kept for an application that is behind, beyond
    /// what [`crate::Incoming`] holds; what happens past it is `qos0_overflow`.
    pub(crate) qos0_backlog: usize,
    /// What happens to QoS 0 messages past `qos0_backlog`.
    pub(crate) qos0_overflow: Qos0Overflow,
    /// Seed of the jitter of the reconnection delays. The tokio driver replaces it
    /// with a random seed; the engine itself never draws randomness.
    pub(crate) jitter_seed: u64,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("version", &self.version)
            .field("client_id", &self.client_id)
            .field("clean_start", &self.clean_start)
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            // `Secret`'s own Debug redacts; kept explicit so a change there shows here.
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("will", &self.will)
            .field("receive_maximum", &self.receive_maximum)
            .field("max_inflight", &self.max_inflight)
            .field("strict_receive_maximum", &self.strict_receive_maximum)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field("outgoing_topic_aliases", &self.outgoing_topic_aliases)
            .field(
                "automatic_subscription_identifiers",
                &self.automatic_subscription_identifiers,
            )
            .field("response_topic", &self.response_topic)
            .field("request_queue", &self.request_queue)
            .field("reconnect", &self.reconnect)
            .field("restore_subscriptions", &self.restore_subscriptions)
            .field("protocol_fallback", &self.protocol_fallback)
            .field("follow_redirects", &self.follow_redirects)
            .field("session_lost", &self.session_lost)
            .field("auto_ack", &self.auto_ack)
            .field("qos0_backlog", &self.qos0_backlog)
            .field("qos0_overflow", &self.qos0_overflow)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options with the defaults and this client identifier.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: client_id.into(),
            clean_start: true,
            session_expiry_interval: None,
            keep_alive: 60,
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            username: None,
            password: None,
            will: None,
            receive_maximum: 100,
            max_inflight: 100,
            strict_receive_maximum: true,
            maximum_packet_size: mqtt_codec::MAX_PACKET_SIZE,
            topic_alias_maximum: 0,
            outgoing_topic_aliases: true,
            automatic_subscription_identifiers: false,
            request_response_information: false,
            response_topic: None,
            request_problem_information: None,
            user_properties: Vec::new(),
            request_queue: 100,
            reconnect: Backoff::default(),
            restore_subscriptions: true,
            protocol_fallback: false,
            follow_redirects: false,
            session_lost: SessionLostPolicy::ResendAsNew,
            auto_ack: false,
            qos0_backlog: 1000,
            qos0_overflow: Qos0Overflow::Drop,
            jitter_seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client identifier (empty: the server assigns one).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Clean Start of the first connection.
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// Our Receive Maximum.
    pub fn receive_maximum(&self) -> u16 {
        self.receive_maximum
    }

    /// Our outgoing window.
    pub fn max_inflight(&self) -> u16 {
        self.max_inflight
    }

    /// QoS 0 messages kept for an application that is behind.
    pub fn qos0_backlog(&self) -> usize {
        self.qos0_backlog
    }

    /// Protocol version; MQTT 5 by default.
    pub fn with_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// Clean Start (Clean Session in 3.1.1) of the first connection. In MQTT 5,
    /// reconnections never ask for a clean start: they resume the session if the
    /// server kept it (its life is the Session Expiry Interval). In 3.1.1 every
    /// connection sends this flag as configured, since Clean Session 0 there makes
    /// the session outlive the connection, which only the application may ask for.
    pub fn with_clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// Session Expiry Interval in seconds (MQTT 5); unset, it is left out of
    /// CONNECT (0: the session ends with the connection). In 3.1.1 a session is
    /// kept when `clean_start` is false.
    pub fn with_session_expiry(mut self, seconds: u32) -> Self {
        self.session_expiry_interval = Some(seconds);
        self
    }

    /// Keep Alive, in seconds; 0 turns keep-alive off. The server's Keep Alive
    /// (MQTT 5 CONNACK) overrides it.
    pub fn with_keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// Sets the user name and password.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<Bytes>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(Secret(password.into()));
        self
    }

    /// Will message, with MQTT 5 will properties (will delay interval included).
    pub fn with_will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// Reconnection schedule.
    pub fn with_reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = backoff;
        self
    }

    /// Acknowledge every incoming QoS 1/2 message automatically (simple uses).
    /// The [`crate::Client`] acks a message when the application asks
    /// [`crate::Incoming`] for the next one (see [`crate::Incoming::recv`]), so
    /// credit is still granted only as fast as it pulls; the engine alone acks on
    /// arrival. Off by default: the application acks.
    pub fn with_auto_ack(mut self, on: bool) -> Self {
        self.auto_ack = on;
        self
    }

    /// What to do with outgoing messages still unfinished when a reconnection
    /// finds no session.
    pub fn with_session_lost_policy(mut self, policy: SessionLostPolicy) -> Self {
        self.session_lost = policy;
        self
    }

    /// Client identifier. Empty asks an MQTT 5 server to assign one (the Assigned
    /// Client Identifier is then adopted for every later connection); in 3.1.1 an
    /// empty identifier requires `clean_start`.
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// How long after a PINGREQ a PINGRESP must arrive before the connection is
    /// declared dead. A dead connection is found at most `keep_alive + ping_timeout`
    /// after the last packet was sent, plus any time the client stopped reading
    /// because the application was not taking messages (the answer may be unread,
    /// not missing). A connection that keeps sending (QoS 0 only) never pings: its
    /// loss is found by TCP, or once the QoS 1/2 window fills.
    pub fn with_ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// How long the client waits for CONNACK after the transport is open.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// User Name.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The most QoS 1/2 messages we take in at once: advertised to an MQTT 5 server
    /// as Receive Maximum and enforced (a server that exceeds it is disconnected
    /// with 0x93). 100 by default.
    pub fn with_receive_maximum(mut self, n: u16) -> Self {
        self.receive_maximum = n.max(1);
        self
    }

    /// The most QoS 1/2 PUBLISHes we keep unacknowledged towards the server; the
    /// effective window is the minimum of this and the server's Receive Maximum.
    pub fn with_max_inflight(mut self, n: u16) -> Self {
        self.max_inflight = n.max(1);
        self
    }

    /// Disconnect (0x93) a server that sends more unacknowledged QoS 1/2 messages
    /// than our Receive Maximum [MQTT-3.3.4-9]: true by default. When false the
    /// excess is taken and counted ([`crate::engine::Engine::receive_maximum_overruns`]):
    /// mosquitto up to 2.0.12 overruns the Receive Maximum when it holds a backlog
    /// for the client, and on every resumed session after that, so a strict client
    /// cannot drain that backlog. Memory stays bounded either way: past the
    /// backlog bound (`with_qos0_backlog` plus our Receive Maximum) the client stops
    /// reading the socket until the application takes messages.
    pub fn with_strict_receive_maximum(mut self, on: bool) -> Self {
        self.strict_receive_maximum = on;
        self
    }

    /// Maximum Packet Size we accept, advertised (MQTT 5) and enforced on every
    /// incoming packet (DISCONNECT 0x95).
    pub fn with_maximum_packet_size(mut self, bytes: u32) -> Self {
        self.maximum_packet_size = bytes;
        self
    }

    /// Topic Alias Maximum we accept from the server (MQTT 5); 0 refuses aliases.
    pub fn with_topic_alias_maximum(mut self, n: u16) -> Self {
        self.topic_alias_maximum = n;
        self
    }

    /// Sets Topic Aliases on outgoing PUBLISHes (MQTT 5, 3.3.2.3.4) when the
    /// server's CONNACK accepts them (Topic Alias Maximum above 0): on by default.
    /// The first PUBLISH to a topic sends the topic with a new alias, later ones an
    /// empty topic with the alias; once the server's maximum (or 1,024, the most
    /// the client uses) is reached, the least recently used alias goes to the next
    /// new topic. Aliases are forgotten with their connection, never used on a
    /// resent PUBLISH, and never stored in the session.
    pub fn with_outgoing_topic_aliases(mut self, on: bool) -> Self {
        self.outgoing_topic_aliases = on;
        self
    }

    /// Gives every SUBSCRIBE that has no Subscription Identifier one of the
    /// client's own (MQTT 5, 3.8.2.1.2), when the server has them (CONNACK
    /// Subscription Identifiers Available, true when absent): then every
    /// incoming [`crate::Message`] says which subscriptions it matched
    /// ([`crate::Message::matched_filters`]). Off by default: only the
    /// identifiers the application sets ([`crate::SubscribeRequest::identifier`])
    /// are sent. The identifiers are kept with the subscriptions in the session.
    pub fn with_automatic_subscription_identifiers(mut self, on: bool) -> Self {
        self.automatic_subscription_identifiers = on;
        self
    }

    /// Request Response Information (MQTT 5, 3.1.2.11.6): asks the server for a
    /// base of response topics (CONNACK Response Information,
    /// [`crate::ServerInfo::response_information`]), which
    /// [`crate::Client::request`] then uses for its default response topic.
    pub fn with_request_response_information(mut self, on: bool) -> Self {
        self.request_response_information = on;
        self
    }

    /// The topic [`crate::Client::request`] awaits responses on, in place of the
    /// default `{Response Information}/{client id}` (or `responses/{client id}`
    /// without Response Information). It should be this client's alone: every
    /// message on it is taken as a response. Checked at the first request.
    pub fn with_response_topic(mut self, topic: impl Into<String>) -> Self {
        self.response_topic = Some(topic.into());
        self
    }

    /// Request Problem Information (MQTT 5); unset, the server's default (true).
    pub fn with_request_problem_information(mut self, on: bool) -> Self {
        self.request_problem_information = Some(on);
        self
    }

    /// Requests (publish, subscribe, unsubscribe) accepted by [`crate::Client`]
    /// handles but not yet taken by the connection: beyond the window, callers
    /// wait. Bounds the memory of a client whose server is slow or away.
    pub fn with_request_queue(mut self, n: usize) -> Self {
        self.request_queue = n.max(1);
        self
    }

    /// Falls back to MQTT 3.1.1 when an MQTT 5 CONNECT is refused for its
    /// protocol version (CONNACK 0x84, or the 3.1.1 answer, return code 1): the
    /// next attempt, at once, is an MQTT 3.1.1 CONNECT to the same server, and
    /// the client stays on 3.1.1 from then on (MQTT 5 properties of the options
    /// are left out). Off by default: without it such a refusal is fatal.
    pub fn with_protocol_fallback(mut self, on: bool) -> Self {
        self.protocol_fallback = on;
        self
    }

    /// Follows a Server Reference: when a CONNACK refuses with 0x9C (Use another
    /// server) or 0x9D (Server moved), or a DISCONNECT carries a reference, the
    /// next attempt goes at once to the server it names, if the connector can
    /// reach it ([`crate::Connector::redirect`]; [`crate::transport::Servers`]
    /// takes `host[:port]` with the current server's scheme, or a URL). Off by
    /// default: the reference comes from the network, and the client would send
    /// its credentials there. Either way the reference is in the error
    /// ([`crate::ConnectionError::server_reference`]).
    pub fn with_follow_redirects(mut self, on: bool) -> Self {
        self.follow_redirects = on;
        self
    }

    /// Resubscribe to every active subscription when a reconnection finds no session.
    pub fn with_restore_subscriptions(mut self, on: bool) -> Self {
        self.restore_subscriptions = on;
        self
    }

    /// QoS 0 messages read and kept for an application that is behind, beyond
    /// what [`crate::Incoming`] holds; what happens past it is `qos0_overflow`.
    pub fn with_qos0_backlog(mut self, n: usize) -> Self {
        self.qos0_backlog = n.max(1);
        self
    }

    /// What happens to QoS 0 messages past `qos0_backlog`.
    pub fn with_qos0_overflow(mut self, overflow: Qos0Overflow) -> Self {
        self.qos0_overflow = overflow;
        self
    }

    /// Seed of the jitter of the reconnection delays. The tokio driver replaces it
    /// with a random seed; the engine itself never draws randomness.
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = seed;
        self
    }

    /// Adds a User Property to CONNECT (MQTT 5). Checked at start (no U+0000).
    pub fn with_user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((name.into(), value.into()));
        self
    }
}

/// What the client does with QoS 0 messages when the application is more than
/// [`Options::with_qos0_backlog`] messages behind.
///
/// The client keeps reading the connection while the application is behind, so
/// that an acknowledgement (PUBACK, SUBACK, ...) behind a burst of messages is
/// still read: `subscribe(..).await` and `publish(..).await?.await` complete even
/// when nothing reads [`crate::Incoming`] meanwhile (a retained backlog after a
/// subscription, say). QoS 1/2 messages need no limit of their own: the server may
/// send no more than our Receive Maximum unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos0Overflow {
    /// Drop them (QoS 0 is at most once), count them ([`crate::Client::dropped_qos0`])
    /// and report it ([`crate::ConnectionEvent::Qos0Dropped`]). The default.
    Drop,
    /// Stop reading the connection until the application catches up: nothing is
    /// dropped, TCP flow control reaches the server, and acks behind the messages
    /// wait too (read [`crate::Incoming`] in a task of its own).
    PauseReading,
}

/// What happens to outgoing QoS 1/2 messages still unfinished when a reconnection
/// finds that the server kept no session (CONNACK Session Present = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLostPolicy {
    /// Send them again, in their original order, as new messages (DUP = 0), before
    /// anything new. Nothing is lost; a QoS 2 message whose PUBREC had arrived may
    /// reach subscribers twice, since the server forgot it had it.
    ResendAsNew,
    /// Complete their handles with [`crate::PublishError::SessionLost`] and free
    /// their packet identifiers: the application decides.
    Fail,
}

/// Reconnection schedule: exponential backoff with jitter.
///
/// The delay before attempt `n` (1-based) is `min(initial × multiplier^(n-1),
/// max)`, then, with `jitter`, drawn uniformly from its upper half `[d/2, d]`, so
/// that a fleet restarting together spreads out while no delay shrinks below half
/// of the schedule. The count starts again once a connection has stayed up for
/// `stable_after`. Build one from [`Backoff::default`] with the `with_*` methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first reconnection attempt.
    pub(crate) initial: Duration,
    /// Largest delay.
    pub(crate) max: Duration,
    /// Growth factor between attempts (at least 1).
    pub(crate) multiplier: f64,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub(crate) max_attempts: Option<u32>,
    /// Randomise each delay within `[d/2, d]`.
    pub(crate) jitter: bool,
    /// Reconnect at all; when false, the first lost connection closes the client.
    pub(crate) enabled: bool,
    /// A connection counts as established, and the attempt count starts again,
    /// only once it has stayed up this long after its CONNACK. A server that
    /// accepts and then drops the client at once (a session taken over, a limit
    /// hit on every resume) meets a growing delay, not a reconnection loop.
    pub(crate) stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: None,
            jitter: true,
            enabled: true,
            stable_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay before the first reconnection attempt.
    pub fn with_initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Largest delay.
    pub fn with_max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Growth factor between attempts (at least 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Give up after this many failed attempts in a row (`None`: never).
    pub fn with_max_attempts(mut self, max_attempts: Option<u32>) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Randomise each delay within `[d/2, d]`.
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Reconnect at all; when false, the first lost connection closes the client.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// A connection counts as established, and the attempt count starts again,
    /// only once it has stayed up this long after its CONNACK. A server that
    /// accepts and then drops the client at once (a session taken over, a limit
    /// hit on every resume) meets a growing delay, not a reconnection loop.
    pub fn with_stable_after(mut self, stable_after: Duration) -> Self {
        self.stable_after = stable_after;
        self
    }

    /// The delay before attempt `attempt` (1-based) before jitter.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exp);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}
