//! What a source connects to and how it consumes: [`SourceConfig`], built in code
//! with the `with_*` methods or read from TOML, YAML or JSON (see [`crate::load`]).
//!
//! Every option, its default, and the name it has in off_broadway_emqtt or Rivven
//! (accepted as an alias in files) is listed in the crate README.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_client::codec::topic;
use mqtt_client::{Backoff, ProtocolVersion, QoS, RetainHandling, Subscription};
use serde::{Deserialize, Deserializer};

/// A configuration error: the option at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The option, as it is named in a file (`topics[1].topic`, `shared_group`, ...).
    pub option: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            option: option.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.option.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(
                f,
                "invalid configuration: `{}`: {}",
                self.option, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A secret (a password, a key passphrase): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A QoS as a file names it: `at_most_once`, `at_least_once`, `exactly_once`, or 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QosName(pub(crate) QoS);

impl<'de> Deserialize<'de> for QosName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = QosName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("at_most_once, at_least_once or exactly_once (or 0, 1, 2)")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<QosName, E> {
                Ok(QosName(match n {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    2 => QoS::ExactlyOnce,
                    n => return Err(E::custom(format!("QoS {n}: expected 0, 1 or 2"))),
                }))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<QosName, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("QoS {n}: expected 0, 1 or 2"))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<QosName, E> {
                Ok(QosName(match name {
                    "at_most_once" | "0" => QoS::AtMostOnce,
                    "at_least_once" | "1" => QoS::AtLeastOnce,
                    "exactly_once" | "2" => QoS::ExactlyOnce,
                    other => {
                        return Err(E::custom(format!(
                            "unknown QoS `{other}`: expected at_most_once, at_least_once or exactly_once (or 0, 1, 2)"
                        )))
                    }
                }))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A Retain Handling as a file names it: `send` (`send_on_subscribe`),
/// `send_if_new`, `never` (`do_not_send`).
struct RetainName(RetainHandling);

impl<'de> Deserialize<'de> for RetainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self(match name.as_str() {
            "send" | "send_on_subscribe" => RetainHandling::SendOnSubscribe,
            "send_if_new" => RetainHandling::SendIfNew,
            "never" | "do_not_send" => RetainHandling::DoNotSend,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown retain_handling `{other}`: expected send, send_if_new or never"
                )))
            }
        }))
    }
}

/// One topic filter to consume, with its QoS and MQTT 5 subscription options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub(crate) filter: String,
    pub(crate) qos: QoS,
    pub(crate) no_local: bool,
    pub(crate) retain_as_published: bool,
    pub(crate) retain_handling: RetainHandling,
}

impl Topic {
    /// A filter at this QoS, other options at their defaults.
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        Self {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendOnSubscribe,
        }
    }

    /// No Local (MQTT 5): do not receive what this connection publishes.
    pub fn with_no_local(mut self, on: bool) -> Self {
        self.no_local = on;
        self
    }

    /// Retain As Published (MQTT 5).
    pub fn with_retain_as_published(mut self, on: bool) -> Self {
        self.retain_as_published = on;
        self
    }

    /// Retain Handling (MQTT 5).
    pub fn with_retain_handling(mut self, handling: RetainHandling) -> Self {
        self.retain_handling = handling;
        self
    }

    /// The filter, as configured (without `$share/{group}/`).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The QoS asked for.
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// The subscription a connection makes: `$share/{group}/{filter}` with a group.
    pub(crate) fn subscription(&self, group: Option<&str>) -> Subscription {
        Subscription::new(shared_filter(group, &self.filter), self.qos)
            .no_local(self.no_local)
            .retain_as_published(self.retain_as_published)
            .retain_handling(self.retain_handling)
    }
}

