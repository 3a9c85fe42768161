//! What the server sends: CONNACK, PUBLISH and the acks, and our acks of its PUBLISHes.

use std::time::Instant;

use bytes::BytesMut;
use mqtt_codec::packet::{ConnAck, Packet, PacketType, PubAck, Publish, SubAck, UnsubAck};
use mqtt_codec::property::AckProperties;
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::{PacketId, ProtocolVersion, QoS};

use super::{
    AckId, Engine, Event, InEntry, PublishOutcome, Received, ServerInfo, Stage, State,
    SubscribeOutcome, Timer, UnsubscribeOutcome,
};
use crate::error::{AckError, ConnectRefusal, ConnectionError, PublishError, Violation};
use crate::options::SessionLostPolicy;
use crate::session::{SessionChange, SessionSubscription};

impl<T> Engine<T> {
    /// Bytes read from the transport: decodes and handles every complete packet,
    /// leaving an incomplete one in `buf` for the next call.
    ///
    /// A packet that does not decode, or that the server must not send, ends the
    /// connection with DISCONNECT and the matching reason code.
    pub fn handle_read(&mut self, now: Instant, buf: &mut BytesMut) {
        while matches!(self.state, State::Connecting | State::Connected) {
            match self.decoder.decode(buf) {
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Ok(None) => break,
                Err(mqtt_codec::error::DecodeError::InvalidReasonCode {
                    packet_type: PacketType::ConnAck,
                    code: 1,
                }) if self.state == State::Connecting && self.version == ProtocolVersion::V5 => {
                    // A 3.1.1 server's answer to an MQTT 5 CONNECT: return code 1,
                    // unacceptable protocol level [MQTT-3.1.2-2 of 3.1.1].
                    self.timers.stop(Timer::ConnectTimeout);
                    let refusal =
                        ConnectRefusal::new(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, None);
                    self.refused(now, refusal);
                }
                Err(e) => {
                    // Some decode errors carry a CONNACK-only code (0x84, for a
                    // CONNECT the server must not send anyway): DISCONNECT says
                    // Malformed Packet then.
                    let reason = Some(e.reason_code())
                        .filter(|r| r.is_valid_in(PacketType::Disconnect, ProtocolVersion::V5))
                        .unwrap_or(ReasonCode::MALFORMED_PACKET);
                    self.violation(now, Violation::Decode(e), reason);
                }
            }
        }
    }

