//! `SourceConfig`: builder defaults, files in TOML, YAML and JSON (aliases,
//! `${VAR}` interpolation, unknown options), and every refusal of `validate()`.
//! No broker, no network, no process environment changed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mqtt_source::{
    AuthConfig, ConfigError, Format, Instance, OnFailure, OnSuccess, ProtocolVersion, QoS,
    RetainHandling, Secret, SourceConfig, TlsConfig, Topic, WillConfig, DEFAULT_SESSION_EXPIRY,
};

const BROKER: &str = "mqtt://127.0.0.1:1883";
/// An environment variable no test sets, and no machine has.
const UNSET: &str = "MQTT_SOURCE_TEST_UNSET_ORDINAL_XYZ";

/// A configuration that validates, to break one option at a time.
fn valid() -> SourceConfig {
    SourceConfig::new([BROKER])
        .with_client_id("ingest")
        .with_topic("plant/+/telemetry", QoS::AtLeastOnce)
}

/// The error of `validate()`, which must refuse `config`.
fn refused(config: &SourceConfig) -> ConfigError {
    match config.validate() {
        Ok(()) => {
            let mut shown = format!("{config:?}");
            shown.truncate(2000);
            panic!("accepted: {shown}")
        }
        Err(e) => e,
    }
}

/// An environment of these variables only.
fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// An empty environment.
fn no_env(_: &str) -> Option<String> {
    None
}

fn toml_with(text: &str, vars: &[(&str, &str)]) -> Result<SourceConfig, ConfigError> {
    SourceConfig::from_str_with_env(text, Format::Toml, &env_of(vars))
}

fn toml(text: &str) -> Result<SourceConfig, ConfigError> {
    SourceConfig::from_str_with_env(text, Format::Toml, &no_env)
}

fn yaml(text: &str) -> Result<SourceConfig, ConfigError> {
    SourceConfig::from_str_with_env(text, Format::Yaml, &no_env)
}

fn json(text: &str) -> Result<SourceConfig, ConfigError> {
    SourceConfig::from_str_with_env(text, Format::Json, &no_env)
}

/// The error for a TOML text that must be refused.
fn toml_refused(text: &str) -> ConfigError {
    match toml(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e,
    }
}

/// `brokers` and `client_id` in TOML, to put in front of the option under test.
const HEAD: &str = "brokers = [\"mqtt://127.0.0.1:1883\"]\nclient_id = \"ingest\"\n";

// ---------------------------------------------------------------------------
// Builder

#[test]
fn builder_defaults() {
    let config = SourceConfig::new([BROKER]);
    assert_eq!(config.max_in_flight(), 100);
    assert_eq!(config.concurrency(), 1);
    assert!(!config.clean_start());
    assert_eq!(config.session_expiry(), DEFAULT_SESSION_EXPIRY);
    assert_eq!(DEFAULT_SESSION_EXPIRY, 7 * 24 * 3600);
    assert_eq!(config.version(), ProtocolVersion::V5);
    assert_eq!(config.on_success(), OnSuccess::Ack);
    assert_eq!(config.on_failure(), OnFailure::Redeliver);
    assert_eq!(config.shutdown_timeout(), Duration::from_secs(30));
    assert_eq!(config.shared_group(), None);
    assert!(config.topics().is_empty());
}

#[test]
fn builder_setters_reach_the_getters() {
    let config = valid()
        .with_max_in_flight(7)
        .with_concurrency(3)
        .with_shared_group("g")
        .with_clean_start(true)
        .with_session_expiry(60)
        .with_version(ProtocolVersion::V311)
        .with_on_success(OnSuccess::Noop)
        .with_on_failure(OnFailure::Ack)
        .with_shutdown_timeout(Duration::from_secs(2));
    assert_eq!(config.max_in_flight(), 7);
    assert_eq!(config.concurrency(), 3);
    assert_eq!(config.shared_group(), Some("g"));
    assert!(config.clean_start());
    assert_eq!(config.session_expiry(), 60);
    assert_eq!(config.version(), ProtocolVersion::V311);
    assert_eq!(config.on_success(), OnSuccess::Noop);
    assert_eq!(config.on_failure(), OnFailure::Ack);
    assert_eq!(config.shutdown_timeout(), Duration::from_secs(2));
    config.validate().unwrap();
}

#[test]
fn topic_builder_and_getters() {
    let topic = Topic::new("a/+", QoS::ExactlyOnce);
    assert_eq!(topic.filter(), "a/+");
    assert_eq!(topic.qos(), QoS::ExactlyOnce);
    assert_eq!(
        topic,
        Topic::new("a/+", QoS::ExactlyOnce)
            .with_no_local(false)
            .with_retain_as_published(false)
            .with_retain_handling(RetainHandling::SendOnSubscribe)
    );
    assert_ne!(topic, topic.clone().with_no_local(true));
}

#[test]
fn valid_baseline_and_will_qos() {
    valid().validate().unwrap();
    let will = WillConfig::new("status/ingest", "offline", QoS::AtLeastOnce, true);
    assert_eq!(will.qos(), QoS::AtLeastOnce);
    valid().with_will(will).validate().unwrap();
}

// ---------------------------------------------------------------------------
// Files: the same configuration in three formats