/// The filter a connection subscribes to for `filter`.
pub(crate) fn shared_filter(group: Option<&str>, filter: &str) -> String {
    match group {
        Some(group) => format!("$share/{group}/{filter}"),
        None => filter.to_owned(),
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(alias = "filter")]
            topic: String,
            #[serde(default)]
            qos: Option<QosName>,
            #[serde(default)]
            no_local: bool,
            #[serde(default)]
            retain_as_published: bool,
            #[serde(default)]
            retain_handling: Option<RetainName>,
        }
        // A visitor rather than `#[serde(untagged)]`: an untagged enum replaces the
        // error of a table (an unknown QoS, an unknown field) by "data did not match
        // any variant", and loses the path of the field at fault.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Topic;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic filter, or a table with `topic` and `qos`")
            }
            fn visit_str<E: serde::de::Error>(self, filter: &str) -> Result<Topic, E> {
                Ok(Topic::new(filter, QoS::AtLeastOnce))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Topic, A::Error> {
                let table = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Topic {
                    filter: table.topic,
                    qos: table.qos.map_or(QoS::AtLeastOnce, |q| q.0),
                    no_local: table.no_local,
                    retain_as_published: table.retain_as_published,
                    retain_handling: table
                        .retain_handling
                        .map_or(RetainHandling::SendOnSubscribe, |r| r.0),
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What a finished (acked) message does to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSuccess {
    /// Acknowledge it (PUBACK, or PUBREC for QoS 2): the broker forgets it. Default.
    #[default]
    Ack,
    /// Leave it unacknowledged (a dry run): the broker sends it again on the next
    /// session, and it keeps its in-flight slot until the connection ends, so at
    /// most `max_in_flight` messages arrive per connection.
    Noop,
}

/// What a failed (nacked, dropped, undecodable) message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Hand it to the pipeline again after `redelivery_delay`, up to
    /// `max_deliveries` deliveries in all; then it is poison: published to
    /// `dead_letter_topic` when one is set, else acknowledged and counted. Default.
    #[default]
    Redeliver,
    /// Acknowledge it at once (it is dropped, and counted).
    Ack,
    /// Publish it to `dead_letter_topic` (at least once), then acknowledge it.
    DeadLetter,
}

/// How the instance index of this process is found, for scaling over machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instance {
    /// This index.
    Index(u32),
    /// The number in this environment variable, or the number after the last `-`
    /// of its value (`ingest-3` gives 3, as a Kubernetes StatefulSet pod name does).
    Env(String),
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromEnv {
            env: String,
        }
        // A visitor rather than `#[serde(untagged)]`, which hides the real error.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Instance;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an instance number, or a table `{ env = \"VARIABLE\" }`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Instance, E> {
                u32::try_from(n)
                    .map(Instance::Index)
                    .map_err(|_| E::custom(format!("instance {n}: too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Instance, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("instance {n}: negative"))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Instance, A::Error> {
                let from = FromEnv::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Instance::Env(from.env))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The instance number in the value of an environment variable: the value itself
/// (`3`), or what follows its last `-` (`ingest-3`, a StatefulSet pod name); ASCII
/// digits only, surrounding white space ignored.
pub(crate) fn instance_number(value: &str) -> Option<u32> {
    let value = value.trim();
    let digits = value.rsplit('-').next().unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Instance {
    pub(crate) fn resolve(&self) -> Result<u32, ConfigError> {
        match self {
            Instance::Index(i) => Ok(*i),
            Instance::Env(var) => {
                let value = std::env::var(var).map_err(|_| {
                    ConfigError::new(
                        "instance.env",
                        format!("environment variable {var} is not set"),
                    )
                })?;
                instance_number(&value).ok_or_else(|| {
                    ConfigError::new(
                        "instance.env",
                        format!("{var}={value:?} does not end in an instance number"),
                    )
                })
            }
        }
    }
}

/// TLS settings for `mqtts://` and `wss://` brokers. Certificates are verified by
/// default, against the webpki roots unless a CA file is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust (instead of the webpki roots).
    #[serde(default, alias = "cacertfile", alias = "ca_file")]
    pub ca_cert: Option<PathBuf>,
    /// PEM file of the client certificate chain (mutual TLS).
    #[serde(default, alias = "certfile")]
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client's private key.
    #[serde(default, alias = "keyfile")]
    pub client_key: Option<PathBuf>,
    /// The name the certificate must carry, when not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate: for tests only; logged as a warning at start.
    #[serde(default)]
    pub dangerous_accept_any_certificate: bool,
}

/// The will message of each connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WillConfig {
    /// Will topic.
    pub topic: String,
    /// Will payload (UTF-8 text).
    #[serde(default)]
    pub payload: String,
    /// Will QoS.
    #[serde(default = "at_most_once")]
    qos: QosName,
    /// Will retain.
    #[serde(default)]
    pub retain: bool,
}

impl WillConfig {
    /// A will on `topic` with `payload`.
    pub fn new(
        topic: impl Into<String>,
        payload: impl Into<String>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            qos: QosName(qos),
            retain,
        }
    }

    /// Will QoS.
    pub fn qos(&self) -> QoS {
        self.qos.0
    }
}

fn at_most_once() -> QosName {
    QosName(QoS::AtMostOnce)
}

/// User name and password.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name.
    pub username: String,
    /// Password (write `${MQTT_PASSWORD}` in a file to take it from the environment).
    #[serde(default)]
    pub password: Option<Secret>,
}

/// The configuration of a [`Source`](crate::Source). `Debug` shows no secret: not
/// the password, nor the password or query of a broker URL.
#[derive(Clone, PartialEq)]
pub struct SourceConfig {
    pub(crate) brokers: Vec<String>,
    pub(crate) topics: Vec<Topic>,
    pub(crate) client_id: Option<String>,
    pub(crate) shared_group: Option<String>,
    pub(crate) concurrency: u16,
    pub(crate) instance: Option<Instance>,
    pub(crate) max_in_flight: u16,
    pub(crate) on_success: OnSuccess,
    pub(crate) on_failure: OnFailure,
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) max_deliveries: u32,
    pub(crate) redelivery_delay: Duration,
    pub(crate) clean_start: bool,
    pub(crate) session_expiry: u32,
    pub(crate) session_store: Option<PathBuf>,
    pub(crate) version: ProtocolVersion,
    pub(crate) keep_alive: u16,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) auth: Option<AuthConfig>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) will: Option<WillConfig>,
    pub(crate) retry_initial: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) retry_multiplier: f64,
    pub(crate) strict_receive_maximum: bool,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) user_properties: BTreeMap<String, String>,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            brokers,
            topics,
            client_id,
            shared_group,
            concurrency,
            instance,
            max_in_flight,
            on_success,
            on_failure,
            dead_letter_topic,
            max_deliveries,
            redelivery_delay,
            clean_start,
            session_expiry,
            session_store,
            version,
            keep_alive,
            connect_timeout,
            ping_timeout,
            auth,
            tls,
            will,
            retry_initial,
            retry_max,
            retry_multiplier,
            strict_receive_maximum,
            shutdown_timeout,
            handle_signals,
            user_properties,
        } = self;
        let brokers: Vec<String> = brokers.iter().map(|url| redact_url(url)).collect();
        f.debug_struct("SourceConfig")
            .field("brokers", &brokers)
            .field("topics", topics)
            .field("client_id", client_id)
            .field("shared_group", shared_group)
            .field("concurrency", concurrency)
            .field("instance", instance)
            .field("max_in_flight", max_in_flight)
            .field("on_success", on_success)
            .field("on_failure", on_failure)
            .field("dead_letter_topic", dead_letter_topic)
            .field("max_deliveries", max_deliveries)
            .field("redelivery_delay", redelivery_delay)
            .field("clean_start", clean_start)
            .field("session_expiry", session_expiry)
            .field("session_store", session_store)
            .field("version", version)
            .field("keep_alive", keep_alive)
            .field("connect_timeout", connect_timeout)
            .field("ping_timeout", ping_timeout)
            .field("auth", auth)
            .field("tls", tls)
            .field("will", will)
            .field("retry_initial", retry_initial)
            .field("retry_max", retry_max)
            .field("retry_multiplier", retry_multiplier)
            .field("strict_receive_maximum", strict_receive_maximum)
            .field("shutdown_timeout", shutdown_timeout)
            .field("handle_signals", handle_signals)
            .field("user_properties", user_properties)
            .finish()
    }
}

