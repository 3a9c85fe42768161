//! Outgoing Topic Aliases (MQTT 5, 3.3.2.3.4): the client's table of the aliases
//! it set on the current connection.
//!
//! The server says in CONNACK how many aliases it accepts (Topic Alias Maximum,
//! 3.2.2.3.8; 0 or absent: none) [MQTT-3.3.2-9]. The first PUBLISH to a topic
//! sends the topic and a new alias; later ones send an empty topic and the alias
//! [MQTT-3.3.2-12 is the receiver's side]. When every alias is taken, the least
//! recently used one is given to the new topic, which is sent in full with it
//! (a sender may change a mapping by sending the topic again with the alias,
//! 3.3.2.3.4). Mappings live only as long as their connection [MQTT-3.3.2-10]:
//! the table is cleared whenever a transport opens or closes.
//!
//! Only the bytes written on the wire carry an alias: the engine's in-flight
//! table and the session store keep the full topic, and resends go out in full.

use std::collections::{BTreeMap, HashMap};

use mqtt_codec::packet::Publish;
use mqtt_codec::property::PublishProperties;
use mqtt_codec::string::MqttString;

/// The most aliases the client uses on one connection, whatever the server
/// allows: bounds the table's memory (one entry per distinct topic).
pub(super) const MAX_OUTGOING_ALIASES: u16 = 1024;

/// What a PUBLISH to a topic would carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AliasUse {
    /// The topic has this alias already: an empty topic and the alias.
    Known(u16),
    /// The topic and this alias, which maps to the topic from then on (a new
    /// alias, or the least recently used one, replaced).
    Set(u16),
}

impl AliasUse {
    /// The PUBLISH as it goes on the wire with this alias.
    pub(super) fn apply(self, publish: &Publish) -> Publish {
        let mut wire = publish.clone();
        let alias = match self {
            Self::Known(alias) => {
                wire.topic = MqttString::new();
                alias
            }
            Self::Set(alias) => alias,
        };
        wire.properties
            .get_or_insert_with(|| Box::new(PublishProperties::EMPTY))
            .topic_alias = Some(alias);
        wire
    }
}

/// The aliases set on this connection, with their last use.
#[derive(Debug, Default)]
pub(super) struct OutgoingAliases {
    /// Topic to (alias, tick of its last use).
    by_topic: HashMap<MqttString, (u16, u64)>,
    /// Tick of last use to topic: the first entry is the least recently used.
    by_use: BTreeMap<u64, MqttString>,
    /// Alias - 1 to topic: aliases are handed out from 1, never freed, only
    /// given to another topic.
    by_alias: Vec<MqttString>,
    tick: u64,
}

impl OutgoingAliases {
    /// Forgets every alias (a new connection).
    pub(super) fn clear(&mut self) {
        self.by_topic.clear();
        self.by_use.clear();
        self.by_alias.clear();
    }

    /// What a PUBLISH to `topic` would carry when at most `maximum` aliases may
    /// be used; `None` when it carries none. Nothing changes until
    /// [`OutgoingAliases::commit`].
    pub(super) fn plan(&self, topic: &MqttString, maximum: u16) -> Option<AliasUse> {
        if maximum == 0 || topic.is_empty() {
            return None;
        }
        if let Some(&(alias, _)) = self.by_topic.get(topic) {
            return Some(AliasUse::Known(alias));
        }
        if self.by_alias.len() < usize::from(maximum) {
            let next = u16::try_from(self.by_alias.len() + 1).ok()?;
            return Some(AliasUse::Set(next));
        }
        let (_, oldest) = self.by_use.first_key_value()?;
        let &(alias, _) = self.by_topic.get(oldest)?;
        Some(AliasUse::Set(alias))
    }

    /// The PUBLISH planned with `use_` was written: the table follows.
    pub(super) fn commit(&mut self, topic: &MqttString, use_: AliasUse) {
        self.tick += 1;
        let tick = self.tick;
        match use_ {
            AliasUse::Known(_) => {
                if let Some((_, last)) = self.by_topic.get_mut(topic) {
                    self.by_use.remove(last);
                    *last = tick;
                    self.by_use.insert(tick, topic.clone());
                }
            }
            AliasUse::Set(alias) => {
                let index = usize::from(alias.saturating_sub(1));
                match self.by_alias.get_mut(index) {
                    Some(slot) => {
                        // The topic that had this alias loses it.
                        let old = std::mem::replace(slot, topic.clone());
                        if let Some((_, last)) = self.by_topic.remove(&old) {
                            self.by_use.remove(&last);
                        }
                    }
                    None => self.by_alias.push(topic.clone()),
                }
                if let Some((_, last)) = self.by_topic.insert(topic.clone(), (alias, tick)) {
                    self.by_use.remove(&last);
                }
                self.by_use.insert(tick, topic.clone());
            }
        }
    }
}