/// What [`FULL_TOML`], [`FULL_YAML`] and [`FULL_JSON`] describe.
fn full_expected() -> SourceConfig {
    SourceConfig::new(["mqtts://a.example:8883", "mqtts://b.example:8883"])
        .with_client_id("ingest")
        .with_shared_group("ingest")
        .with_concurrency(4)
        .with_instance(Instance::Index(2))
        .with_max_in_flight(200)
        .with_on_success(OnSuccess::Noop)
        .with_on_failure(OnFailure::DeadLetter)
        .with_dead_letter_topic("dlq/ingest")
        .with_max_deliveries(3)
        .with_redelivery_delay(Duration::from_millis(250))
        .with_clean_start(true)
        .with_session_expiry(3600)
        .with_session_store("/var/lib/ingest")
        .with_keep_alive(30)
        .with_connect_timeout(Duration::from_millis(5000))
        .with_ping_timeout(Duration::from_millis(4000))
        .with_credentials("ingest", "hunter2")
        .with_tls(TlsConfig {
            ca_cert: Some(PathBuf::from("/etc/mqtt/ca.pem")),
            client_cert: Some(PathBuf::from("/etc/mqtt/cert.pem")),
            client_key: Some(PathBuf::from("/etc/mqtt/key.pem")),
            server_name: Some("mqtt.example".to_owned()),
            dangerous_accept_any_certificate: false,
        })
        .with_will(WillConfig::new(
            "status/ingest",
            "offline",
            QoS::AtLeastOnce,
            true,
        ))
        .with_reconnect(Duration::from_millis(100), Duration::from_millis(9000), 1.5)
        .with_strict_receive_maximum(true)
        .with_shutdown_timeout(Duration::from_millis(1500))
        .with_signal_handling(true)
        .with_user_property("app", "ingest")
        .with_topic("plant/+/telemetry", QoS::AtLeastOnce)
        .with_subscription(
            Topic::new("plant/+/alarms", QoS::ExactlyOnce)
                .with_no_local(true)
                .with_retain_as_published(true)
                .with_retain_handling(RetainHandling::SendIfNew),
        )
        .with_topic("plant/+/debug", QoS::AtMostOnce)
}

const FULL_TOML: &str = r#"
brokers = ["mqtts://a.example:8883", "mqtts://b.example:8883"]
client_id = "ingest"
shared_group = "ingest"
concurrency = 4
instance = 2
max_in_flight = 200
on_success = "noop"
on_failure = "dead_letter"
dead_letter_topic = "dlq/ingest"
max_deliveries = 3
redelivery_delay_ms = 250
clean_start = true
session_expiry_secs = 3600
session_store = "/var/lib/ingest"
protocol_version = 5
keep_alive_secs = 30
connect_timeout_ms = 5000
ping_timeout_ms = 4000
retry_initial_ms = 100
retry_max_ms = 9000
retry_multiplier = 1.5
strict_receive_maximum = true
shutdown_timeout_ms = 1500
handle_signals = true
topics = [
  "plant/+/telemetry",
  { topic = "plant/+/alarms", qos = "exactly_once", no_local = true, retain_as_published = true, retain_handling = "send_if_new" },
  { topic = "plant/+/debug", qos = 0 },
]

[auth]
username = "ingest"
password = "hunter2"

[tls]
ca_cert = "/etc/mqtt/ca.pem"
client_cert = "/etc/mqtt/cert.pem"
client_key = "/etc/mqtt/key.pem"
server_name = "mqtt.example"

[will]
topic = "status/ingest"
payload = "offline"
qos = "at_least_once"
retain = true

[user_properties]
app = "ingest"
"#;

const FULL_YAML: &str = r#"
brokers:
  - mqtts://a.example:8883
  - mqtts://b.example:8883
client_id: ingest
shared_group: ingest
concurrency: 4
instance: 2
max_in_flight: 200
on_success: noop
on_failure: dead_letter
dead_letter_topic: dlq/ingest
max_deliveries: 3
redelivery_delay_ms: 250
clean_start: true
session_expiry_secs: 3600
session_store: /var/lib/ingest
protocol_version: 5
keep_alive_secs: 30
connect_timeout_ms: 5000
ping_timeout_ms: 4000
retry_initial_ms: 100
retry_max_ms: 9000
retry_multiplier: 1.5
strict_receive_maximum: true
shutdown_timeout_ms: 1500
handle_signals: true
topics:
  - plant/+/telemetry
  - topic: plant/+/alarms
    qos: exactly_once
    no_local: true
    retain_as_published: true
    retain_handling: send_if_new
  - topic: plant/+/debug
    qos: 0
auth:
  username: ingest
  password: hunter2
tls:
  ca_cert: /etc/mqtt/ca.pem
  client_cert: /etc/mqtt/cert.pem
  client_key: /etc/mqtt/key.pem
  server_name: mqtt.example
will:
  topic: status/ingest
  payload: offline
  qos: at_least_once
  retain: true
user_properties:
  app: ingest
"#;

const FULL_JSON: &str = r#"{
  "brokers": ["mqtts://a.example:8883", "mqtts://b.example:8883"],
  "client_id": "ingest",
  "shared_group": "ingest",
  "concurrency": 4,
  "instance": 2,
  "max_in_flight": 200,
  "on_success": "noop",
  "on_failure": "dead_letter",
  "dead_letter_topic": "dlq/ingest",
  "max_deliveries": 3,
  "redelivery_delay_ms": 250,
  "clean_start": true,
  "session_expiry_secs": 3600,
  "session_store": "/var/lib/ingest",
  "protocol_version": 5,
  "keep_alive_secs": 30,
  "connect_timeout_ms": 5000,
  "ping_timeout_ms": 4000,
  "retry_initial_ms": 100,
  "retry_max_ms": 9000,
  "retry_multiplier": 1.5,
  "strict_receive_maximum": true,
  "shutdown_timeout_ms": 1500,
  "handle_signals": true,
  "topics": [
    "plant/+/telemetry",
    {"topic": "plant/+/alarms", "qos": "exactly_once", "no_local": true,
     "retain_as_published": true, "retain_handling": "send_if_new"},
    {"topic": "plant/+/debug", "qos": 0}
  ],
  "auth": {"username": "ingest", "password": "hunter2"},
  "tls": {"ca_cert": "/etc/mqtt/ca.pem", "client_cert": "/etc/mqtt/cert.pem",
          "client_key": "/etc/mqtt/key.pem", "server_name": "mqtt.example"},
  "will": {"topic": "status/ingest", "payload": "offline", "qos": "at_least_once", "retain": true},
  "user_properties": {"app": "ingest"}
}"#;

#[test]
fn toml_yaml_and_json_give_equal_configs() {
    let expected = full_expected();
    expected.validate().unwrap();
    let from_toml = toml(FULL_TOML).unwrap();
    let from_yaml = yaml(FULL_YAML).unwrap();
    let from_json = json(FULL_JSON).unwrap();
    assert_eq!(from_toml, expected);
    assert_eq!(from_yaml, expected);
    assert_eq!(from_json, expected);
}

