//! What the application subscribes with: [`Subscription`] (one filter and its
//! options) and the requests that carry them, [`SubscribeRequest`] and
//! [`UnsubscribeRequest`] (several filters, and the MQTT 5 properties of the packet).
//!
//! ```
//! use mqtt_client::{QoS, RetainHandling, SubscribeRequest, Subscription};
//!
//! let request = SubscribeRequest::new()
//!     .subscription(Subscription::new("plant/+/temperature", QoS::AtLeastOnce))
//!     .subscription(
//!         Subscription::new("plant/+/commands", QoS::ExactlyOnce)
//!             .no_local(true)
//!             .retain_handling(RetainHandling::DoNotSend),
//!     )
//!     .identifier(7)
//!     .user_property("pipeline", "line-1");
//! assert_eq!(request.subscriptions().len(), 2);
//! ```

use mqtt_codec::packet::{RetainHandling, SubscriptionOptions};
use mqtt_codec::property::{SubscribeProperties, UnsubscribeProperties, UserProperty};
use mqtt_codec::string::MqttString;
use mqtt_codec::topic::check_subscription_filter;
use mqtt_codec::QoS;

use crate::error::RequestError;

/// One topic filter and how to subscribe to it. The MQTT 5 options (No Local,
/// Retain As Published, Retain Handling) are left out in MQTT 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    filter: String,
    options: SubscriptionOptions,
}

impl Subscription {
    /// `filter` at most at `qos`, with the default options (the server sends our
    /// own messages back, clears RETAIN when forwarding, and sends retained
    /// messages at subscription). Checked when it is sent.
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        Self {
            filter: filter.into(),
            options: SubscriptionOptions::qos(qos),
        }
    }

    /// No Local (MQTT 5): the server does not send this client's own messages back.
    pub fn no_local(mut self, on: bool) -> Self {
        self.options.no_local = on;
        self
    }

    /// Retain As Published (MQTT 5): forwarded messages keep their RETAIN flag.
    pub fn retain_as_published(mut self, on: bool) -> Self {
        self.options.retain_as_published = on;
        self
    }

    /// Retain Handling (MQTT 5): whether retained messages are sent at subscription.
    pub fn retain_handling(mut self, handling: RetainHandling) -> Self {
        self.options.retain_handling = handling;
        self
    }

    /// The topic filter.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The maximum QoS asked for.
    pub fn qos(&self) -> QoS {
        self.options.qos
    }

    /// The options as they go on the wire.
    pub fn options(&self) -> SubscriptionOptions {
        self.options
    }
}

/// One SUBSCRIBE: subscriptions answered together by one SUBACK, and the MQTT 5
/// properties of the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    subscriptions: Vec<Subscription>,
    identifier: Option<u32>,
    user_properties: Vec<(String, String)>,
}

impl SubscribeRequest {
    /// An empty request (at least one subscription must be added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscription.
    pub fn subscription(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription);
        self
    }

    /// Subscription Identifier (MQTT 5, 1 to 268,435,455; anything else is refused
    /// before sending with [`RequestError::InvalidSubscriptionIdentifier`]): the
    /// server puts it on every message it sends for these subscriptions, and
    /// [`crate::Message::matched_filters`] names them.
    pub fn identifier(mut self, id: u32) -> Self {
        self.identifier = Some(id);
        self
    }

    /// Adds a User Property (MQTT 5).
    pub fn user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((name.into(), value.into()));
        self
    }

    /// The subscriptions, in order.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// The filters and properties as the engine takes them, checked.
    pub(crate) fn into_parts(
        self,
    ) -> Result<(Vec<(MqttString, SubscriptionOptions)>, SubscribeProperties), RequestError> {
        if self.subscriptions.is_empty() {
            return Err(RequestError::Empty);
        }
        let mut filters = Vec::with_capacity(self.subscriptions.len());
        for s in self.subscriptions {
            filters.push((filter(s.filter)?, s.options));
        }
        let mut properties = SubscribeProperties::EMPTY;
        properties.subscription_identifier = self.identifier;
        // 0 is a Protocol Error, and the value is a Variable Byte Integer (3.8.2.1.2).
        if let Some(id) = self.identifier.filter(|&id| id == 0 || id > 268_435_455) {
            return Err(RequestError::InvalidSubscriptionIdentifier(id));
        }
        properties.user_properties = user_properties(self.user_properties)?;
        Ok((filters, properties))
    }
}

impl From<Subscription> for SubscribeRequest {
    fn from(subscription: Subscription) -> Self {
        Self::new().subscription(subscription)
    }
}

/// One UNSUBSCRIBE: filters answered together by one UNSUBACK, and the MQTT 5
/// properties of the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeRequest {
    filters: Vec<String>,
    user_properties: Vec<(String, String)>,
}

impl UnsubscribeRequest {
    /// An empty request (at least one filter must be added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter, exactly as it was subscribed.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Adds a User Property (MQTT 5).
    pub fn user_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_properties.push((name.into(), value.into()));
        self
    }

    /// The filters, in order.
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    pub(crate) fn into_parts(
        self,
    ) -> Result<(Vec<MqttString>, UnsubscribeProperties), RequestError> {
        if self.filters.is_empty() {
            return Err(RequestError::Empty);
        }
        let filters = self
            .filters
            .into_iter()
            .map(filter)
            .collect::<Result<Vec<_>, _>>()?;
        let mut properties = UnsubscribeProperties::EMPTY;
        properties.user_properties = user_properties(self.user_properties)?;
        Ok((filters, properties))
    }
}

impl From<&str> for UnsubscribeRequest {
    fn from(filter: &str) -> Self {
        Self::new().filter(filter)
    }
}

impl From<String> for UnsubscribeRequest {
    fn from(filter: String) -> Self {
        Self::new().filter(filter)
    }
}

fn filter(filter: String) -> Result<MqttString, RequestError> {
    if let Err(reason) = check_subscription_filter(&filter) {
        return Err(RequestError::InvalidFilter { filter, reason });
    }
    MqttString::try_from(filter.as_str())
        .map_err(|reason| RequestError::InvalidFilter { filter, reason })
}

fn user_properties(pairs: Vec<(String, String)>) -> Result<Vec<UserProperty>, RequestError> {
    pairs
        .into_iter()
        .map(|(name, value)| {
            UserProperty::new(&name, &value).map_err(|reason| RequestError::InvalidProperty {
                what: "User Property",
                reason,
            })
        })
        .collect()
}