/// A broker URL fit for logs: the password of its user info and its query (a
/// pre-signed WebSocket URL carries its credentials there) are replaced by
/// `<redacted>`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":<redacted>");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, _query)) => {
            out.push_str(path);
            out.push_str("?<redacted>");
        }
        None => out.push_str(tail),
    }
    out
}

/// What the topic checks leave to [`MqttString`](mqtt_client::codec::string::MqttString)
/// and the encoder: no U+0000 [MQTT-1.5.4-2], at most 65,535 bytes [MQTT-1.5.4].
/// Checked here so that `validate` refuses what the client would refuse at connect.
fn wire_string(s: &str) -> bool {
    s.len() <= usize::from(u16::MAX) && mqtt_client::codec::string::MqttString::try_from(s).is_ok()
}

/// Seconds the broker keeps a session by default: a week, so that a consumer
/// restarted (or redeployed) within that time resumes it.
pub const DEFAULT_SESSION_EXPIRY: u32 = 7 * 24 * 3600;

impl SourceConfig {
    /// A configuration for these brokers (`mqtt://`, `mqtts://`, `ws://`,
    /// `wss://` URLs, tried in turn), everything else at its default. Add at
    /// least one topic.
    pub fn new<I, S>(brokers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            topics: Vec::new(),
            client_id: None,
            shared_group: None,
            concurrency: 1,
            instance: None,
            max_in_flight: 100,
            on_success: OnSuccess::Ack,
            on_failure: OnFailure::Redeliver,
            dead_letter_topic: None,
            max_deliveries: 5,
            redelivery_delay: Duration::from_millis(100),
            clean_start: false,
            session_expiry: DEFAULT_SESSION_EXPIRY,
            session_store: None,
            version: ProtocolVersion::V5,
            keep_alive: 60,
            connect_timeout: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            auth: None,
            tls: None,
            will: None,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            retry_multiplier: 2.0,
            strict_receive_maximum: false,
            shutdown_timeout: Duration::from_secs(30),
            handle_signals: false,
            user_properties: BTreeMap::new(),
        }
    }

    /// Replaces the brokers (a command line's `--broker` over a file's list, say).
    pub fn with_brokers<I, S>(mut self, brokers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.brokers = brokers.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the topics (a command line's topics over a file's, say).
    pub fn with_topics(mut self, topics: impl IntoIterator<Item = Topic>) -> Self {
        self.topics = topics.into_iter().collect();
        self
    }

    /// Adds a topic filter at this QoS.
    pub fn with_topic(mut self, filter: impl Into<String>, qos: QoS) -> Self {
        self.topics.push(Topic::new(filter, qos));
        self
    }

    /// Adds a topic with its MQTT 5 subscription options.
    pub fn with_subscription(mut self, topic: Topic) -> Self {
        self.topics.push(topic);
        self
    }

    /// The client identifier; with more than one connection, connection `i` uses
    /// `{id}_{i}`. Required with a persistent session (the default).
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Consume through `$share/{group}/{filter}`: the broker spreads the messages
    /// over every member of the group (connections, processes, machines).
    pub fn with_shared_group(mut self, group: impl Into<String>) -> Self {
        self.shared_group = Some(group.into());
        self
    }

    /// Connections of this process (1 by default); more than 1 needs a shared group.
    pub fn with_concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// This process's index among processes running the same configuration:
    /// connection `i` of instance `k` is number `k * concurrency + i`.
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.instance = Some(instance);
        self
    }

    /// QoS 1/2 messages outstanding per connection (100 by default): the Receive
    /// Maximum advertised (MQTT 5), and the window the client holds (3.1.1).
    pub fn with_max_in_flight(mut self, n: u16) -> Self {
        self.max_in_flight = n;
        self
    }

    /// What `ack()` does ([`OnSuccess`]).
    pub fn with_on_success(mut self, on_success: OnSuccess) -> Self {
        self.on_success = on_success;
        self
    }

    /// What `nack()` does ([`OnFailure`]).
    pub fn with_on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// Where poison messages go (a topic name, no wildcards).
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// Deliveries of a failing message before it is poison (5 by default; at least 1).
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Delay before a nacked message is handed over again (100 ms by default);
    /// doubled at each further attempt, up to 64 times this.
    pub fn with_redelivery_delay(mut self, delay: Duration) -> Self {
        self.redelivery_delay = delay;
        self
    }

    /// Clean start (false by default: the session, and the messages unacked in
    /// it, outlive a restart).
    pub fn with_clean_start(mut self, on: bool) -> Self {
        self.clean_start = on;
        self
    }

    /// Session expiry interval in seconds ([`DEFAULT_SESSION_EXPIRY`] by default;
    /// always 0 without a client id, whose session could never be resumed).
    pub fn with_session_expiry(mut self, seconds: u32) -> Self {
        self.session_expiry = seconds;
        self
    }

    /// Keep the client's half of each connection's session in files under this
    /// directory (`{client id}.session`), so that a QoS 2 message acknowledged
    /// before a crash is not handed over again after it, and a resumed session's
    /// stale subscriptions can be found.
    pub fn with_session_store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.session_store = Some(dir.into());
        self
    }

    /// MQTT version (5 by default).
    pub fn with_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// Keep-alive in seconds (60 by default).
    pub fn with_keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// Time allowed for one connection attempt (10 s by default).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a PINGRESP may take before the connection counts as dead (a
    /// half-open connection) and is replaced (10 s by default).
    pub fn with_ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// User name and password.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Some(AuthConfig {
            username: username.into(),
            password: Some(Secret::new(password)),
        });
        self
    }

    /// A user name without a password.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.auth = Some(AuthConfig {
            username: username.into(),
            password: None,
        });
        self
    }

    /// TLS settings.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Will message of each connection.
    pub fn with_will(mut self, will: WillConfig) -> Self {
        self.will = Some(will);
        self
    }

    /// Reconnect backoff: first delay, largest delay, growth factor (500 ms, 30 s, 2).
    pub fn with_reconnect(mut self, initial: Duration, max: Duration, multiplier: f64) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self.retry_multiplier = multiplier;
        self
    }

    /// Disconnect a broker that overruns our Receive Maximum (false by default:
    /// mosquitto up to 2.0.12 overruns it while it holds a backlog, see the README;
    /// the overrun is counted).
    pub fn with_strict_receive_maximum(mut self, on: bool) -> Self {
        self.strict_receive_maximum = on;
        self
    }

    /// How long a graceful shutdown waits for in-flight messages (30 s by default).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Shut down gracefully on SIGTERM and SIGINT (off by default).
    pub fn with_signal_handling(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// A user property sent in each CONNECT (MQTT 5).
    pub fn with_user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.insert(name.into(), value.into());
        self
    }

    /// The brokers, each as its URL without password or query (for output).
    pub fn brokers_redacted(&self) -> Vec<String> {
        self.brokers.iter().map(|b| redact_url(b)).collect()
    }

    /// Keep-alive, in seconds.
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// The client identifier, if one is set.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The topics.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// The shared group.
    pub fn shared_group(&self) -> Option<&str> {
        self.shared_group.as_deref()
    }

    /// Connections of this process.
    pub fn concurrency(&self) -> u16 {
        self.concurrency
    }

    /// QoS 1/2 messages outstanding per connection.
    pub fn max_in_flight(&self) -> u16 {
        self.max_in_flight
    }

    /// How long a graceful shutdown waits.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Whether each connection starts a clean session.
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// Session expiry interval in seconds (MQTT 5).
    pub fn session_expiry(&self) -> u32 {
        self.session_expiry
    }

    /// MQTT version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// What `ack()` does.
    pub fn on_success(&self) -> OnSuccess {
        self.on_success
    }

    /// What `nack()` does.
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// Checks every option; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.is_empty() {
            return Err(ConfigError::new("brokers", "no broker URL"));
        }
        for (i, url) in self.brokers.iter().enumerate() {
            mqtt_client::transport::url::ServerUrl::parse(url).map_err(|e| {
                let message = match e {
                    // Its text holds the whole URL, a password in the user info included.
                    mqtt_client::transport::UrlError::MissingScheme(_) => format!(
                        "server URL {:?}: no scheme (write mqtt://, mqtts://, ws:// or wss://)",
                        redact_url(url)
                    ),
                    e => e.to_string(),
                };
                ConfigError::new(format!("brokers[{i}]"), message)
            })?;
        }
        // The checks of the list as a whole (the same credentials in every URL, the
        // transports compiled in), which `Source::connect` would otherwise fail on.
        mqtt_client::transport::Servers::parse_list(&self.brokers)
            .map_err(|e| ConfigError::new("brokers", e.to_string()))?;
        if self.topics.is_empty() {
            return Err(ConfigError::new("topics", "no topic to consume"));
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.filter.starts_with("$share/") {
                return Err(ConfigError::new(
                    format!("topics[{i}].topic"),
                    "give the plain filter and set `shared_group`; the source adds `$share/{group}/`",
                ));
            }
            topic::check_topic_filter(&t.filter)
                .ok()
                .filter(|()| wire_string(&t.filter))
                .ok_or_else(|| {
                    ConfigError::new(
                        format!("topics[{i}].topic"),
                        format!("`{}` is not a valid topic filter", t.filter),
                    )
                })?;
            if self.version == ProtocolVersion::V311
                && (t.no_local
                    || t.retain_as_published
                    || t.retain_handling != RetainHandling::SendOnSubscribe)
            {
                return Err(ConfigError::new(
                    format!("topics[{i}]"),
                    "no_local, retain_as_published and retain_handling need MQTT 5",
                ));
            }
        }
        if let Some(group) = &self.shared_group {
            if group.trim().is_empty() {
                return Err(ConfigError::new("shared_group", "blank group name"));
            }
            if group.contains(['/', '+', '#']) || group.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    "shared_group",
                    format!("`{group}` may not contain `/`, `+`, `#` or control characters [MQTT-4.8.2-2]"),
                ));
            }
        }
        if self.concurrency == 0 {
            return Err(ConfigError::new("concurrency", "must be at least 1"));
        }
        if self.shared_group.is_none() && (self.concurrency > 1 || self.instance.is_some()) {
            return Err(ConfigError::new(
                if self.concurrency > 1 {
                    "concurrency"
                } else {
                    "instance"
                },
                "more than one connection without `shared_group` would receive every message once per connection",
            ));
        }
        if let Some(instance) = &self.instance {
            let k = instance.resolve()?;
            // Connection `i` of instance `k` is number `k * concurrency + i`.
            let n = u32::from(self.concurrency);
            if k.checked_mul(n)
                .and_then(|first| first.checked_add(n - 1))
                .is_none()
            {
                return Err(ConfigError::new(
                    "instance",
                    format!("instance {k} with concurrency {n}: connection numbers overflow"),
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::new("max_in_flight", "must be at least 1"));
        }
        if self.max_deliveries == 0 {
            return Err(ConfigError::new("max_deliveries", "must be at least 1"));
        }
        match &self.dead_letter_topic {
            Some(t) => {
                topic::check_topic_name(t)
                    .ok()
                    .filter(|()| wire_string(t))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "dead_letter_topic",
                            format!("`{t}` is not a valid topic name (no wildcards)"),
                        )
                    })?;
            }
            None if self.on_failure == OnFailure::DeadLetter => {
                return Err(ConfigError::new(
                    "dead_letter_topic",
                    "on_failure = dead_letter needs a dead_letter_topic",
                ));
            }
            None => {}
        }
        let persistent = !self.clean_start || self.session_expiry > 0;
        match self.client_id.as_deref() {
            None | Some("") if persistent && !self.clean_start => {
                return Err(ConfigError::new(
                    "client_id",
                    "a persistent session (clean_start = false) needs a fixed client_id: a generated one could never be resumed",
                ));
            }
            Some(id) if id.chars().any(char::is_control) => {
                return Err(ConfigError::new("client_id", "control characters"));
            }
            _ => {}
        }
        if self.retry_multiplier.is_nan() || self.retry_multiplier < 1.0 {
            return Err(ConfigError::new("retry_multiplier", "must be at least 1"));
        }
        if self.retry_initial > self.retry_max {
            return Err(ConfigError::new(
                "retry_initial_ms",
                "larger than retry_max_ms",
            ));
        }
        if let Some(will) = &self.will {
            topic::check_topic_name(&will.topic)
                .ok()
                .filter(|()| wire_string(&will.topic))
                .ok_or_else(|| {
                    ConfigError::new(
                        "will.topic",
                        format!("`{}` is not a valid topic name", will.topic),
                    )
                })?;
        }
        if let Some(tls) = &self.tls {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                // Name the one missing.
                return Err(ConfigError::new(
                    if tls.client_key.is_none() {
                        "tls.client_key"
                    } else {
                        "tls.client_cert"
                    },
                    "client_cert and client_key go together",
                ));
            }
        }
        if self.version == ProtocolVersion::V311 && !self.user_properties.is_empty() {
            return Err(ConfigError::new("user_properties", "need MQTT 5"));
        }
        Ok(())
    }

    /// The instance index (0 without one).
    pub(crate) fn instance_index(&self) -> Result<u32, ConfigError> {
        self.instance.as_ref().map_or(Ok(0), Instance::resolve)
    }

    /// The client id of connection `index` of this process.
    pub(crate) fn connection_client_id(&self, global_index: u32) -> String {
        let id = self.client_id.clone().unwrap_or_default();
        if id.is_empty() || (self.concurrency <= 1 && self.instance.is_none()) {
            id
        } else {
            format!("{id}_{global_index}")
        }
    }

    /// The client options of one connection of this configuration, with this
    /// client id: version, session, keep-alive, timeouts, credentials, will,
    /// user properties, the reconnect backoff, and `max_in_flight` as both
    /// Receive Maximum and the outgoing window. With [`servers`](Self::servers),
    /// what a [`Sink`](crate::Sink) or any other client of the same broker is
    /// built from:
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use mqtt_source::{client::Client, SourceConfig};
    /// let config = SourceConfig::new(["mqtt://127.0.0.1:1883"]);
    /// let options = config.client_options("publisher-1".into())?;
    /// let (client, _incoming) = Client::connect(options, config.servers()?).await?;
    /// # Ok(()) }
    /// ```
    pub fn client_options(&self, client_id: String) -> Result<mqtt_client::Options, ConfigError> {
        let backoff = Backoff::default()
            .with_initial(self.retry_initial)
            .with_max(self.retry_max)
            .with_multiplier(self.retry_multiplier);
        let mut options = mqtt_client::Options::new(client_id)
            .with_version(self.version)
            .with_clean_start(self.clean_start)
            .with_keep_alive(self.keep_alive)
            .with_connect_timeout(self.connect_timeout)
            .with_ping_timeout(self.ping_timeout)
            .with_receive_maximum(self.max_in_flight)
            .with_max_inflight(self.max_in_flight)
            .with_strict_receive_maximum(self.strict_receive_maximum)
            .with_reconnect(backoff);
        if self.version == ProtocolVersion::V5 {
            // A generated client id can never resume its session: keeping one
            // would only leave an orphan session queueing messages at the broker.
            let expiry = if client_id_is_generated(&options) {
                0
            } else {
                self.session_expiry
            };
            options = options.with_session_expiry(expiry);
        }
        if let Some(auth) = &self.auth {
            options = match &auth.password {
                Some(password) => options.with_credentials(
                    auth.username.clone(),
                    bytes::Bytes::copy_from_slice(password.expose().as_bytes()),
                ),
                None => options.with_username(auth.username.clone()),
            };
        }
        if let Some(will) = &self.will {
            let topic = mqtt_client::codec::string::MqttString::try_from(will.topic.as_str())
                .map_err(|_| ConfigError::new("will.topic", "not a valid topic name"))?;
            options = options.with_will(mqtt_client::codec::packet::LastWill {
                topic,
                payload: bytes::Bytes::copy_from_slice(will.payload.as_bytes()),
                qos: will.qos(),
                retain: will.retain,
                properties: Default::default(),
            });
        }
        for (name, value) in &self.user_properties {
            options = options.with_user_property(name.clone(), value.clone());
        }
        Ok(options)
    }

    /// The connector for the brokers: the URLs tried in turn, with the TLS
    /// settings for `mqtts://` and `wss://`.
    pub fn servers(&self) -> Result<mqtt_client::transport::Servers, ConfigError> {
        let servers = mqtt_client::transport::Servers::parse_list(&self.brokers)
            .map_err(|e| ConfigError::new("brokers", e.to_string()))?;
        #[cfg(feature = "tls")]
        let servers = match &self.tls {
            Some(tls) => {
                let mut options = mqtt_client::transport::TlsOptions::new();
                if let Some(ca) = &tls.ca_cert {
                    options = options.with_ca_file(ca);
                }
                if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
                    options = options.with_client_cert_files(cert, key);
                }
                if let Some(name) = &tls.server_name {
                    options = options.with_server_name(name.clone());
                }
                if tls.dangerous_accept_any_certificate {
                    tracing::warn!("TLS certificate verification is OFF (tls.dangerous_accept_any_certificate)");
                    options = options.dangerous_accept_any_certificate();
                }
                servers.with_tls(options)
            }
            None => servers,
        };
        #[cfg(not(feature = "tls"))]
        if self.tls.is_some() {
            return Err(ConfigError::new(
                "tls",
                "this build has no TLS (feature `tls`)",
            ));
        }
        Ok(servers)
    }
}