#[test]
fn from_str_as_and_the_per_format_functions_agree() {
    // No `${` in the texts, so the process environment plays no part.
    let expected = full_expected();
    assert_eq!(
        SourceConfig::from_str_as(FULL_TOML, Format::Toml).unwrap(),
        expected
    );
    assert_eq!(SourceConfig::from_toml_str(FULL_TOML).unwrap(), expected);
    assert_eq!(SourceConfig::from_yaml_str(FULL_YAML).unwrap(), expected);
    assert_eq!(SourceConfig::from_json_str(FULL_JSON).unwrap(), expected);
}

#[test]
fn minimal_file_has_the_builder_defaults() {
    let config = toml(&format!("{HEAD}topics = [\"a/b\"]")).unwrap();
    assert_eq!(
        config,
        SourceConfig::new([BROKER])
            .with_client_id("ingest")
            .with_topic("a/b", QoS::AtLeastOnce)
    );
}

#[test]
fn topics_as_strings_and_as_tables() {
    let text =
        format!("{HEAD}topics = [\"a/#\", {{ topic = \"b/+\" }}, {{ filter = \"c\", qos = 2 }}]");
    let config = toml(&text).unwrap();
    assert_eq!(
        config.topics(),
        &[
            Topic::new("a/#", QoS::AtLeastOnce),
            Topic::new("b/+", QoS::AtLeastOnce),
            Topic::new("c", QoS::ExactlyOnce),
        ]
    );
    // TOML array of tables.
    let text = format!(
        "{HEAD}[[topics]]\ntopic = \"x\"\nqos = \"at_most_once\"\n[[topics]]\ntopic = \"y\"\n"
    );
    assert_eq!(
        toml(&text).unwrap().topics(),
        &[
            Topic::new("x", QoS::AtMostOnce),
            Topic::new("y", QoS::AtLeastOnce)
        ]
    );
}

#[test]
fn qos_names_and_numbers() {
    let cases = [
        ("\"at_most_once\"", QoS::AtMostOnce),
        ("\"at_least_once\"", QoS::AtLeastOnce),
        ("\"exactly_once\"", QoS::ExactlyOnce),
        ("0", QoS::AtMostOnce),
        ("1", QoS::AtLeastOnce),
        ("2", QoS::ExactlyOnce),
        ("\"0\"", QoS::AtMostOnce),
        ("\"1\"", QoS::AtLeastOnce),
        ("\"2\"", QoS::ExactlyOnce),
    ];
    for (written, qos) in cases {
        let text = format!("{HEAD}topics = [{{ topic = \"t\", qos = {written} }}]");
        let config = toml(&text).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(config.topics()[0].qos(), qos, "{written}");
        // The will's QoS reads the same names.
        let text = format!("{HEAD}topics = [\"t\"]\n[will]\ntopic = \"w\"\nqos = {written}\n");
        let will = WillConfig::new("w", "", qos, false);
        assert_eq!(
            toml(&text).unwrap(),
            valid_with_topic("t").with_will(will),
            "{written}"
        );
    }
    // YAML and JSON numbers.
    let config = yaml("brokers: [mqtt://h]\nclient_id: c\ntopics: [{topic: t, qos: 2}]").unwrap();
    assert_eq!(config.topics()[0].qos(), QoS::ExactlyOnce);
    let config =
        json(r#"{"brokers": "mqtt://h", "client_id": "c", "topics": [{"topic": "t", "qos": 0}]}"#)
            .unwrap();
    assert_eq!(config.topics()[0].qos(), QoS::AtMostOnce);
}

fn valid_with_topic(filter: &str) -> SourceConfig {
    SourceConfig::new([BROKER])
        .with_client_id("ingest")
        .with_topic(filter, QoS::AtLeastOnce)
}

#[test]
fn will_qos_defaults_to_at_most_once() {
    let text = format!("{HEAD}topics = [\"t\"]\n[will]\ntopic = \"w\"\n");
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t").with_will(WillConfig::new("w", "", QoS::AtMostOnce, false))
    );
}

#[test]
fn retain_handling_names() {
    let cases = [
        ("send", RetainHandling::SendOnSubscribe),
        ("send_on_subscribe", RetainHandling::SendOnSubscribe),
        ("send_if_new", RetainHandling::SendIfNew),
        ("never", RetainHandling::DoNotSend),
        ("do_not_send", RetainHandling::DoNotSend),
    ];
    for (name, handling) in cases {
        let text = format!("{HEAD}topics = [{{ topic = \"t\", retain_handling = \"{name}\" }}]");
        let config = toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            config.topics(),
            &[Topic::new("t", QoS::AtLeastOnce).with_retain_handling(handling)],
            "{name}"
        );
    }
}

#[test]
fn unknown_retain_handling_is_refused_at_its_path() {
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"a\", {{ topic = \"t\", retain_handling = \"sometimes\" }}]"
    ));
    assert_eq!(e.option, "topics[1].retain_handling", "{e}");
    assert!(e.message.contains("sometimes"), "{e}");
}

#[test]
fn durations_are_milliseconds_and_seconds_as_named() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\nredelivery_delay_ms = 7\nconnect_timeout_ms = 8\nping_timeout_ms = 9\nshutdown_timeout_ms = 10\nretry_initial_ms = 11\nretry_max_ms = 12\nretry_multiplier = 3\nkeep_alive_secs = 13\nsession_expiry_secs = 14\n"
    );
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t")
            .with_redelivery_delay(Duration::from_millis(7))
            .with_connect_timeout(Duration::from_millis(8))
            .with_ping_timeout(Duration::from_millis(9))
            .with_shutdown_timeout(Duration::from_millis(10))
            .with_reconnect(Duration::from_millis(11), Duration::from_millis(12), 3.0)
            .with_keep_alive(13)
            .with_session_expiry(14)
    );
}

#[test]
fn auth_without_password() {
    let text = format!("{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\n");
    let config = toml(&text).unwrap();
    let debug = format!("{config:?}");
    let auth = AuthConfig {
        username: "u".to_owned(),
        password: None,
    };
    assert!(debug.contains(&format!("{auth:?}")), "{debug}");
}

// ---------------------------------------------------------------------------
// Aliases (off_broadway_emqtt and Rivven names)

