//! What we send: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, and their resending on a new connection.

use std::time::Instant;

use mqtt_codec::packet::{Packet, Publish, Subscribe, SubscriptionOptions, Unsubscribe};
use mqtt_codec::property::{SubscribeProperties, UnsubscribeProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::topic::SharedSubscription;
use mqtt_codec::{PacketId, ProtocolVersion, QoS};

use super::alias::{self, AliasUse};
use super::subids;
use super::{Engine, Event, OutEntry, Refusal, Refused, Request, Stage, State};
use crate::error::{PublishError, RequestError};
use crate::session::SessionChange;

impl<T> Engine<T> {
    /// Takes a PUBLISH to send. QoS 1/2 get a packet identifier (returned) and
    /// occupy a slot of the window until PUBACK / PUBCOMP; QoS 0 completes when its
    /// bytes leave through [`Engine::poll_transmit`]. The outcome arrives as
    /// [`Event::PublishDone`] with `token`.
    ///
    /// Call only when [`Engine::can_publish`] is true for this QoS; otherwise, or
    /// when the server cannot take the message (QoS above its Maximum QoS, retain
    /// unavailable, larger than its Maximum Packet Size), it is refused before
    /// anything is written and the token comes back. `packet_id` and `dup` are set
    /// by the engine; a Topic Alias or Subscription Identifier is refused (the
    /// engine sets outgoing aliases itself, and a client must not send
    /// Subscription Identifiers [MQTT-3.3.4-6]).
    ///
    /// With [`crate::Options::with_outgoing_topic_aliases`] on (the default) and a
    /// server that accepts Topic Aliases, the PUBLISH goes on the wire with one
    /// (see `engine/alias.rs`: first use sends topic and alias, later ones an
    /// empty topic, the least recently used alias is replaced when all are
    /// taken); the engine keeps, stores and resends the message with its full
    /// topic and no alias.
    pub fn publish(
        &mut self,
        now: Instant,
        mut publish: Publish,
        token: T,
    ) -> Result<Option<PacketId>, Refused<T, PublishError>> {
        if let Err(error) = self.check_publish(&publish) {
            return Err(Refused::invalid(error, token));
        }
        if !self.can_publish(publish.qos) {
            let error = if self.state == State::Closed {
                Refusal::Closed
            } else {
                Refusal::NotReady
            };
            return Err(Refused { error, token });
        }
        publish.dup = false;
        publish.packet_id = None;
        if publish.qos != QoS::AtMostOnce {
            let Some(id) = self.ids.alloc() else {
                // `can_publish` checked for a free identifier; kept for safety.
                return Err(Refused {
                    error: Refusal::NotReady,
                    token,
                });
            };
            publish.packet_id = Some(id);
        }
        let packet = Packet::Publish(publish);
        // What goes on the wire may carry a Topic Alias; the in-flight table and
        // the session keep the full topic. The size checked is the one sent.
        let encoded = self.wire_publish(&packet).and_then(|wire| {
            let sent = match &wire {
                Some((aliased, _)) => aliased,
                None => &packet,
            };
            sent.encode(self.version, &mut self.tx)
                .map_err(PublishError::Encode)?;
            Ok(wire.map(|(_, use_)| use_))
        });
        match encoded {
            Ok(alias) => {
                if let (Some(use_), Packet::Publish(publish)) = (alias, &packet) {
                    self.out_aliases.commit(&publish.topic, use_);
                }
            }
            Err(error) => {
                if let Packet::Publish(Publish {
                    packet_id: Some(id),
                    ..
                }) = packet
                {
                    self.ids.free(id);
                }
                return Err(Refused::invalid(error, token));
            }
        }
        self.wrote(now);
        let Packet::Publish(publish) = packet else {
            return Ok(None);
        };
        match publish.packet_id {
            None => {
                self.qos0_pending.push(token);
                Ok(None)
            }
            Some(id) => {
                let seq = self.next_seq();
                // Stored before the bytes just written leave (the driver applies
                // changes before it writes).
                if self.recording {
                    self.changes
                        .push(SessionChange::OutgoingAdded(publish.clone()));
                }
                self.out.insert(
                    id.get(),
                    OutEntry {
                        seq,
                        publish,
                        stage: Stage::Publish,
                        release_resent: false,
                        token: Some(token),
                    },
                );
                Ok(Some(id))
            }
        }
    }

    /// What the server said it cannot take, checked before anything is written.
    fn check_publish(&self, publish: &Publish) -> Result<(), PublishError> {
        if self.state == State::Connected {
            if publish.qos > self.server.maximum_qos() {
                // [MQTT-3.2.2-11]
                return Err(PublishError::QosNotSupported);
            }
            if publish.retain && !self.server.retain_available() {
                // [MQTT-3.2.2-14]
                return Err(PublishError::RetainNotSupported);
            }
        }
        if !super::inbound::payload_format_valid(publish) {
            // What we would refuse from the server we do not send (3.3.2.3.2).
            return Err(PublishError::InvalidPayload);
        }
        let props = publish.properties();
        if props.topic_alias.is_some() {
            return Err(PublishError::PropertyNotAllowed("Topic Alias"));
        }
        if !props.subscription_identifiers.is_empty() {
            return Err(PublishError::PropertyNotAllowed("Subscription Identifier"));
        }
        Ok(())
    }

    /// How many outgoing Topic Aliases this connection may use: the server's
    /// Topic Alias Maximum (3.2.2.3.8; 0 when absent [MQTT-3.3.2-9]), within our
    /// own bound, and none when the option is off or in 3.1.1.
    fn outgoing_alias_maximum(&self) -> u16 {
        if self.version != ProtocolVersion::V5
            || !self.opts.outgoing_topic_aliases
            || self.state != State::Connected
        {
            return 0;
        }
        self.server
            .topic_alias_maximum()
            .min(alias::MAX_OUTGOING_ALIASES)
    }

    /// The PUBLISH to write in place of `packet` when it goes with a Topic Alias
    /// (and the alias it uses), or `None` to write `packet` as it is; checked
    /// against the server's Maximum Packet Size as written. A new alias that
    /// would make the packet too large is left out rather than refusing it.
    fn wire_publish(&self, packet: &Packet) -> Result<Option<(Packet, AliasUse)>, PublishError> {
        let Packet::Publish(publish) = packet else {
            return self.check_size(packet).map(|()| None);
        };
        if let Some(use_) = self
            .out_aliases
            .plan(&publish.topic, self.outgoing_alias_maximum())
        {
            let aliased = Packet::Publish(use_.apply(publish));
            match self.check_size(&aliased) {
                Ok(()) => return Ok(Some((aliased, use_))),
                // Without the alias the topic is sent in full: larger still.
                Err(error) if matches!(use_, AliasUse::Known(_)) => return Err(error),
                Err(_) => {}
            }
        }
        self.check_size(packet).map(|()| None)
    }

    /// [MQTT-3.1.2-24] nothing larger than the server's Maximum Packet Size.
    fn check_size(&self, packet: &Packet) -> Result<(), PublishError> {
        // Without a server maximum, encoding checks the protocol's own limit.
        let Some(maximum) = self.server.maximum_packet_size() else {
            return Ok(());
        };
        let size = packet
            .encoded_len(self.version)
            .map_err(PublishError::Encode)?;
        if size > maximum as usize {
            return Err(PublishError::PacketTooLarge { size, maximum });
        }
        Ok(())
    }

    /// A SUBSCRIBE or UNSUBSCRIBE encodes and fits the server's Maximum Packet Size.
    fn request_fits(&self, packet: &Packet) -> Result<(), RequestError> {
        let size = packet
            .encoded_len(self.version)
            .map_err(RequestError::Encode)?;
        match self.server.maximum_packet_size() {
            Some(max) if size > max as usize => Err(RequestError::PacketTooLarge),
            _ => Ok(()),
        }
    }

    /// Takes a SUBSCRIBE. Refused before sending when the server said it has no
    /// wildcard subscriptions, shared subscriptions or subscription identifiers and
    /// the request needs them, or when it does not encode (no filter, an invalid
    /// filter). The SUBACK arrives as [`Event::SubscribeDone`]; granted filters are
    /// remembered and restored if a later connection finds no session.
    pub fn subscribe(
        &mut self,
        now: Instant,
        filters: Vec<(MqttString, SubscriptionOptions)>,
        mut properties: SubscribeProperties,
        token: T,
    ) -> Result<PacketId, Refused<T, RequestError>> {
        if let Err(error) = self.check_subscribe(&filters, &properties) {
            return Err(Refused::invalid(error, token));
        }
        if self.state == State::Connected {
            self.assign_identifier(&mut properties);
        }
        self.send_request(
            now,
            |packet_id| {
                Packet::Subscribe(Subscribe {
                    packet_id,
                    properties,
                    filters,
                })
            },
            token,
        )
    }

    /// Takes an UNSUBSCRIBE. The UNSUBACK arrives as [`Event::UnsubscribeDone`].
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        filters: Vec<MqttString>,
        properties: UnsubscribeProperties,
        token: T,
    ) -> Result<PacketId, Refused<T, RequestError>> {
        self.send_request(
            now,
            |packet_id| {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    properties,
                    filters,
                })
            },
            token,
        )
    }

    fn check_subscribe(
        &self,
        filters: &[(MqttString, SubscriptionOptions)],
        properties: &SubscribeProperties,
    ) -> Result<(), RequestError> {
        subids::check_identifier(properties)?;
        if self.version == ProtocolVersion::V5 {
            if properties.subscription_identifier.is_some()
                && !self.server.subscription_identifiers_available()
            {
                return Err(RequestError::NotSupported("subscription identifiers"));
            }
            for (filter, _) in filters {
                if !self.server.wildcard_subscription_available()
                    && (filter.contains('#') || filter.contains('+'))
                {
                    return Err(RequestError::NotSupported("wildcard subscriptions"));
                }
                if !self.server.shared_subscription_available()
                    && SharedSubscription::parse(filter).ok().flatten().is_some()
                {
                    return Err(RequestError::NotSupported("shared subscriptions"));
                }
            }
        }
        Ok(())
    }

    fn send_request(
        &mut self,
        now: Instant,
        build: impl FnOnce(PacketId) -> Packet,
        token: T,
    ) -> Result<PacketId, Refused<T, RequestError>> {
        // Checked before allocating: an identifier taken and then refused would leak.
        let id = match self.state {
            State::Connected => self.ids.alloc(),
            _ => None,
        };
        let Some(id) = id else {
            let error = match self.state {
                State::Closed => Refusal::Closed,
                _ => Refusal::NotReady,
            };
            return Err(Refused { error, token });
        };
        let packet = build(id);
        if let Err(error) = self.request_fits(&packet).and_then(|()| {
            packet
                .encode(self.version, &mut self.tx)
                .map_err(RequestError::Encode)
        }) {
            self.ids.free(id);
            return Err(Refused::invalid(error, token));
        }
        self.wrote(now);
        let seq = self.next_seq();
        self.requests.insert(
            id.get(),
            Request {
                seq,
                packet,
                token: Some(token),
            },
        );
        Ok(id)
    }

    /// The session is gone: subscribe again to everything that was active, in
    /// groups sharing the same SUBSCRIBE properties.
    pub(super) fn restore_subscriptions(&mut self) {
        let mut groups: Vec<(SubscribeProperties, Vec<(MqttString, SubscriptionOptions)>)> =
            Vec::new();
        for active in &self.subscriptions {
            let filter = &active.filter;
            // Filters already being (re)subscribed by a pending request are skipped,
            // and so are those the application is unsubscribing from: the pending
            // UNSUBSCRIBE goes first, and a restore after it would undo it.
            let pending = self.requests.values().any(|r| match &r.packet {
                Packet::Subscribe(s) => s.filters.iter().any(|(f, _)| f == filter),
                Packet::Unsubscribe(u) => u.filters.iter().any(|f| f == filter),
                _ => false,
            });
            if pending {
                continue;
            }
            match groups.iter_mut().find(|(p, _)| *p == active.properties) {
                Some((_, filters)) => filters.push((filter.clone(), active.options)),
                None => groups.push((
                    active.properties.clone(),
                    vec![(filter.clone(), active.options)],
                )),
            }
        }
        for (properties, filters) in groups {
            // Written directly (state is about to become Connected): the engine's
            // own requests carry no token.
            let Some(id) = self.ids.alloc() else { return };
            let packet = Packet::Subscribe(Subscribe {
                packet_id: id,
                properties,
                filters,
            });
            let seq = self.next_seq();
            self.requests.insert(
                id.get(),
                Request {
                    seq,
                    packet,
                    token: None,
                },
            );
        }
    }

    /// After CONNACK: SUBSCRIBE/UNSUBSCRIBE still unanswered are sent again (they
    /// are idempotent), then unfinished PUBLISH flows in their original order
    /// (DUP = 1 when the session was resumed [MQTT-4.4.0-1], PUBREL for those past
    /// PUBREC), as the window allows, before anything new.
    pub(super) fn resend_after_connack(&mut self, now: Instant, session_present: bool) {
        let mut requests: Vec<(u64, u16)> =
            self.requests.iter().map(|(id, r)| (r.seq, *id)).collect();
        requests.sort_unstable();
        for (_, id) in requests {
            let Some(request) = self.requests.get(&id) else {
                continue;
            };
            // The new connection's server may take less than the last: a lower
            // Maximum Packet Size, no wildcard or shared subscriptions.
            let checked = match &request.packet {
                Packet::Subscribe(sub) => self.check_subscribe(&sub.filters, &sub.properties),
                _ => Ok(()),
            }
            .and_then(|()| self.request_fits(&request.packet));
            match checked {
                Ok(()) => {
                    // Encoded once already (or built from granted filters).
                    let _ = request.packet.encode(self.version, &mut self.tx);
                    self.wrote(now);
                }
                Err(error) => self.refuse_request(id, error),
            }
        }
        let mut order: Vec<(u64, u16)> = self.out.iter().map(|(id, e)| (e.seq, *id)).collect();
        order.sort_unstable();
        self.resend = order.into_iter().map(|(_, id)| id).collect();
        if session_present {
            for entry in self.out.values_mut() {
                if entry.stage == Stage::Publish {
                    entry.publish.dup = true;
                }
            }
        }
        self.pump_resend(now);
    }

    /// A request the new connection's server cannot take: it ends with `error`
    /// (a restored subscription: each filter with `ResubscribeFailed`).
    fn refuse_request(&mut self, id: u16, error: RequestError) {
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        if let Some(packet_id) = PacketId::new(id) {
            self.ids.free(packet_id);
        }
        match (request.packet, request.token) {
            (Packet::Subscribe(_), Some(token)) => self.events.push_back(Event::SubscribeDone {
                token,
                result: Err(error),
            }),
            (Packet::Subscribe(sub), None) => {
                self.subscriptions_changed();
                for (filter, _) in sub.filters {
                    self.subscriptions.retain(|s| s.filter != filter);
                    self.record(|| SessionChange::Unsubscribed(filter.clone()));
                    let reason = match error {
                        RequestError::PacketTooLarge => ReasonCode::PACKET_TOO_LARGE,
                        _ => ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
                    };
                    self.events
                        .push_back(Event::ResubscribeFailed { filter, reason });
                }
            }
            (_, Some(token)) => self.events.push_back(Event::UnsubscribeDone {
                token,
                result: Err(error),
            }),
            (_, None) => {}
        }
    }

    /// Sends queued resends while the window has room.
    pub(super) fn pump_resend(&mut self, now: Instant) {
        while !self.resend.is_empty() && self.out.len() - self.resend.len() < self.send_quota() {
            let Some(id) = self.resend.pop_front() else {
                break;
            };
            let Some(entry) = self.out.get(&id) else {
                continue;
            };
            match entry.stage {
                Stage::Release => {
                    let Some(packet_id) = PacketId::new(id) else {
                        continue;
                    };
                    if let Some(entry) = self.out.get_mut(&id) {
                        entry.release_resent = true;
                    }
                    let ack = mqtt_codec::packet::PubAck::new(packet_id);
                    self.write(now, &Packet::PubRel(ack));
                }
                Stage::Publish => {
                    // The new connection's server may take less than the last:
                    // a lower Maximum QoS or Packet Size, no retain.
                    let checked = self.check_publish(&entry.publish);
                    let packet = Packet::Publish(entry.publish.clone());
                    match checked.and_then(|()| self.check_size(&packet)) {
                        Ok(()) => self.write(now, &packet),
                        Err(error) => {
                            if let Some(entry) = self.out.remove(&id) {
                                if let Some(pid) = entry.publish.packet_id {
                                    self.ids.free(pid);
                                    self.record(|| SessionChange::OutgoingCompleted(pid));
                                }
                                if let Some(token) = entry.token {
                                    self.events.push_back(Event::PublishDone {
                                        token,
                                        result: Err(error),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