    /// Handles one decoded packet (for drivers and tests that decode themselves).
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        if self.state == State::Connecting {
            match packet {
                Packet::ConnAck(connack) => self.on_connack(now, *connack),
                Packet::Auth(auth) => self.on_auth(now, &auth),
                other => self.unexpected(now, other.packet_type()),
            }
            return;
        }
        if self.state != State::Connected {
            return;
        }
        match packet {
            Packet::Publish(publish) => self.on_publish(now, publish),
            Packet::PubAck(ack) => self.on_puback(now, ack),
            Packet::PubRec(ack) => self.on_pubrec(now, ack),
            Packet::PubRel(ack) => self.on_pubrel(now, &ack),
            Packet::PubComp(ack) => self.on_pubcomp(now, ack),
            Packet::SubAck(ack) => self.on_suback(now, *ack),
            Packet::UnsubAck(ack) => self.on_unsuback(now, *ack),
            Packet::PingResp => {
                self.ping_outstanding = false;
                self.timers.stop(Timer::PingResponse);
            }
            Packet::Disconnect(d) => {
                let error = ConnectionError::ServerDisconnect {
                    reason: d.reason_code,
                    reason_string: d.properties.reason_string.as_ref().map(|s| s.to_string()),
                    server_reference: d
                        .properties
                        .server_reference
                        .as_ref()
                        .map(|s| s.to_string()),
                    user_properties: d
                        .properties
                        .user_properties
                        .iter()
                        .map(|p| (p.name.to_string(), p.value.to_string()))
                        .collect(),
                };
                // The server closes; we answer nothing [MQTT-3.14.4-1 is the sender's].
                self.end_connection(now, error, None);
            }
            // Enhanced authentication: re-authentication (engine/auth.rs).
            Packet::Auth(auth) => self.on_auth(now, &auth),
            other => self.unexpected(now, other.packet_type()),
        }
    }

    fn violation(&mut self, now: Instant, detail: Violation, reason: ReasonCode) {
        self.end_connection(
            now,
            ConnectionError::ProtocolViolation { reason, detail },
            Some(reason),
        );
    }

    fn unexpected(&mut self, now: Instant, packet_type: PacketType) {
        self.violation(
            now,
            Violation::UnexpectedPacket(packet_type),
            ReasonCode::PROTOCOL_ERROR,
        );
    }

    // ----- CONNACK ---------------------------------------------------------------

    fn on_connack(&mut self, now: Instant, connack: ConnAck) {
        self.timers.stop(Timer::ConnectTimeout);
        if !connack.reason_code.is_success() {
            let mut refusal = ConnectRefusal::new(
                connack.reason_code,
                connack
                    .properties
                    .reason_string
                    .as_ref()
                    .map(|s| s.to_string()),
            );
            refusal.server_reference = connack
                .properties
                .server_reference
                .as_ref()
                .map(|s| s.to_string());
            self.refused(now, refusal);
            return;
        }
        // [MQTT-3.2.2-4] (v5) / [MQTT-3.2.2-1] (3.1.1): a clean start has no session.
        if self.sent_clean_start && connack.session_present {
            self.violation(
                now,
                Violation::UnexpectedPacket(PacketType::ConnAck),
                ReasonCode::PROTOCOL_ERROR,
            );
            return;
        }
        let method = connack
            .properties
            .authentication_method
            .as_ref()
            .map(|m| m.to_string());
        let data = connack
            .properties
            .authentication_data
            .as_ref()
            .map(|d| d.0.clone());
        if !self.connack_authentication(now, method.as_deref(), data.as_deref()) {
            return;
        }
        let session_present = connack.session_present;
        self.server = ServerInfo {
            session_present,
            properties: connack.properties,
        };
        if let Some(id) = self.server.assigned_client_identifier() {
            // Adopted for every later connection, so that the session can resume.
            if id != self.client_id {
                self.client_id = id.to_owned();
                let id = self.client_id.clone();
                self.record(|| SessionChange::ClientId(id));
            }
        }
        self.state = State::Connected;
        self.connected_at = Some(now);
        self.redirects = 0;
        self.had_session = true;
        if let Some(at) = self.last_tx {
            self.wrote(at);
        }
        self.events.push_back(Event::Connected { session_present });
        if !session_present {
            self.session_lost();
        }
        self.resend_after_connack(now, session_present);
    }

    /// CONNACK refused the connection; the server closes it [MQTT-3.2.2-7].
    fn refused(&mut self, now: Instant, refusal: ConnectRefusal) {
        if refusal.kind == crate::error::RefusalKind::UnsupportedProtocolVersion
            && self.opts.protocol_fallback
        {
            self.fallback = true;
        }
        self.end_connection(now, ConnectionError::Refused(refusal), None);
    }

    /// The server kept no session: our half of it goes too, except what the
    /// policy keeps.
    fn session_lost(&mut self) {
        self.awaiting_release.clear();
        match self.opts.session_lost {
            SessionLostPolicy::ResendAsNew => {
                for entry in self.out.values_mut() {
                    // A new session has never seen them: DUP is 0 [MQTT-3.3.1-1].
                    entry.stage = Stage::Publish;
                    entry.publish.dup = false;
                }
            }
            SessionLostPolicy::Fail => {
                let mut failed: Vec<_> = self.out.drain().map(|(_, e)| e).collect();
                failed.sort_by_key(|e| e.seq);
                for e in failed {
                    if let Some(id) = e.publish.packet_id {
                        self.ids.free(id);
                        self.record(|| SessionChange::OutgoingCompleted(id));
                    }
                    if let Some(token) = e.token {
                        self.events.push_back(Event::PublishDone {
                            token,
                            result: Err(PublishError::SessionLost),
                        });
                    }
                }
            }
        }
        self.record(|| SessionChange::ServerSessionLost);
        if self.opts.restore_subscriptions {
            self.restore_subscriptions();
        }
    }

    // ----- incoming PUBLISH -----------------------------------------------------

    fn on_publish(&mut self, now: Instant, mut publish: Publish) {
        if self.version == ProtocolVersion::V5 && !self.resolve_alias(&mut publish) {
            self.violation(
                now,
                Violation::TopicAliasInvalid,
                ReasonCode::TOPIC_ALIAS_INVALID,
            );
            return;
        }
        let Some(packet_id) = publish.packet_id else {
            if payload_format_valid(&publish) {
                let matched = self.matched_filters(&publish);
                self.events.push_back(Event::Message(Received {
                    publish,
                    ack: None,
                    matched,
                }));
            } else {
                // QoS 0 has no ack to carry 0x99: dropped, and reported.
                self.refuse_message(publish.topic, None);
            }
            return;
        };
        if publish.qos == QoS::ExactlyOnce && self.awaiting_release.contains(packet_id) {
            // Already handed over and PUBREC'd: the same message again, on a
            // resumed session or not [MQTT-4.3.3-10]. Acknowledge, do not deliver;
            // the PUBREC keeps its place after the acks of messages received
            // before it [MQTT-4.6.0-3].
            if self.incoming.is_empty() {
                self.write_ack(
                    now,
                    PacketType::PubRec,
                    packet_id,
                    ReasonCode::SUCCESS,
                    AckProperties::EMPTY,
                );
            } else {
                self.incoming.push_back(InEntry {
                    packet_id,
                    qos: QoS::ExactlyOnce,
                    ack: Some((ReasonCode::SUCCESS, AckProperties::EMPTY)),
                    repeat: true,
                });
                self.repeats += 1;
            }
            return;
        }
        if self.incoming_ids.contains(packet_id) {
            // Resent on the same connection while its ack is pending (some 3.1.1
            // brokers retry): the first copy's ack will answer both.
            return;
        }
        if self.version == ProtocolVersion::V5
            && self.incoming_inflight() >= usize::from(self.opts.receive_maximum.max(1))
        {
            // [MQTT-3.3.4-9] the server must not exceed our Receive Maximum.
            if self.opts.strict_receive_maximum {
                self.violation(
                    now,
                    Violation::ReceiveMaximumExceeded,
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                );
                return;
            }
            self.overruns += 1;
        }
        if !payload_format_valid(&publish) {
            // Answered with 0x99 in its place among the acks; a failure PUBREC
            // ends a QoS 2 flow [MQTT-4.3.3-4]. Not handed over.
            self.incoming.push_back(InEntry {
                packet_id,
                qos: publish.qos,
                ack: Some((ReasonCode::PAYLOAD_FORMAT_INVALID, AckProperties::EMPTY)),
                repeat: false,
            });
            self.incoming_ids.insert(packet_id);
            self.refuse_message(publish.topic, Some(packet_id));
            self.flush_acks(now);
            return;
        }
        let seq = self.incoming_head + self.incoming.len() as u64;
        let qos = publish.qos;
        self.incoming.push_back(InEntry {
            packet_id,
            qos,
            ack: None,
            repeat: false,
        });
        self.incoming_ids.insert(packet_id);
        let ticket = AckId {
            epoch: self.epoch,
            seq,
            packet_id,
            qos,
        };
        let matched = self.matched_filters(&publish);
        if self.opts.auto_ack {
            self.events.push_back(Event::Message(Received {
                publish,
                ack: None,
                matched,
            }));
            // Cannot fail: the ticket is of this connection and not yet acked.
            let _ = self.ack(now, ticket, ReasonCode::SUCCESS, AckProperties::EMPTY);
        } else {
            self.events.push_back(Event::Message(Received {
                publish,
                ack: Some(ticket),
                matched,
            }));
        }
    }

    /// A message the client will not hand over (its payload is not what its
    /// Payload Format Indicator says): the application hears of it.
    fn refuse_message(
        &mut self,
        topic: mqtt_codec::string::MqttString,
        packet_id: Option<PacketId>,
    ) {
        self.events.push_back(Event::MessageRefused {
            topic,
            packet_id,
            reason: ReasonCode::PAYLOAD_FORMAT_INVALID,
        });
    }

    /// Applies a Topic Alias [MQTT-3.3.2-7..12]; false when it is invalid.
    fn resolve_alias(&mut self, publish: &mut Publish) -> bool {
        let Some(alias) = publish.topic_alias() else {
            return !publish.topic.is_empty();
        };
        if alias == 0 || alias > self.opts.topic_alias_maximum {
            return false;
        }
        let index = usize::from(alias - 1);
        if self.aliases.len() <= index {
            self.aliases.resize(index + 1, None);
        }
        let Some(slot) = self.aliases.get_mut(index) else {
            return false;
        };
        if publish.topic.is_empty() {
            match slot {
                Some(topic) => publish.topic = topic.clone(),
                None => return false,
            }
        } else {
            *slot = Some(publish.topic.clone());
        }
        true
    }

    /// The application acknowledges a message. The ack reaches the wire when every
    /// message received before it on this connection is acknowledged too
    /// [MQTT-4.6.0-2, 4.6.0-3]. `reason` 0x00 is success; in MQTT 5 a failure code
    /// (0x80 and above, valid for PUBACK/PUBREC) refuses the message, which the
    /// server does not redeliver.
    pub fn ack(
        &mut self,
        now: Instant,
        ticket: AckId,
        reason: ReasonCode,
        properties: AckProperties,
    ) -> Result<(), AckError> {
        if self.state == State::Closed {
            return Err(AckError::Closed);
        }
        if ticket.epoch != self.epoch || self.state != State::Connected {
            return Err(AckError::StaleConnection);
        }
        let packet_type = match ticket.qos {
            QoS::ExactlyOnce => PacketType::PubRec,
            _ => PacketType::PubAck,
        };
        if !reason.is_valid_in(packet_type, self.version) {
            return Err(AckError::InvalidReasonCode);
        }
        let index = ticket
            .seq
            .checked_sub(self.incoming_head)
            .ok_or(AckError::AlreadyAcked)?;
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| self.incoming.get_mut(i))
            .ok_or(AckError::AlreadyAcked)?;
        if entry.ack.is_some() {
            return Err(AckError::AlreadyAcked);
        }
        let properties = if self.version == ProtocolVersion::V5 {
            properties
        } else {
            AckProperties::EMPTY
        };
        entry.ack = Some((reason, properties));
        self.flush_acks(now);
        Ok(())
    }

    /// Writes the acks at the front of the incoming queue, in arrival order.
    fn flush_acks(&mut self, now: Instant) {
        while self.incoming.front().is_some_and(|e| e.ack.is_some()) {
            let Some(InEntry {
                packet_id,
                qos,
                ack: Some((reason, properties)),
                repeat,
            }) = self.incoming.pop_front()
            else {
                break;
            };
            self.incoming_head += 1;
            if repeat {
                self.repeats -= 1;
                self.write_ack(now, PacketType::PubRec, packet_id, reason, properties);
                continue;
            }
            self.incoming_ids.remove(packet_id);
            if qos == QoS::ExactlyOnce {
                // PUBREC with a failure code ends the flow: no PUBREL follows [MQTT-4.3.3-4], and a
                // later PUBLISH with this identifier is new [MQTT-4.3.3-9].
                if reason.is_success() {
                    self.awaiting_release.insert(packet_id);
                    self.record(|| SessionChange::IncomingReceived(packet_id));
                }
                self.write_ack(now, PacketType::PubRec, packet_id, reason, properties);
            } else {
                self.write_ack(now, PacketType::PubAck, packet_id, reason, properties);
            }
        }
    }

    fn write_ack(
        &mut self,
        now: Instant,
        kind: PacketType,
        packet_id: PacketId,
        reason: ReasonCode,
        properties: AckProperties,
    ) {
        if reason == ReasonCode::SUCCESS && properties.is_empty() {
            // The common ack is four bytes in both versions [MQTT-3.4.2-1]: written
            // directly rather than through the general encoder.
            let first = match kind {
                PacketType::PubAck => 0x40,
                PacketType::PubRec => 0x50,
                PacketType::PubRel => 0x62,
                _ => 0x70,
            };
            let [hi, lo] = packet_id.get().to_be_bytes();
            self.tx.extend_from_slice(&[first, 0x02, hi, lo]);
            self.wrote(now);
            return;
        }
        let wrap = |ack: PubAck| match kind {
            PacketType::PubAck => Packet::PubAck(ack),
            PacketType::PubRec => Packet::PubRec(ack),
            PacketType::PubRel => Packet::PubRel(ack),
            _ => Packet::PubComp(ack),
        };
        let mut packet = wrap(PubAck {
            packet_id,
            reason_code: reason,
            properties,
        });
        let too_large = self.server.maximum_packet_size().is_some_and(|max| {
            packet
                .encoded_len(self.version)
                .map_or(true, |len| len > max as usize)
        });
        if too_large {
            // Reason String and User Properties must not push an ack past the
            // server's Maximum Packet Size [MQTT-3.4.2-2, 3.4.2-3]: sent without.
            packet = wrap(PubAck {
                packet_id,
                reason_code: reason,
                properties: AckProperties::EMPTY,
            });
        }
        self.write(now, &packet);
    }

    fn on_pubrel(&mut self, now: Instant, ack: &PubAck) {
        if self.incoming_ids.contains(ack.packet_id) {
            // PUBREL before our PUBREC: the server skipped a step.
            self.unexpected(now, PacketType::PubRel);
            return;
        }
        let released = self.awaiting_release.remove(ack.packet_id);
        if released {
            // Stored before PUBCOMP leaves: the server forgets the identifier then,
            // and a stored one would make its next PUBLISH look like a repeat.
            self.record(|| SessionChange::IncomingReleased(ack.packet_id));
        }
        let reason = if released || self.version == ProtocolVersion::V311 {
            ReasonCode::SUCCESS
        } else {
            // A PUBREL resent after our PUBCOMP was lost, or unknown: answered all the same
            // [MQTT-4.3.3-11], with 0x92 in MQTT 5.
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.write_ack(
            now,
            PacketType::PubComp,
            ack.packet_id,
            reason,
            AckProperties::EMPTY,
        );
    }

    // ----- acks of our PUBLISHes --------------------------------------------------

    fn on_puback(&mut self, now: Instant, ack: PubAck) {
        let id = ack.packet_id.get();
        let Some(entry) = self.out.remove(&id) else {
            // An ack for an identifier we do not await (a late duplicate): ignored.
            return;
        };
        if entry.stage != Stage::Publish || entry.publish.qos != QoS::AtLeastOnce {
            // Not a QoS 1 flow awaiting PUBACK: ignored, the flow goes on.
            self.out.insert(id, entry);
            return;
        }
        let packet_id = ack.packet_id;
        let result = finish(Some(packet_id), ack.reason_code, ack.properties);
        self.completed(now, id, packet_id, result, entry.token);
    }

    /// The end of an outgoing flow: the identifier and the window slot are free.
    fn completed(
        &mut self,
        now: Instant,
        id: u16,
        packet_id: PacketId,
        result: Result<PublishOutcome, PublishError>,
        token: Option<T>,
    ) {
        if !self.resend.is_empty() {
            // It may still wait to be resent (the server acked it from an earlier
            // connection): it must not count against the window.
            self.resend.retain(|&r| r != id);
        }
        self.ids.free(packet_id);
        self.record(|| SessionChange::OutgoingCompleted(packet_id));
        if let Some(token) = token {
            self.events.push_back(Event::PublishDone { token, result });
        }
        if !self.resend.is_empty() {
            self.pump_resend(now);
        }
    }

    fn on_pubrec(&mut self, now: Instant, ack: PubAck) {
        let id = ack.packet_id.get();
        let stage = self
            .out
            .get(&id)
            .filter(|e| e.publish.qos == QoS::ExactlyOnce)
            .map(|e| e.stage);
        match stage {
            Some(Stage::Publish) if !ack.reason_code.is_success() => {
                // A failure PUBREC ends the flow: no PUBREL [MQTT-4.3.3-4].
                if let Some(entry) = self.out.remove(&id) {
                    let packet_id = ack.packet_id;
                    let result = finish(Some(packet_id), ack.reason_code, ack.properties);
                    self.completed(now, id, packet_id, result, entry.token);
                }
            }
            Some(Stage::Publish) | Some(Stage::Release) => {
                if let Some(entry) = self.out.get_mut(&id) {
                    // The payload is kept: if the session is lost before PUBCOMP,
                    // `SessionLostPolicy::ResendAsNew` sends the message again (a
                    // broker such as mosquitto forwards QoS 2 only at PUBREL).
                    if entry.stage == Stage::Publish {
                        entry.stage = Stage::Release;
                        // Stored before PUBREL leaves: resending the PUBLISH after
                        // the server completed the flow would deliver it twice.
                        self.record(|| SessionChange::OutgoingReleased(ack.packet_id));
                    }
                }
                // Answered while still waiting to be resent: the PUBREL below is its
                // resend, and it is on the wire from now on.
                self.resend.retain(|&r| r != id);
                self.write_ack(
                    now,
                    PacketType::PubRel,
                    ack.packet_id,
                    ReasonCode::SUCCESS,
                    AckProperties::EMPTY,
                );
            }
            None => {
                let reason = match self.version {
                    ProtocolVersion::V5 => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                    ProtocolVersion::V311 => ReasonCode::SUCCESS,
                };
                self.write_ack(
                    now,
                    PacketType::PubRel,
                    ack.packet_id,
                    reason,
                    AckProperties::EMPTY,
                );
            }
        }
    }

    fn on_pubcomp(&mut self, now: Instant, ack: PubAck) {
        let id = ack.packet_id.get();
        let Some(entry) = self.out.remove(&id) else {
            return;
        };
        if entry.stage != Stage::Release {
            self.out.insert(id, entry);
            return;
        }
        let result =
            if ack.reason_code == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND && entry.release_resent {
                // A PUBREL resent on a resumed session, answered 0x92: the server had
                // completed the flow already (its first PUBCOMP was lost), so the
                // message was delivered. Success, with the code. On the connection the
                // PUBREC came on, 0x92 means the server lost the message: an error.
                Ok(PublishOutcome {
                    packet_id: Some(ack.packet_id),
                    reason: ack.reason_code,
                    properties: ack.properties,
                })
            } else {
                finish(Some(ack.packet_id), ack.reason_code, ack.properties)
            };
        self.completed(now, id, ack.packet_id, result, entry.token);
    }

    // ----- SUBACK / UNSUBACK -------------------------------------------------------

    fn on_suback(&mut self, now: Instant, ack: SubAck) {
        let id = ack.packet_id.get();
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        let Packet::Subscribe(sub) = &request.packet else {
            self.unexpected(now, PacketType::SubAck);
            return;
        };
        if sub.filters.len() != ack.reason_codes.len() {
            // [MQTT-3.9.3-1] one reason code per filter.
            self.violation(now, Violation::AckCountMismatch, ReasonCode::PROTOCOL_ERROR);
            return;
        }
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.ids.free(ack.packet_id);
        let Packet::Subscribe(sub) = request.packet else {
            return;
        };
        let mut results = Vec::with_capacity(sub.filters.len());
        for ((filter, options), code) in sub
            .filters
            .into_iter()
            .zip(ack.reason_codes.iter().copied())
        {
            let granted = match code.0 {
                0 => Some(QoS::AtMostOnce),
                1 => Some(QoS::AtLeastOnce),
                2 => Some(QoS::ExactlyOnce),
                _ => None,
            };
            match granted {
                Some(qos) => {
                    let active = SessionSubscription {
                        filter,
                        options,
                        properties: sub.properties.clone(),
                    };
                    if self.recording {
                        self.changes.push(SessionChange::Subscribed(active.clone()));
                    }
                    match self
                        .subscriptions
                        .iter_mut()
                        .find(|s| s.filter == active.filter)
                    {
                        Some(slot) => *slot = active,
                        None => self.subscriptions.push(active),
                    }
                    results.push(Ok(qos));
                }
                None => {
                    if request.token.is_none() {
                        self.subscriptions.retain(|s| s.filter != filter);
                        self.record(|| SessionChange::Unsubscribed(filter.clone()));
                        self.events.push_back(Event::ResubscribeFailed {
                            filter,
                            reason: code,
                        });
                    }
                    results.push(Err(code));
                }
            }
        }
        self.subscriptions_changed();
        if let Some(token) = request.token {
            let outcome = SubscribeOutcome {
                packet_id: ack.packet_id,
                results,
                properties: ack.properties,
            };
            self.events.push_back(Event::SubscribeDone {
                token,
                result: Ok(outcome),
            });
        }
    }

    fn on_unsuback(&mut self, now: Instant, ack: UnsubAck) {
        let id = ack.packet_id.get();
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        let Packet::Unsubscribe(unsub) = &request.packet else {
            self.unexpected(now, PacketType::UnsubAck);
            return;
        };
        if self.version == ProtocolVersion::V5 && unsub.filters.len() != ack.reason_codes.len() {
            // [MQTT-3.11.3-1] one reason code per filter.
            self.violation(now, Violation::AckCountMismatch, ReasonCode::PROTOCOL_ERROR);
            return;
        }
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.ids.free(ack.packet_id);
        let Packet::Unsubscribe(unsub) = request.packet else {
            return;
        };
        for (i, filter) in unsub.filters.iter().enumerate() {
            // Gone unless the server refused (not authorised, ...): 0x00 and 0x11
            // (No subscription existed) both leave no subscription.
            let code = ack
                .reason_codes
                .get(i)
                .copied()
                .unwrap_or(ReasonCode::SUCCESS);
            if code.0 < 0x80 {
                self.subscriptions.retain(|s| s.filter != *filter);
                self.record(|| SessionChange::Unsubscribed(filter.clone()));
            }
        }
        self.subscriptions_changed();
        if let Some(token) = request.token {
            let outcome = UnsubscribeOutcome {
                packet_id: ack.packet_id,
                results: ack.reason_codes,
                properties: ack.properties,
            };
            self.events.push_back(Event::UnsubscribeDone {
                token,
                result: Ok(outcome),
            });
        }
    }
}

/// A final ack's reason code as the publish outcome: failure codes are errors.
fn finish(
    packet_id: Option<PacketId>,
    reason: ReasonCode,
    properties: AckProperties,
) -> Result<PublishOutcome, PublishError> {
    if reason.is_success() {
        Ok(PublishOutcome {
            packet_id,
            reason,
            properties,
        })
    } else {
        Err(PublishError::Rejected { reason, properties })
    }
}

/// Payload Format Indicator 1 says the payload is UTF-8 Encoded Character Data
/// (MQTT 5, 3.3.2.3.2): the receiver may check it and answer a payload that is
/// not well-formed UTF-8 with 0x99 Payload format invalid (PUBACK, PUBREC or
/// DISCONNECT). The client checks it; 0 or absent means unspecified bytes.
pub(crate) fn payload_format_valid(publish: &Publish) -> bool {
    publish.properties().payload_format_indicator != Some(1)
        || std::str::from_utf8(&publish.payload).is_ok()
}