#[test]
fn alias_broker_url_and_broker_take_one_string() {
    for key in ["broker_url", "broker", "url", "brokers"] {
        let text = format!("{key} = \"{BROKER}\"\nclient_id = \"ingest\"\ntopics = [\"t\"]\n");
        assert_eq!(toml(&text).unwrap(), valid_with_topic("t"), "{key}");
    }
    let text =
        "broker_url = [\"mqtt://a\", \"mqtt://b\"]\nclient_id = \"ingest\"\ntopics = [\"t\"]\n";
    assert_eq!(
        toml(text).unwrap(),
        SourceConfig::new(["mqtt://a", "mqtt://b"])
            .with_client_id("ingest")
            .with_topic("t", QoS::AtLeastOnce)
    );
}

#[test]
fn alias_clientid_max_inflight_clean_session_keepalive_group() {
    let text = format!(
        "broker = \"{BROKER}\"\nclientid = \"ingest\"\nmax_inflight = 9\nclean_session = true\nkeepalive = 15\ngroup = \"g\"\nconcurrency = 2\ntopics = [\"t\"]\n"
    );
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t")
            .with_max_in_flight(9)
            .with_clean_start(true)
            .with_keep_alive(15)
            .with_shared_group("g")
            .with_concurrency(2)
    );
    // The other spellings of these.
    let text = format!("{HEAD}topics = [\"t\"]\nkeep_alive = 16\nsession_expiry_interval = 17\n");
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t")
            .with_keep_alive(16)
            .with_session_expiry(17)
    );
}

#[test]
fn alias_last_will_and_ssl_opts() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\n[last_will]\ntopic = \"status\"\npayload = \"gone\"\nqos = 1\nretain = true\n[ssl_opts]\ncacertfile = \"/ca.pem\"\ncertfile = \"/cert.pem\"\nkeyfile = \"/key.pem\"\n"
    );
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t")
            .with_will(WillConfig::new("status", "gone", QoS::AtLeastOnce, true))
            .with_tls(TlsConfig {
                ca_cert: Some("/ca.pem".into()),
                client_cert: Some("/cert.pem".into()),
                client_key: Some("/key.pem".into()),
                ..TlsConfig::default()
            })
    );
    let text = format!("{HEAD}topics = [\"t\"]\n[tls]\nca_file = \"/ca.pem\"\n");
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t").with_tls(TlsConfig {
            ca_cert: Some("/ca.pem".into()),
            ..TlsConfig::default()
        })
    );
}

#[test]
fn protocol_version_spellings() {
    let v311 = ["\"3.1.1\"", "4", "\"4\"", "\"v4\"", "\"v311\""];
    let v5 = ["5", "\"5\"", "\"5.0\"", "5.0", "\"v5\""];
    for key in ["proto_ver", "protocol_version"] {
        for written in v311 {
            let text = format!("{HEAD}topics = [\"t\"]\n{key} = {written}\n");
            let config = toml(&text).unwrap_or_else(|e| panic!("{key} = {written}: {e}"));
            assert_eq!(config.version(), ProtocolVersion::V311, "{key} = {written}");
        }
        for written in v5 {
            let text = format!("{HEAD}topics = [\"t\"]\n{key} = {written}\n");
            let config = toml(&text).unwrap_or_else(|e| panic!("{key} = {written}: {e}"));
            assert_eq!(config.version(), ProtocolVersion::V5, "{key} = {written}");
        }
    }
    // YAML reads `3.1.1` unquoted as a string, `5.0` as a float.
    let config = yaml("brokers: mqtt://h\nclient_id: c\ntopics: [t]\nproto_ver: 3.1.1\n").unwrap();
    assert_eq!(config.version(), ProtocolVersion::V311);
    let config = yaml("brokers: mqtt://h\nclient_id: c\ntopics: [t]\nproto_ver: 5.0\n").unwrap();
    assert_eq!(config.version(), ProtocolVersion::V5);
    for bad in ["3", "\"3.1\"", "6", "true"] {
        let e = toml_refused(&format!("{HEAD}topics = [\"t\"]\nproto_ver = {bad}\n"));
        assert_eq!(e.option, "protocol_version", "{bad}: {e}");
    }
}

#[test]
fn an_option_and_its_alias_together_are_refused() {
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\nmax_in_flight = 1\nmax_inflight = 2\n"
    ));
    assert!(e.message.contains("duplicate"), "{e}");
}

// ---------------------------------------------------------------------------
// ${VAR} interpolation

#[test]
fn env_variable_is_substituted_into_the_password() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\n[auth]\nusername = \"ingest\"\npassword = \"${{MQTT_PASSWORD}}\"\n"
    );
    let config = toml_with(&text, &[("MQTT_PASSWORD", "s3cr3t")]).unwrap();
    assert_eq!(
        config,
        valid_with_topic("t").with_credentials("ingest", "s3cr3t")
    );
}

#[test]
fn env_variable_inside_a_longer_string_and_several_in_one() {
    let text = "brokers = [\"mqtt://${HOST}:${PORT}\"]\nclient_id = \"ingest-${POD}\"\ntopics = [\"plant/${SITE}/#\"]\n";
    let env = [
        ("HOST", "broker.internal"),
        ("PORT", "1884"),
        ("POD", "7"),
        ("SITE", "north"),
    ];
    assert_eq!(
        toml_with(text, &env).unwrap(),
        SourceConfig::new(["mqtt://broker.internal:1884"])
            .with_client_id("ingest-7")
            .with_topic("plant/north/#", QoS::AtLeastOnce)
    );
}

#[test]
fn env_default_when_unset_or_empty() {
    let text = format!("{HEAD}topics = [\"${{TOPIC:-plant/#}}\"]\n");
    assert_eq!(toml_with(&text, &[]).unwrap(), valid_with_topic("plant/#"));
    assert_eq!(
        toml_with(&text, &[("TOPIC", "")]).unwrap(),
        valid_with_topic("plant/#")
    );
    assert_eq!(
        toml_with(&text, &[("TOPIC", "set/+")]).unwrap(),
        valid_with_topic("set/+")
    );
    // An empty default.
    let text = format!("{HEAD}topics = [\"a${{SUFFIX:-}}\"]\n");
    assert_eq!(toml_with(&text, &[]).unwrap(), valid_with_topic("a"));
}

#[test]
fn env_set_but_empty_without_default_is_empty() {
    let text =
        format!("brokers = \"{BROKER}\"\nclient_id = \"ingest${{EMPTY}}\"\ntopics = [\"t\"]\n");
    assert_eq!(
        toml_with(&text, &[("EMPTY", "")]).unwrap(),
        valid_with_topic("t")
    );
}

