//! `mqtt check`: connect, print the broker's CONNACK and what the client does
//! about it.

use std::time::Instant;

use mqtt_source::client::ServerInfo;
use mqtt_source::{ProtocolVersion, QoS};

use crate::cli::CheckArgs;
use crate::common;
use crate::exit::Failure;

pub(crate) async fn run(args: CheckArgs) -> Result<(), Failure> {
    let config = common::source_config(&args.conn)?;
    let brokers = config.brokers_redacted().join(", ");
    let version = config.version();
    let started = Instant::now();
    // A probe never takes over the session of a consumer with the same id.
    let id = config
        .client_id()
        .map(|id| format!("{id}_check"))
        .unwrap_or_default();
    let connected = common::connect_client(&config, id, false).await;
    let (client, _incoming) = match connected {
        Ok(connected) => connected,
        Err(failure) => {
            if args.json {
                let out = serde_json::json!({
                    "connected": false,
                    "brokers": brokers,
                    "error": failure.message,
                });
                println!("{out}");
            }
            return Err(failure);
        }
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let info = client.server();
    let client_id = client.client_id();
    let _ = client.disconnect().await;
    let keep_alive = config.keep_alive();
    let receive_maximum = config.max_in_flight();
    if args.json {
        let out = serde_json::json!({
            "connected": true,
            "brokers": brokers,
            "version": version_name(version),
            "connect_ms": connect_ms,
            "client_id": client_id,
            "assigned_client_id": info.assigned_client_identifier(),
            "session_present": info.session_present,
            "receive_maximum": info.receive_maximum(),
            "maximum_qos": common::qos_number(info.maximum_qos()),
            "maximum_packet_size": info.maximum_packet_size(),
            "topic_alias_maximum": info.topic_alias_maximum(),
            "retain_available": info.retain_available(),
            "wildcard_subscription_available": info.wildcard_subscription_available(),
            "shared_subscription_available": info.shared_subscription_available(),
            "subscription_identifiers_available": info.subscription_identifiers_available(),
            "server_keep_alive": info.server_keep_alive(),
            "response_information": info.response_information(),
            "reason_string": info.properties.reason_string.as_ref().map(|s| s.as_str()),
            "effective": {
                "in_flight_to_broker": info.receive_maximum().min(receive_maximum),
                "keep_alive": info.server_keep_alive().unwrap_or(keep_alive),
                "publish_qos_max": common::qos_number(info.maximum_qos()),
            },
        });
        println!("{out}");
        return Ok(());
    }
    print!(
        "{}",
        report(&Report {
            brokers: &brokers,
            version,
            connect_ms,
            client_id: &client_id,
            info: &info,
            keep_alive,
            own_receive_maximum: receive_maximum,
        })
    );
    Ok(())
}

struct Report<'a> {
    brokers: &'a str,
    version: ProtocolVersion,
    connect_ms: f64,
    client_id: &'a str,
    info: &'a ServerInfo,
    keep_alive: u16,
    own_receive_maximum: u16,
}

fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V5 => "5",
        _ => "3.1.1",
    }
}

fn yes(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The text report: one row per CONNACK property, and what follows from it.
fn report(r: &Report<'_>) -> String {
    use std::fmt::Write as _;
    let info = r.info;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "connected to {} with MQTT {} in {:.1} ms",
        r.brokers,
        version_name(r.version),
        r.connect_ms
    );
    let assigned = if info.assigned_client_identifier().is_some() {
        " (assigned by the broker)"
    } else {
        ""
    };
    if r.client_id.is_empty() {
        let _ = writeln!(out, "client id                (empty: the broker names the client and MQTT 3.1.1 does not say how)");
    } else {
        let _ = writeln!(out, "client id                {}{assigned}", r.client_id);
    }
    let _ = writeln!(
        out,
        "session present          {}",
        yes(info.session_present)
    );
    if r.version != ProtocolVersion::V5 {
        let _ = writeln!(
            out,
            "MQTT 3.1.1: the CONNACK carries no limits. The protocol's apply (QoS 2, packets up to 256 MiB); \
             the broker may still drop what it does not allow. Keep-alive: a ping after {} s of silence.",
            r.keep_alive
        );
        return out;
    }
    let mut row = |name: &str, value: String, effect: String| {
        let line = format!("{name:<24} {value:<14} {effect}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    let rm = info.receive_maximum();
    row(
        "receive maximum",
        common::thousands(u64::from(rm)),
        format!(
            "at most {} QoS 1/2 publishes in flight to the broker (own limit {})",
            rm.min(r.own_receive_maximum),
            r.own_receive_maximum
        ),
    );
    let max_qos = info.maximum_qos();
    row(
        "maximum QoS",
        common::qos_number(max_qos).to_string(),
        match max_qos {
            QoS::ExactlyOnce => "every QoS".to_owned(),
            q => format!(
                "publishes above QoS {0} refused before sending; subscriptions granted at most QoS {0}",
                common::qos_number(q)
            ),
        },
    );
    row(
        "maximum packet size",
        info.maximum_packet_size()
            .map_or("not set".to_owned(), |n| {
                format!("{} B", common::thousands(u64::from(n)))
            }),
        info.maximum_packet_size()
            .map_or("the protocol's 256 MiB".to_owned(), |_| {
                "larger publishes refused before sending (PacketTooLarge)".to_owned()
            }),
    );
    let aliases = info.topic_alias_maximum();
    row(
        "topic alias maximum",
        aliases.to_string(),
        if aliases == 0 {
            "no topic aliases".to_owned()
        } else {
            format!("up to {aliases} aliases when outgoing topic aliases are on (off by default)")
        },
    );
    row(
        "retain available",
        yes(info.retain_available()).into(),
        if info.retain_available() {
            String::new()
        } else {
            "retained publishes refused before sending".to_owned()
        },
    );
    row(
        "wildcard subscriptions",
        yes(info.wildcard_subscription_available()).into(),
        if info.wildcard_subscription_available() {
            String::new()
        } else {
            "filters with + or # are refused by the broker".to_owned()
        },
    );
    row(
        "shared subscriptions",
        yes(info.shared_subscription_available()).into(),
        if info.shared_subscription_available() {
            "consume --group works".to_owned()
        } else {
            "consume --group is refused by the broker".to_owned()
        },
    );
    row(
        "subscription ids",
        yes(info.subscription_identifiers_available()).into(),
        String::new(),
    );
    row(
        "server keep alive",
        info.server_keep_alive()
            .map_or("not set".to_owned(), |s| format!("{s} s")),
        format!(
            "a ping after {} s of silence",
            info.server_keep_alive().unwrap_or(r.keep_alive)
        ),
    );
    if let Some(response) = info.response_information() {
        row("response information", response.to_owned(), String::new());
    }
    if let Some(reason) = &info.properties.reason_string {
        row("reason string", reason.as_str().to_owned(), String::new());
    }
    out
}
