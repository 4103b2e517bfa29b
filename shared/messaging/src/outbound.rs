//! Outbound events on their way to RabbitMQ: the outbox relay puts them on the outbound SQS
//! queue in this shape and the bridge publishes them from it. The event id travels as the
//! `amqp_message_id` attribute and becomes the AMQP message id, so every redelivery of an
//! event carries the same id and the consumer can apply it idempotently.

use market_domain::MarketError;

use crate::sqs::Outgoing;

pub const ATTR_EXCHANGE: &str = "amqp_exchange";
pub const ATTR_ROUTING_KEY: &str = "amqp_routing_key";
pub const ATTR_MESSAGE_ID: &str = "amqp_message_id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    /// JSON.
    pub body: String,
}

impl OutboundMessage {
    pub fn to_sqs(&self) -> Outgoing {
        Outgoing {
            body: self.body.clone(),
            attributes: vec![
                (ATTR_EXCHANGE.to_owned(), self.exchange.clone()),
                (ATTR_ROUTING_KEY.to_owned(), self.routing_key.clone()),
                (ATTR_MESSAGE_ID.to_owned(), self.message_id.clone()),
            ],
        }
    }

    /// From an SQS message's body and string attributes; a message without them can never
    /// be published (permanent error: it goes to the DLQ).
    pub fn from_sqs<'a>(body: Option<&str>, attribute: impl Fn(&str) -> Option<&'a str>) -> Result<Self, MarketError> {
        let need = |name: &str| {
            attribute(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| MarketError::InvalidArgument(format!("outbound message without {name}")))
        };
        Ok(OutboundMessage {
            exchange: need(ATTR_EXCHANGE)?,
            routing_key: need(ATTR_ROUTING_KEY)?,
            message_id: need(ATTR_MESSAGE_ID)?,
            body: body.filter(|b| !b.is_empty()).ok_or_else(|| MarketError::InvalidArgument("outbound message without body".into()))?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_sqs_attributes() {
        let m = OutboundMessage {
            exchange: "market".into(),
            routing_key: "affiliate.withdrawn".into(),
            message_id: "wd_1".into(),
            body: "{}".into(),
        };
        let out = m.to_sqs();
        let get = |k: &str| out.attributes.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(OutboundMessage::from_sqs(Some(&out.body), get).unwrap(), m);
        assert!(OutboundMessage::from_sqs(Some("{}"), |_| None).is_err());
        assert!(OutboundMessage::from_sqs(None, get).is_err());
    }
}