#[test]
fn double_dollar_brace_is_a_literal() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\n[will]\ntopic = \"w\"\npayload = \"$${{NOT_A_VAR}} and $5 and $$ and a$\"\n"
    );
    let config = toml_with(&text, &[("NOT_A_VAR", "oops")]).unwrap();
    assert_eq!(
        config,
        valid_with_topic("t").with_will(WillConfig::new(
            "w",
            "${NOT_A_VAR} and $5 and $$ and a$",
            QoS::AtMostOnce,
            false
        ))
    );
}

#[test]
fn a_substituted_value_is_not_expanded_again() {
    let text = format!("{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npassword = \"${{A}}\"\n");
    let config = toml_with(&text, &[("A", "${B}"), ("B", "no")]).unwrap();
    assert_eq!(config, valid_with_topic("t").with_credentials("u", "${B}"));
}

#[test]
fn unset_variable_names_the_option() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npassword = \"${{MQTT_PASSWORD}}\"\n"
    );
    let e = toml_with(&text, &[]).unwrap_err();
    assert_eq!(e.option, "auth.password", "{e}");
    assert!(e.message.contains("MQTT_PASSWORD"), "{e}");
    assert!(e.to_string().contains("`auth.password`"), "{e}");

    let text = format!("{HEAD}topics = [\"a\", {{ topic = \"${{T}}\" }}]\n");
    let e = toml_with(&text, &[]).unwrap_err();
    assert_eq!(e.option, "topics[1].topic", "{e}");

    let text = format!("{HEAD}topics = [\"a\", \"${{T}}\"]\n");
    let e = toml_with(&text, &[]).unwrap_err();
    assert_eq!(e.option, "topics[1]", "{e}");

    let e = toml_with("brokers = \"${BROKER}\"", &[]).unwrap_err();
    assert_eq!(e.option, "brokers", "{e}");
}

#[test]
fn malformed_references_are_refused() {
    for written in ["${UNCLOSED", "${}", "${A B}", "${A-B}", "${:-x}"] {
        let text = format!("{HEAD}topics = [\"t\"]\ndead_letter_topic = \"{written}\"\n");
        let e = toml_with(&text, &[("A", "x")]).unwrap_err();
        assert_eq!(e.option, "dead_letter_topic", "{written}: {e}");
    }
}

#[test]
fn quotes_and_newlines_in_a_value_do_not_change_the_structure() {
    let nasty = "p\"\n[tls]\ndangerous_accept_any_certificate = true\n# \"'\\";
    let text =
        format!("{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npassword = \"${{PW}}\"\n");
    let config = toml_with(&text, &[("PW", nasty)]).unwrap();
    assert_eq!(config, valid_with_topic("t").with_credentials("u", nasty));

    let text = "brokers: mqtt://127.0.0.1:1883\nclient_id: ingest\ntopics: [t]\nauth:\n  username: u\n  password: ${PW}\n";
    let config =
        SourceConfig::from_str_with_env(text, Format::Yaml, &env_of(&[("PW", "a\nb: c\n- d")]))
            .unwrap();
    assert_eq!(
        config,
        valid_with_topic("t").with_credentials("u", "a\nb: c\n- d")
    );

    let text = r#"{"brokers": "mqtt://127.0.0.1:1883", "client_id": "ingest", "topics": ["t"],
                  "auth": {"username": "u", "password": "${PW}"}}"#;
    let config =
        SourceConfig::from_str_with_env(text, Format::Json, &env_of(&[("PW", "\"}, \"x\": {")]))
            .unwrap();
    assert_eq!(
        config,
        valid_with_topic("t").with_credentials("u", "\"}, \"x\": {")
    );
}

#[test]
fn interpolation_applies_to_string_values_only() {
    // A number cannot come from the environment: `"${N}"` stays a string.
    let text = format!("{HEAD}topics = [\"t\"]\nmax_in_flight = \"${{N}}\"\n");
    let e = toml_with(&text, &[("N", "10")]).unwrap_err();
    assert_eq!(e.option, "max_in_flight", "{e}");
    // A key is not interpolated.
    let text = format!("{HEAD}topics = [\"t\"]\n[user_properties]\n\"${{K}}\" = \"v\"\n");
    assert_eq!(
        toml_with(&text, &[("K", "k")]).unwrap(),
        valid_with_topic("t").with_user_property("${K}", "v")
    );
}

// ---------------------------------------------------------------------------
// Unknown options and bad values

#[test]
fn unknown_top_level_option_is_refused_by_name() {
    let e = toml_refused(&format!("{HEAD}topics = [\"t\"]\nmax_in_flgiht = 10\n"));
    assert_eq!(e.option, "max_in_flgiht", "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn unknown_option_in_a_table_is_refused_with_its_path() {
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[tls]\nca_crt = \"/ca.pem\"\n"
    ));
    assert_eq!(e.option, "tls.ca_crt", "{e}");
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[ssl_opts]\nverify = false\n"
    ));
    assert_eq!(e.option, "ssl_opts.verify", "{e}");
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npasword = \"p\"\n"
    ));
    assert_eq!(e.option, "auth.pasword", "{e}");
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[will]\ntopic = \"w\"\nretained = true\n"
    ));
    assert_eq!(e.option, "will.retained", "{e}");
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"a\", {{ topic = \"t\", qoss = 1 }}]\n"
    ));
    assert_eq!(e.option, "topics[1].qoss", "{e}");
    let e = yaml("brokers: mqtt://h\nclient_id: c\ntopics: [t]\ninstance: {env: X, default: 0}\n")
        .unwrap_err();
    assert_eq!(e.option, "instance.default", "{e}");
}

#[test]
fn bad_qos_name_points_into_the_topic() {
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"a\", {{ topic = \"t\", qos = \"at_least_twice\" }}]\n"
    ));
    assert_eq!(e.option, "topics[1].qos", "{e}");
    assert!(e.message.contains("at_least_twice"), "{e}");
    for bad in ["3", "-1", "300", "1.0", "true"] {
        let e = toml_refused(&format!(
            "{HEAD}topics = [{{ topic = \"t\", qos = {bad} }}]\n"
        ));
        assert_eq!(e.option, "topics[0].qos", "{bad}: {e}");
    }
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[will]\ntopic = \"w\"\nqos = \"once\"\n"
    ));
    assert_eq!(e.option, "will.qos", "{e}");
}

