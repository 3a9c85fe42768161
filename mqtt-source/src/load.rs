//! [`SourceConfig`] from TOML, YAML or JSON, with `${VAR}` taken from the environment.
//!
//! The file is parsed, then every string value in it is interpolated: `${VAR}` is
//! the variable's value (an error naming it when unset), `${VAR:-default}` the
//! default when unset or empty, and `$${` a literal `${`. Interpolation happens in
//! string values only, after parsing, so a secret holding quotes or newlines
//! cannot change the file's structure. Then the options are read (unknown names
//! are refused, with the path of the one at fault) and validated
//! ([`SourceConfig::validate`]).
//!
//! ```toml
//! brokers = ["mqtts://broker.example:8883"]
//! client_id = "ingest"
//! shared_group = "ingest"
//! concurrency = 4
//! max_in_flight = 200
//! on_failure = "redeliver"
//! max_deliveries = 5
//! dead_letter_topic = "dlq/ingest"
//! topics = [
//!   { topic = "plant/+/telemetry", qos = "at_least_once" },
//!   { topic = "plant/+/alarms", qos = "exactly_once" },
//! ]
//! [auth]
//! username = "ingest"
//! password = "${MQTT_PASSWORD}"
//! [tls]
//! ca_cert = "/etc/mqtt/ca.pem"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mqtt_client::ProtocolVersion;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{
    AuthConfig, ConfigError, Instance, OnFailure, OnSuccess, TlsConfig, Topic, WillConfig,
    DEFAULT_SESSION_EXPIRY,
};
use crate::SourceConfig;

/// The options as a file spells them. Aliases are the names off_broadway_emqtt
/// and Rivven use for the same option.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, alias = "broker_url", alias = "broker", alias = "url")]
    brokers: OneOrMany,
    #[serde(default)]
    topics: Vec<Topic>,
    #[serde(default, alias = "clientid")]
    client_id: Option<String>,
    #[serde(default, alias = "group")]
    shared_group: Option<String>,
    #[serde(default)]
    concurrency: Option<u16>,
    #[serde(default)]
    instance: Option<Instance>,
    #[serde(default, alias = "max_inflight")]
    max_in_flight: Option<u16>,
    #[serde(default)]
    on_success: Option<OnSuccess>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    #[serde(default)]
    dead_letter_topic: Option<String>,
    #[serde(default)]
    max_deliveries: Option<u32>,
    #[serde(default)]
    redelivery_delay_ms: Option<u64>,
    #[serde(default, alias = "clean_session")]
    clean_start: Option<bool>,
    #[serde(default, alias = "session_expiry_interval")]
    session_expiry_secs: Option<u32>,
    #[serde(default)]
    session_store: Option<PathBuf>,
    #[serde(default, alias = "proto_ver")]
    protocol_version: Option<Value>,
    #[serde(default, alias = "keepalive", alias = "keep_alive")]
    keep_alive_secs: Option<u16>,
    #[serde(default)]
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    ping_timeout_ms: Option<u64>,
    #[serde(default)]
    auth: Option<AuthConfig>,
    #[serde(default, alias = "ssl_opts")]
    tls: Option<TlsConfig>,
    #[serde(default, alias = "last_will")]
    will: Option<WillConfig>,
    #[serde(default)]
    retry_initial_ms: Option<u64>,
    #[serde(default)]
    retry_max_ms: Option<u64>,
    #[serde(default)]
    retry_multiplier: Option<f64>,
    #[serde(default)]
    strict_receive_maximum: Option<bool>,
    #[serde(default)]
    shutdown_timeout_ms: Option<u64>,
    #[serde(default)]
    handle_signals: Option<bool>,
    #[serde(default)]
    user_properties: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl RawConfig {
    fn into_config(self) -> Result<SourceConfig, ConfigError> {
        let brokers = match self.brokers {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(url) => vec![url],
            OneOrMany::Many(urls) => urls,
        };
        let defaults = SourceConfig::new(Vec::<String>::new());
        let version = match &self.protocol_version {
            None => ProtocolVersion::V5,
            Some(v) => match v {
                // `5.0` is a float in TOML and YAML.
                Value::Number(n) if n.as_u64() == Some(5) || n.as_f64() == Some(5.0) => {
                    ProtocolVersion::V5
                }
                Value::Number(n) if n.as_u64() == Some(4) => ProtocolVersion::V311,
                Value::String(s) if s == "5" || s == "5.0" || s == "v5" => ProtocolVersion::V5,
                // `v4` is how emqtt (`proto_ver`) names 3.1.1.
                Value::String(s) if s == "3.1.1" || s == "4" || s == "v4" || s == "v311" => {
                    ProtocolVersion::V311
                }
                other => {
                    return Err(ConfigError::new(
                        "protocol_version",
                        format!("{other}: expected 5 or \"3.1.1\""),
                    ))
                }
            },
        };
        let ms = Duration::from_millis;
        Ok(SourceConfig {
            brokers,
            topics: self.topics,
            client_id: self.client_id,
            shared_group: self.shared_group,
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            instance: self.instance,
            max_in_flight: self.max_in_flight.unwrap_or(defaults.max_in_flight),
            on_success: self.on_success.unwrap_or_default(),
            on_failure: self.on_failure.unwrap_or_default(),
            dead_letter_topic: self.dead_letter_topic,
            max_deliveries: self.max_deliveries.unwrap_or(defaults.max_deliveries),
            redelivery_delay: self
                .redelivery_delay_ms
                .map_or(defaults.redelivery_delay, ms),
            clean_start: self.clean_start.unwrap_or(false),
            session_expiry: self.session_expiry_secs.unwrap_or(DEFAULT_SESSION_EXPIRY),
            session_store: self.session_store,
            version,
            keep_alive: self.keep_alive_secs.unwrap_or(defaults.keep_alive),
            connect_timeout: self.connect_timeout_ms.map_or(defaults.connect_timeout, ms),
            ping_timeout: self.ping_timeout_ms.map_or(defaults.ping_timeout, ms),
            auth: self.auth,
            tls: self.tls,
            will: self.will,
            retry_initial: self.retry_initial_ms.map_or(defaults.retry_initial, ms),
            retry_max: self.retry_max_ms.map_or(defaults.retry_max, ms),
            retry_multiplier: self.retry_multiplier.unwrap_or(defaults.retry_multiplier),
            strict_receive_maximum: self
                .strict_receive_maximum
                .unwrap_or(defaults.strict_receive_maximum),
            shutdown_timeout: self
                .shutdown_timeout_ms
                .map_or(defaults.shutdown_timeout, ms),
            handle_signals: self.handle_signals.unwrap_or(false),
            user_properties: self.user_properties,
        })
    }
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// TOML (feature `toml`).
    Toml,
    /// YAML (feature `yaml`).
    Yaml,
    /// JSON (feature `json`).
    Json,
}