fn client_id_is_generated(options: &mqtt_client::Options) -> bool {
    options.client_id().is_empty()
}

#[cfg(test)]
mod tests {
    use super::{instance_number, redact_url};

    #[test]
    fn instance_number_is_the_value_or_its_last_dash_suffix() {
        assert_eq!(instance_number("3"), Some(3));
        assert_eq!(instance_number(" 7\n"), Some(7));
        assert_eq!(instance_number("ingest-3"), Some(3));
        assert_eq!(instance_number("my-ingest-12"), Some(12));
        assert_eq!(instance_number("ingest-007"), Some(7));
        assert_eq!(instance_number("4294967295"), Some(u32::MAX));
        assert_eq!(instance_number("4294967296"), None);
        assert_eq!(instance_number(""), None);
        assert_eq!(instance_number("ingest"), None);
        assert_eq!(instance_number("ingest-"), None);
        assert_eq!(instance_number("ingest-+3"), None);
        assert_eq!(instance_number("ingest-3a"), None);
        // A Deployment's pod name ends in a random suffix, not an ordinal.
        assert_eq!(instance_number("ingest-7d9f8c-x2kq"), None);
    }

    #[test]
    fn redact_url_hides_passwords_and_queries() {
        assert_eq!(redact_url("mqtt://h:1883"), "mqtt://h:1883");
        assert_eq!(redact_url("mqtt://u@h"), "mqtt://u@h");
        assert_eq!(redact_url("mqtt://u:p@ss@h:1"), "mqtt://u:<redacted>@h:1");
        assert_eq!(
            redact_url("wss://h/mqtt?X-Amz-Signature=s"),
            "wss://h/mqtt?<redacted>"
        );
        assert_eq!(redact_url("u:p@h:1883"), "u:<redacted>@h:1883");
    }
}