#[test]
fn a_topic_table_without_topic_is_refused() {
    let e = toml_refused(&format!("{HEAD}topics = [{{ qos = 1 }}]\n"));
    assert_eq!(e.option, "topics[0]", "{e}");
    assert!(e.message.contains("topic"), "{e}");
    let e = toml_refused(&format!("{HEAD}topics = [7]\n"));
    assert_eq!(e.option, "topics[0]", "{e}");
}

#[test]
fn wrong_types_and_ranges_name_the_option() {
    let cases = [
        ("max_in_flight = \"many\"", "max_in_flight"),
        ("max_in_flight = 70000", "max_in_flight"),
        ("concurrency = -1", "concurrency"),
        ("clean_start = \"yes\"", "clean_start"),
        ("on_failure = \"retry\"", "on_failure"),
        ("on_success = \"nack\"", "on_success"),
        ("instance = -1", "instance"),
        ("instance = \"3\"", "instance"),
        ("instance = 5000000000", "instance"),
    ];
    for (line, option) in cases {
        let e = toml_refused(&format!("{HEAD}topics = [\"t\"]\n{line}\n"));
        assert_eq!(e.option, option, "{line}: {e}");
    }
}

#[test]
fn syntax_errors_name_the_format() {
    let e = toml_refused("brokers = [");
    assert_eq!(e.option, "");
    assert!(e.message.starts_with("TOML"), "{e}");
    let e = yaml("brokers: [").unwrap_err();
    assert!(e.message.starts_with("YAML"), "{e}");
    let e = json("{").unwrap_err();
    assert!(e.message.starts_with("JSON"), "{e}");
    // Not a table at the top: an array is not read as the fields in order.
    let e = json("[\"mqtt://h\", [\"t\"], \"c\"]").unwrap_err();
    assert_eq!(e.option, "", "{e}");
    assert!(e.message.contains("table"), "{e}");
    // An empty YAML file.
    let e = yaml("").unwrap_err();
    assert!(e.message.contains("table"), "{e}");
}

// ---------------------------------------------------------------------------
// validate(): each refusal names its option

#[test]
fn refused_without_brokers() {
    assert_eq!(
        refused(
            &SourceConfig::new(Vec::<String>::new())
                .with_client_id("c")
                .with_topic("t", QoS::AtMostOnce)
        )
        .option,
        "brokers"
    );
    // A file without any.
    let e = toml_refused("client_id = \"c\"\ntopics = [\"t\"]");
    assert_eq!(e.option, "brokers", "{e}");
}

#[test]
fn refused_invalid_broker_url() {
    let base = |url: &str| {
        SourceConfig::new([BROKER, url])
            .with_client_id("c")
            .with_topic("t", QoS::AtMostOnce)
    };
    for url in [
        "",
        "127.0.0.1:1883",
        "http://h",
        "mqtt://",
        "mqtt://h:0",
        "mqtt://h:99999",
        "mqtt://h/path",
        "mqtt://h#x",
    ] {
        let e = refused(&base(url));
        assert_eq!(e.option, "brokers[1]", "{url}: {e}");
    }
}

#[test]
fn refused_brokers_with_conflicting_credentials() {
    let config = SourceConfig::new(["mqtt://a:1@h1", "mqtt://b:2@h2"])
        .with_client_id("c")
        .with_topic("t", QoS::AtMostOnce);
    assert_eq!(refused(&config).option, "brokers");
    SourceConfig::new(["mqtt://a:1@h1", "mqtt://a:1@h2", "mqtt://h3"])
        .with_client_id("c")
        .with_topic("t", QoS::AtMostOnce)
        .validate()
        .unwrap();
}

#[test]
fn refused_without_topics() {
    assert_eq!(
        refused(&SourceConfig::new([BROKER]).with_client_id("c")).option,
        "topics"
    );
    let e = toml_refused(HEAD);
    assert_eq!(e.option, "topics", "{e}");
}

#[test]
fn refused_invalid_filter() {
    let long = "a".repeat(65_536);
    for filter in ["a/#/b", "a+", "", "a/b#", "a\0b", long.as_str()] {
        let e = refused(&valid().with_topic(filter, QoS::AtLeastOnce));
        assert_eq!(e.option, "topics[1].topic", "{}: {e}", filter.len());
    }
    // U+0000 from a file (TOML writes it \u0000).
    let e = toml_refused(&format!("{HEAD}topics = [\"a\\u0000b\"]\n"));
    assert_eq!(e.option, "topics[0].topic", "{e}");
}

#[test]
fn refused_share_filter_in_topics() {
    let e = refused(&valid().with_topic("$share/g/a/b", QoS::AtLeastOnce));
    assert_eq!(e.option, "topics[1].topic");
    assert!(e.message.contains("shared_group"), "{e}");
    let e = toml_refused(&format!("{HEAD}topics = [{{ topic = \"$share/g/t\" }}]\n"));
    assert_eq!(e.option, "topics[0].topic", "{e}");
}

#[test]
fn refused_concurrency_zero() {
    assert_eq!(
        refused(&valid().with_shared_group("g").with_concurrency(0)).option,
        "concurrency"
    );
    assert_eq!(refused(&valid().with_concurrency(0)).option, "concurrency");
}

#[test]
fn refused_concurrency_above_one_without_group() {
    let e = refused(&valid().with_concurrency(2));
    assert_eq!(e.option, "concurrency", "{e}");
    valid()
        .with_concurrency(2)
        .with_shared_group("g")
        .validate()
        .unwrap();
}

#[test]
fn refused_instance_without_group() {
    let e = refused(&valid().with_instance(Instance::Index(1)));
    assert_eq!(e.option, "instance", "{e}");
    valid()
        .with_instance(Instance::Index(1))
        .with_shared_group("g")
        .validate()
        .unwrap();
}

#[test]
fn refused_blank_group() {
    for group in ["", " ", "\t"] {
        let e = refused(&valid().with_shared_group(group));
        assert_eq!(e.option, "shared_group", "{group:?}: {e}");
    }
}

