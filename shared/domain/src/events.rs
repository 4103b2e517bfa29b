//! Inbound platform events as they arrive on the wire (JSON, SPEC §4): unknown fields are
//! ignored; missing or invalid fields reject the message (it then reaches the DLQ).

use serde::{Deserialize, Deserializer};

use crate::error::MarketError;
use crate::ids::{EventId, OrderId, ProductId, RefundId, UserId};
use crate::money::Money;
use crate::inbound::{OrderKind, OrderPaid, OrderRefunded, RefundReason, UserRegistered};
use crate::time::Timestamp;

/// `occurred_at`: RFC 3339 text or Unix epoch milliseconds.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Millis(i64),
        Text(String),
    }
    match Repr::deserialize(d)? {
        Repr::Millis(ms) => Ok(Timestamp::from_millis(ms)),
        Repr::Text(s) => {
            let t = time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| D::Error::custom("occurred_at must be RFC 3339 or epoch milliseconds"))?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map(Timestamp::from_millis)
                .map_err(|_| D::Error::custom("occurred_at out of range"))
        }
    }
}

/// Exchange `auth`, routing key `user.registered`.
#[derive(Debug, Deserialize)]
pub struct UserRegisteredEvent {
    pub event_id: EventId,
    pub user_id: UserId,
    #[serde(default)]
    pub invite_code: Option<String>,
    #[serde(deserialize_with = "timestamp")]
    pub occurred_at: Timestamp,
}

/// Exchange `shop`, routing key `order.paid`.
#[derive(Debug, Deserialize)]
pub struct OrderPaidEvent {
    pub event_id: EventId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Money,
    pub currency: String,
    #[serde(deserialize_with = "timestamp")]
    pub occurred_at: Timestamp,
    #[serde(default)]
    pub product_id: Option<ProductId>,
    #[serde(default)]
    pub kind: Option<OrderKind>,
}

