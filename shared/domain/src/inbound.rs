//! The platform's events as the rules take them (parsed and validated by [`crate::events`]):
//! value types at the bottom of the domain, so the processors that decide them and the
//! store that keeps an event waiting for its buyer's registration both build on them.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, OrderId, ProductId, RefundId, UserId};
use crate::money::Money;
use crate::time::Timestamp;

/// `auth` / `user.registered`.
#[derive(Debug, Clone)]
pub struct UserRegistered {
    pub event_id: EventId,
    pub user: UserId,
    pub invite_code: Option<String>,
    pub occurred_at: Timestamp,
}

/// `shop` / `order.paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub event_id: EventId,
    pub order_id: OrderId,
    pub buyer: UserId,
    pub amount: Money,
    pub currency: String,
    pub occurred_at: Timestamp,
    /// What was bought (optional: reward rules may pay by product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<ProductId>,
    /// A new subscription or a renewal (optional: reward rules may pay by it). Stored as
    /// `order_kind`: a waiting event's own tag is `kind`.
    #[serde(default, rename = "order_kind", skip_serializing_if = "Option::is_none")]
    pub kind: Option<OrderKind>,
}

/// Whether an order starts a subscription or renews one (`order.paid`'s optional `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    New,
    Renewal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Refund,
    Chargeback,
}

/// `shop` / `order.refunded`: one refund (or chargeback) of part or all of a paid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefunded {
    pub event_id: EventId,
    pub refund_id: RefundId,
    pub order_id: OrderId,
    pub buyer: UserId,
    pub amount: Money,
    pub currency: String,
    pub reason: RefundReason,
    pub occurred_at: Timestamp,
}

/// An event's time as the rules use it: the time it carries, but never later than the
/// market's clock — a shop's clock running ahead must not keep a reward pending longer
/// than the holding period, nor date a registration after the orders it precedes.
pub fn event_time(occurred_at: Timestamp, now: Timestamp) -> Timestamp {
    occurred_at.min(now)
}

/// An order or refund of a buyer whose registration the market has not seen yet: kept
/// until the registration arrives, then decided as if the events had come in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitingEvent {
    Order(OrderPaid),
    Refund(OrderRefunded),
}

impl WaitingEvent {
    pub fn buyer(&self) -> &UserId {
        match self {
            WaitingEvent::Order(o) => &o.buyer,
            WaitingEvent::Refund(r) => &r.buyer,
        }
    }
    /// The same event of `buyer` (an erased buyer's: their pseudonym).
    pub fn with_buyer(mut self, buyer: UserId) -> Self {
        match &mut self {
            WaitingEvent::Order(o) => o.buyer = buyer,
            WaitingEvent::Refund(r) => r.buyer = buyer,
        }
        self
    }
    pub fn order_id(&self) -> &OrderId {
        match self {
            WaitingEvent::Order(o) => &o.order_id,
            WaitingEvent::Refund(r) => &r.order_id,
        }
    }
    pub fn occurred_at(&self) -> Timestamp {
        match self {
            WaitingEvent::Order(o) => o.occurred_at,
            WaitingEvent::Refund(r) => r.occurred_at,
        }
    }
    pub fn event_id(&self) -> &EventId {
        match self {
            WaitingEvent::Order(o) => &o.event_id,
            WaitingEvent::Refund(r) => &r.event_id,
        }
    }
    /// One waiting item per order and per refund: a redelivery (or the same order under
    /// another event id) finds its place taken. Orders sort before refunds of the same time.
    pub fn key(&self) -> String {
        match self {
            WaitingEvent::Order(o) => format!("order#{}", o.order_id),
            WaitingEvent::Refund(r) => format!("refund#{}#{}", r.order_id, r.refund_id),
        }
    }
    /// The order in which waiting events are decided: as they happened, an order before a
    /// refund of the same instant.
    pub fn decision_order(&self) -> (Timestamp, u8) {
        (self.occurred_at(), matches!(self, WaitingEvent::Refund(_)) as u8)
    }
    pub fn kind(&self) -> &'static str {
        match self {
            WaitingEvent::Order(_) => "order",
            WaitingEvent::Refund(_) => "refund",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A waiting order keeps what reward rules read: its product and kind survive the
    /// waiting event's own `kind` tag.
    #[test]
    fn a_waiting_order_keeps_its_product_and_kind() {
        let WaitingEvent::Order(mut o) = order("o1", 5) else { unreachable!() };
        o.product_id = Some(crate::ids::ProductId::parse("pro").unwrap());
        o.kind = Some(OrderKind::Renewal);
        let json = serde_json::to_string(&WaitingEvent::Order(o.clone())).unwrap();
        assert_eq!(serde_json::from_str::<WaitingEvent>(&json).unwrap(), WaitingEvent::Order(o));
    }

    fn order(order_id: &str, at: i64) -> WaitingEvent {
        WaitingEvent::Order(OrderPaid {
            event_id: EventId::parse("e").unwrap(),
            order_id: OrderId::parse(order_id).unwrap(),
            buyer: UserId::parse("b").unwrap(),
            amount: Money::from_minor(100),
            currency: "USD".into(),
            occurred_at: Timestamp::from_millis(at),
            product_id: None, kind: None,
        })
    }

    fn refund(order_id: &str, refund_id: &str, at: i64) -> WaitingEvent {
        WaitingEvent::Refund(OrderRefunded {
            event_id: EventId::parse("e").unwrap(),
            refund_id: RefundId::parse(refund_id).unwrap(),
            order_id: OrderId::parse(order_id).unwrap(),
            buyer: UserId::parse("b").unwrap(),
            amount: Money::from_minor(10),
            currency: "USD".into(),
            reason: RefundReason::Chargeback,
            occurred_at: Timestamp::from_millis(at),
        })
    }

    #[test]
    fn one_waiting_place_per_order_and_per_refund() {
        assert_eq!(order("o1", 5).key(), "order#o1");
        assert_eq!(order("o1", 9).key(), order("o1", 5).key(), "the same order under another event");
        assert_eq!(refund("o1", "r1", 5).key(), "refund#o1#r1");
        assert_ne!(refund("o1", "r1", 5).key(), refund("o1", "r2", 5).key());
    }

    #[test]
    fn waiting_events_round_trip_as_stored() {
        for e in [order("o1", 5), refund("o1", "r1", 6)] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<WaitingEvent>(&json).unwrap(), e);
        }
    }

    proptest! {
        /// Decided as they happened; at the same instant the order before its refund.
        #[test]
        fn decision_order_is_time_then_orders_first(times in proptest::collection::vec((0i64..20, any::<bool>()), 1..12)) {
            let mut events: Vec<WaitingEvent> = times.iter().enumerate()
                .map(|(i, (at, is_refund))| if *is_refund { refund("o", &format!("r{i}"), *at) } else { order(&format!("o{i}"), *at) })
                .collect();
            events.sort_by_key(WaitingEvent::decision_order);
            for pair in events.windows(2) {
                prop_assert!(pair[0].occurred_at() <= pair[1].occurred_at());
                if pair[0].occurred_at() == pair[1].occurred_at() {
                    prop_assert!(!(matches!(pair[0], WaitingEvent::Refund(_)) && matches!(pair[1], WaitingEvent::Order(_))));
                }
            }
        }

        /// An event is never dated after the market's clock, and never moved earlier.
        #[test]
        fn event_time_is_clamped_to_now(at in any::<i64>(), now in any::<i64>()) {
            let t = event_time(Timestamp::from_millis(at), Timestamp::from_millis(now));
            prop_assert!(t.millis() <= now && (t.millis() == at || at > now));
        }
    }
}
