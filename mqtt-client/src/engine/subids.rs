//! Subscription Identifiers (MQTT 5, 3.8.2.1.2 and 3.3.2.3.8): which of our
//! subscriptions an incoming PUBLISH matched.
//!
//! A SUBSCRIBE may carry one identifier (1 to 268,435,455, 0 is a Protocol
//! Error), which the server puts on every PUBLISH it sends for the
//! subscriptions of that packet [MQTT-3.3.4-3]; one PUBLISH matching several
//! of them carries several identifiers [MQTT-3.3.4-5]. The identifiers live with
//! the subscriptions in the session (their SUBSCRIBE properties): granted ones
//! are indexed here, identifier to filters, the index rebuilt after the
//! subscriptions change. A subscription still awaiting its SUBACK counts too:
//! the server may send matching messages before the SUBACK (3.8.4).

use std::collections::HashMap;

use mqtt_codec::packet::{Packet, Publish};
use mqtt_codec::property::SubscribeProperties;
use mqtt_codec::string::MqttString;
use mqtt_codec::ProtocolVersion;

use super::Engine;
use crate::error::RequestError;

/// The largest Subscription Identifier: the largest Variable Byte Integer
/// (3.8.2.1.2).
pub(super) const MAX_SUBSCRIPTION_IDENTIFIER: u32 = 268_435_455;

/// Identifier to the filters granted with it, in the order of the subscriptions;
/// `None` while it must be rebuilt.
pub(super) type SubscriptionIndex = Option<HashMap<u32, Vec<MqttString>>>;

/// A Subscription Identifier that can be sent: 1 to 268,435,455.
pub(super) fn check_identifier(properties: &SubscribeProperties) -> Result<(), RequestError> {
    match properties.subscription_identifier {
        Some(id) if id == 0 || id > MAX_SUBSCRIPTION_IDENTIFIER => {
            Err(RequestError::InvalidSubscriptionIdentifier(id))
        }
        _ => Ok(()),
    }
}

impl<T> Engine<T> {
    /// The active subscriptions changed: the index follows on next use.
    pub(super) fn subscriptions_changed(&mut self) {
        self.sub_index = None;
    }

    fn index(&mut self) -> &HashMap<u32, Vec<MqttString>> {
        self.sub_index.get_or_insert_with(|| {
            let mut index: HashMap<u32, Vec<MqttString>> = HashMap::new();
            for s in &self.subscriptions {
                if let Some(id) = s.properties.subscription_identifier {
                    index.entry(id).or_default().push(s.filter.clone());
                }
            }
            index
        })
    }

    /// The filters of our subscriptions that `publish` matched, by the
    /// Subscription Identifiers it carries (in their order, each filter once).
    /// Empty when it carries none or none of ours.
    pub(super) fn matched_filters(&mut self, publish: &Publish) -> Vec<MqttString> {
        let ids = &publish.properties().subscription_identifiers;
        if ids.is_empty() {
            return Vec::new();
        }
        self.index();
        let index = self.sub_index.as_ref();
        // Pending SUBSCRIBEs, oldest first: matching messages may come before SUBACK.
        let mut pending: Vec<_> = self
            .requests
            .values()
            .filter_map(|r| match &r.packet {
                Packet::Subscribe(sub) => Some((r.seq, sub)),
                _ => None,
            })
            .collect();
        pending.sort_unstable_by_key(|(seq, _)| *seq);
        let mut filters: Vec<MqttString> = Vec::new();
        for &id in ids {
            let granted = index.and_then(|i| i.get(&id)).into_iter().flatten();
            let requested = pending
                .iter()
                .filter(|(_, sub)| sub.properties.subscription_identifier == Some(id))
                .flat_map(|(_, sub)| sub.filters.iter().map(|(f, _)| f));
            for filter in granted.chain(requested) {
                if !filters.contains(filter) {
                    filters.push(filter.clone());
                }
            }
        }
        filters
    }

    /// An identifier for a SUBSCRIBE that has none, when the engine assigns them
    /// ([`crate::Options::with_automatic_subscription_identifiers`]) and the
    /// server has them (CONNACK Subscription Identifiers Available, true when
    /// absent): the next one after the last assigned that no granted or pending
    /// subscription uses.
    pub(super) fn assign_identifier(&mut self, properties: &mut SubscribeProperties) {
        if !self.opts.automatic_subscription_identifiers
            || self.version != ProtocolVersion::V5
            || properties.subscription_identifier.is_some()
            || !self.server.subscription_identifiers_available()
        {
            return;
        }
        for _ in 0..=self.subscriptions.len() + self.requests.len() {
            self.last_sub_id = if self.last_sub_id >= MAX_SUBSCRIPTION_IDENTIFIER {
                1
            } else {
                self.last_sub_id + 1
            };
            let candidate = self.last_sub_id;
            let pending = self.requests.values().any(|r| {
                matches!(&r.packet, Packet::Subscribe(s)
                    if s.properties.subscription_identifier == Some(candidate))
            });
            if !pending && !self.index().contains_key(&candidate) {
                properties.subscription_identifier = Some(candidate);
                return;
            }
        }
    }
}