impl Format {
    /// The format of a file, by its extension.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl SourceConfig {
    /// Reads a configuration file; its format from its extension (`.toml`,
    /// `.yaml`/`.yml`, `.json`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let format = Format::of(path).ok_or_else(|| {
            ConfigError::new(
                "",
                format!(
                    "{}: unknown extension (toml, yaml, yml, json)",
                    path.display()
                ),
            )
        })?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("{}: {e}", path.display())))?;
        Self::from_str_as(&text, format)
    }

    /// Reads a configuration in this format, with the process environment.
    pub fn from_str_as(text: &str, format: Format) -> Result<Self, ConfigError> {
        Self::from_str_with_env(text, format, &|name| std::env::var(name).ok())
    }

    /// TOML.
    #[cfg(feature = "toml")]
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_str_as(text, Format::Toml)
    }

    /// YAML.
    #[cfg(feature = "yaml")]
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_str_as(text, Format::Yaml)
    }

    /// JSON.
    #[cfg(feature = "json")]
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_str_as(text, Format::Json)
    }

    /// Reads a configuration, taking `${VAR}` from `env` instead of the process
    /// environment.
    pub fn from_str_with_env(
        text: &str,
        format: Format,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut value = parse(text, format)?;
        // Else serde reads a top-level array as the fields in order, and an empty
        // YAML file as `null`.
        if !value.is_object() {
            return Err(ConfigError::new(
                "",
                "expected a table of options at the top level",
            ));
        }
        interpolate(&mut value, &mut String::new(), env)?;
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        let config = raw.into_config()?;
        config.validate()?;
        Ok(config)
    }
}

fn parse(text: &str, format: Format) -> Result<Value, ConfigError> {
    let syntax = |e: String| ConfigError::new("", e);
    match format {
        #[cfg(feature = "toml")]
        Format::Toml => toml::from_str(text).map_err(|e| syntax(format!("TOML: {e}"))),
        #[cfg(feature = "yaml")]
        Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| syntax(format!("YAML: {e}"))),
        #[cfg(feature = "json")]
        Format::Json => serde_json::from_str(text).map_err(|e| syntax(format!("JSON: {e}"))),
        #[allow(unreachable_patterns)]
        other => Err(syntax(format!(
            "{other:?} support is not compiled in (its feature is off)"
        ))),
    }
}

/// Replaces `${VAR}` in every string of `value`; `path` is where we are, for errors.
fn interpolate(
    value: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => *s = expand(s, path, env)?,
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                interpolate(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                interpolate(item, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `${VAR}`, `${VAR:-default}` and `$${` in one string.
pub(crate) fn expand(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| ConfigError::new(path, "`${` without its closing `}`"))?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::new(
                    path,
                    format!("`${{{inner}}}`: not a variable name"),
                ));
            }
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::new(
                        path,
                        format!("environment variable {name} is not set"),
                    ))
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