#[test]
fn refused_group_with_slash_plus_hash_or_control() {
    for group in ["a/b", "a+", "#", "a\nb"] {
        let e = refused(&valid().with_shared_group(group));
        assert_eq!(e.option, "shared_group", "{group:?}: {e}");
    }
    let e = toml_refused(&format!("{HEAD}topics = [\"t\"]\ngroup = \"x/y\"\n"));
    assert_eq!(e.option, "shared_group", "{e}");
}

#[test]
fn refused_max_in_flight_zero() {
    assert_eq!(
        refused(&valid().with_max_in_flight(0)).option,
        "max_in_flight"
    );
}

#[test]
fn refused_max_deliveries_zero() {
    assert_eq!(
        refused(&valid().with_max_deliveries(0)).option,
        "max_deliveries"
    );
    valid().with_max_deliveries(1).validate().unwrap();
}

#[test]
fn refused_dead_letter_without_topic() {
    let e = refused(&valid().with_on_failure(OnFailure::DeadLetter));
    assert_eq!(e.option, "dead_letter_topic", "{e}");
    valid()
        .with_on_failure(OnFailure::DeadLetter)
        .with_dead_letter_topic("dlq/x")
        .validate()
        .unwrap();
    // A dead-letter topic with another on_failure is allowed (poison goes there).
    valid().with_dead_letter_topic("dlq/x").validate().unwrap();
}

#[test]
fn refused_dead_letter_topic_with_wildcard() {
    for topic in ["dlq/#", "dlq/+/x", "", "dlq\0x"] {
        let e = refused(&valid().with_dead_letter_topic(topic));
        assert_eq!(e.option, "dead_letter_topic", "{topic:?}: {e}");
    }
}

#[test]
fn refused_persistent_session_without_client_id() {
    let no_id = SourceConfig::new([BROKER]).with_topic("t", QoS::AtLeastOnce);
    assert_eq!(refused(&no_id).option, "client_id");
    assert_eq!(
        refused(&no_id.clone().with_client_id("")).option,
        "client_id"
    );
    assert_eq!(
        refused(&no_id.clone().with_session_expiry(0)).option,
        "client_id"
    );
    // A clean start needs no client id (the broker assigns one).
    no_id.clone().with_clean_start(true).validate().unwrap();
    no_id
        .with_clean_start(true)
        .with_session_expiry(0)
        .validate()
        .unwrap();
    let e = toml_refused(&format!("brokers = \"{BROKER}\"\ntopics = [\"t\"]\n"));
    assert_eq!(e.option, "client_id", "{e}");
    toml(&format!(
        "brokers = \"{BROKER}\"\ntopics = [\"t\"]\nclean_start = true\n"
    ))
    .unwrap();
}

#[test]
fn refused_client_id_with_control_characters() {
    assert_eq!(refused(&valid().with_client_id("a\nb")).option, "client_id");
}

#[test]
fn refused_retry_multiplier_below_one() {
    let ms = Duration::from_millis;
    for multiplier in [0.5, 0.0, -1.0, f64::NAN] {
        let e = refused(&valid().with_reconnect(ms(1), ms(2), multiplier));
        assert_eq!(e.option, "retry_multiplier", "{multiplier}: {e}");
    }
    valid()
        .with_reconnect(ms(1), ms(2), 1.0)
        .validate()
        .unwrap();
}

#[test]
fn refused_retry_initial_above_max() {
    let ms = Duration::from_millis;
    let e = refused(&valid().with_reconnect(ms(3), ms(2), 2.0));
    assert_eq!(e.option, "retry_initial_ms", "{e}");
    valid()
        .with_reconnect(ms(2), ms(2), 2.0)
        .validate()
        .unwrap();
}

#[test]
fn refused_will_topic_with_wildcard() {
    for topic in ["status/#", "status/+", "", "status\0x"] {
        let e = refused(&valid().with_will(WillConfig::new(topic, "x", QoS::AtMostOnce, false)));
        assert_eq!(e.option, "will.topic", "{topic:?}: {e}");
    }
}

#[test]
fn refused_client_cert_without_key_and_key_without_cert() {
    let e = refused(&valid().with_tls(TlsConfig {
        client_cert: Some("/cert.pem".into()),
        ..TlsConfig::default()
    }));
    assert_eq!(e.option, "tls.client_key", "{e}");
    let e = refused(&valid().with_tls(TlsConfig {
        client_key: Some("/key.pem".into()),
        ..TlsConfig::default()
    }));
    assert_eq!(e.option, "tls.client_cert", "{e}");
    valid()
        .with_tls(TlsConfig {
            client_cert: Some("/cert.pem".into()),
            client_key: Some("/key.pem".into()),
            ..TlsConfig::default()
        })
        .validate()
        .unwrap();
}

#[test]
fn refused_mqtt5_options_with_311() {
    let v311 = || valid().with_version(ProtocolVersion::V311);
    v311().validate().unwrap();
    let options = [
        Topic::new("x", QoS::AtLeastOnce).with_no_local(true),
        Topic::new("x", QoS::AtLeastOnce).with_retain_as_published(true),
        Topic::new("x", QoS::AtLeastOnce).with_retain_handling(RetainHandling::DoNotSend),
    ];
    for topic in options {
        let e = refused(&v311().with_subscription(topic.clone()));
        assert_eq!(e.option, "topics[1]", "{topic:?}: {e}");
        valid().with_subscription(topic).validate().unwrap();
    }
    let e = refused(&v311().with_user_property("a", "b"));
    assert_eq!(e.option, "user_properties", "{e}");
    let e = toml_refused(&format!(
        "{HEAD}proto_ver = \"3.1.1\"\ntopics = [{{ topic = \"t\", no_local = true }}]\n"
    ));
    assert_eq!(e.option, "topics[0]", "{e}");
}

// ---------------------------------------------------------------------------
// Instance

#[test]
fn instance_index_is_parsed() {
    let text = format!("{HEAD}topics = [\"t\"]\nshared_group = \"g\"\ninstance = 3\n");
    assert_eq!(
        toml(&text).unwrap(),
        valid_with_topic("t")
            .with_shared_group("g")
            .with_instance(Instance::Index(3))
    );
}