/// Exchange `shop`, routing key `order.refunded`: one refund (or chargeback) of part or all
/// of a paid order; `amount` is this refund's, in minor units.
#[derive(Debug, Deserialize)]
pub struct OrderRefundedEvent {
    pub event_id: EventId,
    pub refund_id: RefundId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Money,
    pub currency: String,
    pub reason: RefundReason,
    #[serde(deserialize_with = "timestamp")]
    pub occurred_at: Timestamp,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, MarketError> {
    serde_json::from_str(body).map_err(|e| MarketError::InvalidArgument(format!("invalid event: {e}")))
}

impl UserRegisteredEvent {
    pub fn parse(body: &str) -> Result<UserRegistered, MarketError> {
        let e: UserRegisteredEvent = parse(body)?;
        Ok(UserRegistered { event_id: e.event_id, user: e.user_id, invite_code: e.invite_code, occurred_at: e.occurred_at })
    }
}

impl OrderPaidEvent {
    pub fn parse(body: &str) -> Result<OrderPaid, MarketError> {
        let e: OrderPaidEvent = parse(body)?;
        Ok(OrderPaid {
            event_id: e.event_id,
            order_id: e.order_id,
            buyer: e.user_id,
            amount: e.amount,
            currency: e.currency,
            occurred_at: e.occurred_at,
            product_id: e.product_id,
            kind: e.kind,
        })
    }
}

impl OrderRefundedEvent {
    pub fn parse(body: &str) -> Result<OrderRefunded, MarketError> {
        let e: OrderRefundedEvent = parse(body)?;
        if !e.amount.is_positive() {
            return Err(MarketError::InvalidArgument("invalid event: refund amount must be positive".into()));
        }
        Ok(OrderRefunded {
            event_id: e.event_id,
            refund_id: e.refund_id,
            order_id: e.order_id,
            buyer: e.user_id,
            amount: e.amount,
            currency: e.currency,
            reason: e.reason,
            occurred_at: e.occurred_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_ignores_unknown_fields() {
        let ev = UserRegisteredEvent::parse(
            r#"{"event_id":"e1","user_id":"u1","invite_code":"abcdefgh","occurred_at":"2026-11-24T10:00:00Z","extra":1}"#,
        )
        .unwrap();
        assert_eq!(ev.user.as_str(), "u1");
        assert_eq!(ev.occurred_at.millis(), 1_795_514_400_000);
        let o = OrderPaidEvent::parse(r#"{"event_id":"e","order_id":"o","user_id":"u","amount":1999,"currency":"USD","occurred_at":1}"#).unwrap();
        assert_eq!(o.amount.minor(), 1999);
    }

    #[test]
    fn rejects_missing_or_invalid_fields() {
        for body in [
            r#"{"user_id":"u1","occurred_at":1}"#,
            r#"{"event_id":"e","user_id":"","occurred_at":1}"#,
            r#"{"event_id":"e","user_id":"u","occurred_at":"yesterday"}"#,
            r#"not json"#,
        ] {
            assert!(UserRegisteredEvent::parse(body).is_err(), "{body}");
        }
        assert!(OrderPaidEvent::parse(r#"{"event_id":"e","order_id":"o","user_id":"u","amount":"10","currency":"USD","occurred_at":1}"#).is_err());
        assert!(OrderPaidEvent::parse(r#"{"event_id":"e","order_id":"o","user_id":"u","amount":1.5,"currency":"USD","occurred_at":1}"#).is_err());
    }

    #[test]
    fn refund_events() {
        let ok = r#"{"event_id":"e","refund_id":"r1","order_id":"o","user_id":"u","amount":250,"currency":"USD","reason":"chargeback","occurred_at":1,"x":true}"#;
        let r = OrderRefundedEvent::parse(ok).unwrap();
        assert_eq!((r.amount.minor(), r.reason), (250, RefundReason::Chargeback));
        for bad in [
            r#"{"event_id":"e","order_id":"o","user_id":"u","amount":250,"currency":"USD","reason":"refund","occurred_at":1}"#,
            r#"{"event_id":"e","refund_id":"r","order_id":"o","user_id":"u","amount":0,"currency":"USD","reason":"refund","occurred_at":1}"#,
            r#"{"event_id":"e","refund_id":"r","order_id":"o","user_id":"u","amount":-5,"currency":"USD","reason":"refund","occurred_at":1}"#,
            r#"{"event_id":"e","refund_id":"r","order_id":"o","user_id":"u","amount":5,"currency":"USD","reason":"goodwill","occurred_at":1}"#,
            r#"{"event_id":"e","refund_id":"a#b","order_id":"o","user_id":"u","amount":5,"currency":"USD","reason":"refund","occurred_at":1}"#,
        ] {
            assert!(OrderRefundedEvent::parse(bad).is_err(), "{bad}");
        }
    }

    // Fuzz targets (`make fuzz` runs them longer: PROPTEST_CASES).
    use proptest::prelude::*;

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".{0,70}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![Just("event_id".to_owned()), Just("user_id".to_owned()), Just("order_id".to_owned()), Just("refund_id".to_owned()),
                                Just("amount".to_owned()), Just("currency".to_owned()), Just("reason".to_owned()), Just("occurred_at".to_owned()),
                                Just("invite_code".to_owned()), ".{0,8}"],
                    inner, 0..9,
                ).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(2000)))]
        /// Bytes and structured JSON: every event parser answers Ok or a typed InvalidArgument.
        #[test]
        fn fuzz_event_bodies(raw in ".{0,200}", json in any_json()) {
            for body in [raw, json.to_string()] {
                for result in [
                    UserRegisteredEvent::parse(&body).map(|_| ()),
                    OrderPaidEvent::parse(&body).map(|_| ()),
                    OrderRefundedEvent::parse(&body).map(|_| ()),
                ] {
                    prop_assert!(matches!(result, Ok(()) | Err(MarketError::InvalidArgument(_))));
                }
            }
        }
    }
}