#[test]
fn instance_env_is_parsed_and_an_unset_variable_is_refused() {
    let text = format!(
        "{HEAD}topics = [\"t\"]\nshared_group = \"g\"\ninstance = {{ env = \"{UNSET}\" }}\n"
    );
    let e = toml_refused(&text);
    assert_eq!(e.option, "instance.env", "{e}");
    assert!(e.message.contains(UNSET), "{e}");
    // The same from the builder.
    let config = valid()
        .with_shared_group("g")
        .with_instance(Instance::Env(UNSET.to_owned()));
    assert_eq!(refused(&config), e);
}

#[test]
fn instance_env_with_a_variable_cargo_sets() {
    // Cargo runs tests with the package's version in the environment; its major
    // version is a number. Skipped when the binary is run by hand.
    let var = "CARGO_PKG_VERSION_MAJOR";
    let Ok(value) = std::env::var(var) else {
        return;
    };
    let text =
        format!("{HEAD}topics = [\"t\"]\nshared_group = \"g\"\ninstance = {{ env = \"{var}\" }}\n");
    let config = toml(&text).unwrap_or_else(|e| panic!("{var}={value}: {e}"));
    assert_eq!(
        config,
        valid_with_topic("t")
            .with_shared_group("g")
            .with_instance(Instance::Env(var.to_owned()))
    );
    // A variable that does not end in a number.
    let config = valid()
        .with_shared_group("g")
        .with_instance(Instance::Env("CARGO_PKG_NAME".to_owned()));
    if std::env::var("CARGO_PKG_NAME").is_ok() {
        assert_eq!(refused(&config).option, "instance.env");
    }
}

#[test]
fn refused_instance_whose_connection_numbers_overflow() {
    let config = valid()
        .with_shared_group("g")
        .with_concurrency(2)
        .with_instance(Instance::Index(u32::MAX));
    assert_eq!(refused(&config).option, "instance");
    valid()
        .with_shared_group("g")
        .with_instance(Instance::Index(u32::MAX))
        .validate()
        .unwrap();
    valid()
        .with_shared_group("g")
        .with_concurrency(2)
        .with_instance(Instance::Index(u32::MAX / 2 - 1))
        .validate()
        .unwrap();
}

// ---------------------------------------------------------------------------
// Secrets

#[test]
fn debug_never_shows_the_password() {
    let config = valid().with_credentials("ingest", "hunter2-builder");
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("ingest"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");

    let text =
        format!("{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npassword = \"${{PW}}\"\n");
    let config = toml_with(&text, &[("PW", "hunter2-file")]).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    assert!(!format!("{config:#?}").contains("hunter2"));

    let secret = Secret::new("hunter2-secret");
    assert_eq!(secret.expose(), "hunter2-secret");
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

#[test]
fn debug_never_shows_a_password_or_query_of_a_broker_url() {
    let config = SourceConfig::new([
        "mqtt://ingest:hunter2-url@broker:1883",
        "wss://broker/mqtt?X-Amz-Signature=hunter2-query",
    ])
    .with_client_id("c")
    .with_topic("t", QoS::AtMostOnce);
    config.validate().unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("mqtt://ingest:<redacted>@broker:1883"),
        "{debug}"
    );
    assert!(debug.contains("wss://broker/mqtt?<redacted>"), "{debug}");
}

#[test]
fn errors_do_not_show_the_password() {
    // A URL without a scheme, its password in the user info.
    let config = SourceConfig::new(["ingest:hunter2@broker:1883"])
        .with_client_id("c")
        .with_topic("t", QoS::AtMostOnce);
    let e = refused(&config);
    assert_eq!(e.option, "brokers[0]");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // An unknown field next to the password.
    let e = toml_refused(&format!(
        "{HEAD}topics = [\"t\"]\n[auth]\nusername = \"u\"\npassword = \"hunter2\"\nrealm = \"x\"\n"
    ));
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn config_error_display() {
    let e = toml_refused(&format!("{HEAD}topics = [\"t\"]\nbogus = 1\n"));
    assert!(
        e.to_string()
            .starts_with("invalid configuration: `bogus`: "),
        "{e}"
    );
    let e = toml_refused("[");
    assert!(
        e.to_string().starts_with("invalid configuration: TOML"),
        "{e}"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("TOML"));
}

// ---------------------------------------------------------------------------
// Files

/// A file under the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(extension: &str, text: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mqtt-source-config-test-{}-{}.{extension}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn from_file_picks_the_format_by_extension() {
    let expected = full_expected();
    for (extension, text) in [
        ("toml", FULL_TOML),
        ("yaml", FULL_YAML),
        ("yml", FULL_YAML),
        ("json", FULL_JSON),
    ] {
        let file = TempFile::new(extension, text);
        let config =
            SourceConfig::from_file(&file.0).unwrap_or_else(|e| panic!("{extension}: {e}"));
        assert_eq!(config, expected, "{extension}");
    }
    // The extension, not the content, decides: JSON text in a .toml file is TOML.
    let file = TempFile::new("toml", FULL_JSON);
    let e = SourceConfig::from_file(&file.0).unwrap_err();
    assert!(e.message.starts_with("TOML"), "{e}");
}

#[test]
fn format_of_a_path() {
    use std::path::Path;
    assert_eq!(Format::of(Path::new("a.toml")), Some(Format::Toml));
    assert_eq!(Format::of(Path::new("a.yaml")), Some(Format::Yaml));
    assert_eq!(Format::of(Path::new("a.yml")), Some(Format::Yaml));
    assert_eq!(Format::of(Path::new("a.json")), Some(Format::Json));
    assert_eq!(Format::of(Path::new("a.ini")), None);
    assert_eq!(Format::of(Path::new("toml")), None);
}

#[test]
fn from_file_refuses_an_unknown_extension() {
    let file = TempFile::new("ini", FULL_TOML);
    let e = SourceConfig::from_file(&file.0).unwrap_err();
    assert_eq!(e.option, "");
    assert!(e.message.contains("unknown extension"), "{e}");
    let file = TempFile::new("conf.bak", FULL_TOML);
    assert!(SourceConfig::from_file(&file.0).is_err());
}

#[test]
fn from_file_reports_a_missing_file() {
    let path = std::env::temp_dir().join(format!(
        "mqtt-source-config-test-{}-missing.toml",
        std::process::id()
    ));
    let e = SourceConfig::from_file(&path).unwrap_err();
    assert!(e.message.contains("missing.toml"), "{e}");
}
