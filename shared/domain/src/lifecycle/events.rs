//! The lifecycle events a money transition publishes (exchange `market`): one per ledger
//! movement an affiliate can be told of. Pure: built from the step's changes and entries;
//! the store adds the affiliate's sequence number and `available` after the event when it
//! writes them to the outbox, in the transition's own transaction (so an event exists if and
//! only if its change committed).
//!
//! | routing key | when | id |
//! |---|---|---|
//! | `affiliate.reward.earned` | a reward is earned (status `pending`, `available` or `held`) | `<affiliate>#earned#<order>` |
//! | `affiliate.reward.matured` | pending rewards became available (one event per batch) | `<affiliate>#matured#<first order of the batch>` |
//! | `affiliate.reward.reversed` | refund, chargeback, admin void or review rejection took (part of) a reward | `<affiliate>#reversed#<order>#<refund or reversal id>` |
//! | `affiliate.reward.approved` | a held reward was approved | `<affiliate>#approved#<order>` |
//! | `affiliate.balance.adjusted` | an admin credited or debited `available` | `<affiliate>#adjusted#<adjustment id>` |
//! | `affiliate.withdrawn` | a withdrawal (the balance owner credits it) | the withdrawal id |
//!
//! Ids never contain the buyer: only the affiliate, order and movement ids (`#` never occurs
//! in an id, so these cannot collide); one longer than an AMQP message id may be (255 bytes,
//! e.g. 64-character ids in a multi-byte script) is replaced by a hash of it ([`event_id`]).

use serde_json::{json, Map, Value};

use super::Change;
use crate::group::EarnedTerms;
use crate::ids::UserId;
use crate::ledger::{Bucket, HoldReason, LedgerEntry, ReversalCause, WithdrawalRecord};
use crate::money::{Currency, Money};
use crate::time::Timestamp;

/// The version of every event's schema (`docs/events/*.schema.json`): a consumer that meets a
/// higher one may find fields it does not know; removed or changed fields raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest event id: it is the AMQP `message_id`, a short string of at most 255 bytes.
pub const MAX_EVENT_ID_BYTES: usize = 255;

/// An event's id: `<affiliate>#<kind>#<parts joined by #>`, or, when ids in other scripts
/// make that longer than [`MAX_EVENT_ID_BYTES`], `<kind>_<hash of it>` (stable all the same).
pub fn event_id(affiliate: &UserId, kind: &str, parts: &[&str]) -> String {
    let id = std::iter::once(affiliate.as_str()).chain(std::iter::once(kind)).chain(parts.iter().copied()).collect::<Vec<_>>().join("#");
    if id.len() <= MAX_EVENT_ID_BYTES {
        return id;
    }
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}_{hex}")
}

/// One event, before the store sequences it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub affiliate: UserId,
    pub event_id: String,
    pub occurred_at: Timestamp,
    /// What the event does to the affiliate's `available` as stored (a matured reward counts
    /// from its `matured` event): the store adds it up to report `available_after`.
    pub available_delta: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    RewardEarned {
        order_id: String,
        level: u8,
        status: Bucket,
        hold_reason: Option<HoldReason>,
        order_amount: Money,
        commission_bps: u32,
        /// The reward as earned, before any refund (a refund known earlier follows as its
        /// own `reversed` event, in the same transaction).
        amount: Money,
        currency: Currency,
        matures_at: Timestamp,
        /// The rule that paid it ("group vip v3 · tier 2"), and the sign-up bounty in
        /// `amount` (rewards decided by a reward group).
        rule: Option<String>,
        bounty: Option<Money>,
    },
    RewardMatured { rewards: Vec<MaturedReward>, amount: Money, currency: Currency },
    RewardReversed { order_id: String, level: u8, reversal_id: String, cause: ReversalCause, from: Bucket, amount: Money, currency: Currency },
    RewardApproved { order_id: String, level: u8, status: Bucket, amount: Money, currency: Currency },
    BalanceAdjusted { adjustment_id: String, amount: Money, currency: Currency },
    Withdrawn { withdrawal_id: String, amount: Money, currency: Currency },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaturedReward {
    pub order_id: String,
    pub level: u8,
    pub amount: Money,
}

/// The events a write publishes, and whether they are sequenced: lifecycle events on
/// (configuration `lifecycle_events`), or only the withdrawal's event as before them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    pub events: Vec<LifecycleEvent>,
    /// Each affiliate's events get the next numbers of its sequence.
    pub sequenced: bool,
}

impl Publication {
    pub fn none() -> Self {
        Publication::default()
    }
    /// `events` when lifecycle events are on, nothing otherwise.
    pub fn lifecycle(on: bool, events: Vec<LifecycleEvent>) -> Self {
        if on {
            Publication { events, sequenced: true }
        } else {
            Publication::none()
        }
    }
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

fn currency_of(change: &Change) -> Option<Currency> {
    change.after.earned.as_ref().map(|e| e.currency.clone())
}

fn level_of(change: &Change) -> u8 {
    change.after.earned.as_ref().map_or(1, |e| e.level)
}

impl LifecycleEvent {
    /// The events of the ledger entries a step appends: a reward earned, and each reversal
    /// (refunds replayed at the reward, refunds, chargebacks, voids, review rejections).
    pub fn of_entries(changes: &[Change]) -> Vec<LifecycleEvent> {
        let mut events = Vec::new();
        for change in changes {
            let (Some(currency), level) = (currency_of(change), level_of(change)) else { continue };
            for entry in &change.entries {
                match entry {
                    LedgerEntry::Reward { user_id, order_id, order_amount, commission_bps, reward, at, matures_at, terms, .. } => {
                        let earned = change.after.earned.as_ref();
                        let status = if earned.is_some_and(|e| e.hold.is_some()) {
                            Bucket::Held
                        } else if change.after.matured {
                            Bucket::Available
                        } else {
                            Bucket::Pending
                        };
                        events.push(LifecycleEvent {
                            affiliate: user_id.clone(),
                            event_id: event_id(user_id, "earned", &[order_id.as_str()]),
                            occurred_at: *at,
                            available_delta: if status == Bucket::Available { reward.minor() } else { 0 },
                            kind: EventKind::RewardEarned {
                                order_id: order_id.to_string(),
                                level,
                                status,
                                hold_reason: earned.and_then(|e| e.hold),
                                order_amount: *order_amount,
                                commission_bps: u32::from(*commission_bps),
                                amount: *reward,
                                currency: currency.clone(),
                                matures_at: matures_at.unwrap_or(*at),
                                rule: terms.as_deref().map(EarnedTerms::describe),
                                bounty: terms.as_ref().and_then(|t| t.bounty),
                            },
                        });
                    }
                    LedgerEntry::Reversal { user_id, order_id, reversal_id, cause, amount, from, at, .. } => {
                        events.push(LifecycleEvent {
                            affiliate: user_id.clone(),
                            event_id: event_id(user_id, "reversed", &[order_id.as_str(), reversal_id.as_str()]),
                            occurred_at: *at,
                            available_delta: if *from == Bucket::Available { -amount.minor() } else { 0 },
                            kind: EventKind::RewardReversed {
                                order_id: order_id.to_string(),
                                level,
                                reversal_id: reversal_id.to_string(),
                                cause: *cause,
                                from: *from,
                                amount: *amount,
                                currency: currency.clone(),
                            },
                        });
                    }
                    LedgerEntry::Withdrawal { .. } | LedgerEntry::Adjustment { .. } => {}
                }
            }
        }
        events
    }

    /// One event for a batch of one affiliate's rewards that matured together (`None` for
    /// an empty batch).
    pub fn matured(user: &UserId, changes: &[Change], at: Timestamp) -> Option<LifecycleEvent> {
        let first = changes.iter().map(|c| c.after.order_id.as_str()).min()?;
        let currency = changes.iter().find_map(currency_of)?;
        let rewards: Vec<MaturedReward> = changes
            .iter()
            .map(|c| MaturedReward { order_id: c.after.order_id.to_string(), level: level_of(c), amount: Money::from_minor(c.stats.available) })
            .collect();
        let total = rewards.iter().map(|r| r.amount.minor()).fold(0i64, i64::saturating_add);
        Some(LifecycleEvent {
            affiliate: user.clone(),
            event_id: event_id(user, "matured", &[first]),
            occurred_at: at,
            available_delta: total,
            kind: EventKind::RewardMatured { rewards, amount: Money::from_minor(total), currency },
        })
    }

    /// A held reward approved: what is left of it moves to pending (or available).
    pub fn approved(change: &Change, at: Timestamp) -> Option<LifecycleEvent> {
        let currency = currency_of(change)?;
        let c = &change.after;
        let status = if change.stats.available > 0 { Bucket::Available } else { Bucket::Pending };
        let amount = change.stats.held.checked_neg()?;
        Some(LifecycleEvent {
            affiliate: c.user_id.clone(),
            event_id: event_id(&c.user_id, "approved", &[c.order_id.as_str()]),
            occurred_at: at,
            available_delta: change.stats.available,
            kind: EventKind::RewardApproved { order_id: c.order_id.to_string(), level: level_of(change), status, amount: Money::from_minor(amount), currency },
        })
    }

    /// An admin's adjustment entry (`None` for any other entry).
    pub fn adjusted(entry: &LedgerEntry, currency: &Currency) -> Option<LifecycleEvent> {
        let LedgerEntry::Adjustment { user_id, adjustment_id, amount, at, .. } = entry else { return None };
        Some(LifecycleEvent {
            affiliate: user_id.clone(),
            event_id: event_id(user_id, "adjusted", &[adjustment_id.as_str()]),
            occurred_at: *at,
            available_delta: amount.minor(),
            kind: EventKind::BalanceAdjusted { adjustment_id: adjustment_id.to_string(), amount: *amount, currency: currency.clone() },
        })
    }

    /// A withdrawal: its id stays the withdrawal id (the balance owner dedupes on it).
    pub fn withdrawn(w: &WithdrawalRecord) -> LifecycleEvent {
        LifecycleEvent {
            affiliate: w.user_id.clone(),
            event_id: w.withdrawal_id.to_string(),
            occurred_at: w.at,
            available_delta: -w.amount.minor(),
            kind: EventKind::Withdrawn { withdrawal_id: w.withdrawal_id.to_string(), amount: w.amount, currency: w.currency.clone() },
        }
    }

    pub fn routing_key(&self) -> &'static str {
        match self.kind {
            EventKind::RewardEarned { .. } => "affiliate.reward.earned",
            EventKind::RewardMatured { .. } => "affiliate.reward.matured",
            EventKind::RewardReversed { .. } => "affiliate.reward.reversed",
            EventKind::RewardApproved { .. } => "affiliate.reward.approved",
            EventKind::BalanceAdjusted { .. } => "affiliate.balance.adjusted",
            EventKind::Withdrawn { .. } => "affiliate.withdrawn",
        }
    }

    /// Whether the event reports the affiliate's `available` after it (the store then reads
    /// the whole balance before writing it).
    pub fn reports_available(&self) -> bool {
        matches!(self.kind, EventKind::RewardReversed { .. } | EventKind::BalanceAdjusted { .. } | EventKind::Withdrawn { .. })
    }

    /// The event as published (JSON). `sequence` is `None` only for a withdrawal while
    /// lifecycle events are off; `available_after` is given for the events that report it.
    pub fn to_wire(&self, sequence: Option<u64>, available_after: Option<Money>) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.routing_key()));
        m.insert("schema_version".into(), json!(SCHEMA_VERSION));
        m.insert("event_id".into(), json!(self.event_id));
        m.insert("affiliate_id".into(), json!(self.affiliate));
        if let Some(seq) = sequence {
            m.insert("sequence".into(), json!(seq));
        }
        m.insert("occurred_at".into(), json!(self.occurred_at));
        let body = match &self.kind {
            EventKind::RewardEarned { order_id, level, status, hold_reason, order_amount, commission_bps, amount, currency, matures_at, rule, bounty } => {
                let mut b = json!({"order_id": order_id, "level": level, "status": status, "order_amount": order_amount,
                    "commission_bps": commission_bps, "amount": amount, "currency": currency, "matures_at": matures_at});
                if let Some(reason) = hold_reason {
                    b["hold_reason"] = json!(reason);
                }
                if let Some(rule) = rule {
                    b["rule"] = json!(rule);
                }
                if let Some(bounty) = bounty {
                    b["bounty"] = json!(bounty);
                }
                b
            }
            EventKind::RewardMatured { rewards, amount, currency } => json!({
                "amount": amount, "currency": currency,
                "rewards": rewards.iter().map(|r| json!({"order_id": r.order_id, "level": r.level, "amount": r.amount})).collect::<Vec<_>>(),
            }),
            EventKind::RewardReversed { order_id, level, reversal_id, cause, from, amount, currency } => json!({
                "order_id": order_id, "level": level, "reversal_id": reversal_id, "cause": cause, "from": from,
                "amount": amount, "currency": currency,
            }),
            EventKind::RewardApproved { order_id, level, status, amount, currency } => {
                json!({"order_id": order_id, "level": level, "status": status, "amount": amount, "currency": currency})
            }
            EventKind::BalanceAdjusted { adjustment_id, amount, currency } => {
                json!({"adjustment_id": adjustment_id, "amount": amount, "currency": currency})
            }
            // `user_id` as before lifecycle events: the balance owner reads it.
            EventKind::Withdrawn { withdrawal_id, amount, currency } => {
                json!({"withdrawal_id": withdrawal_id, "user_id": self.affiliate, "amount": amount, "currency": currency})
            }
        };
        if let Value::Object(body) = body {
            m.extend(body);
        }
        if let (true, Some(a)) = (self.reports_available(), available_after) {
            m.insert("available_after".into(), json!(a));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, OrderId, RefundId, WithdrawalId};
    use crate::lifecycle::{Commission, Earned, Refund, RefundReason};
    use crate::money::Bps;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn earned(amount: i64, bps: u32, holding_days: u32) -> Earned {
        Earned {
            order_amount: Money::from_minor(amount),
            currency: Currency::parse("USD").unwrap(),
            commission_bps: Bps::new(bps).unwrap(),
            reward: Money::from_minor(amount * i64::from(bps) / 10_000),
            earned_at: Timestamp::from_millis(1_000),
            matures_at: Timestamp::from_millis(1_000).plus_days(holding_days),
            source_event_id: EventId::parse("e1").unwrap(),
            level: 1,
            level_earners: vec![],
            hold: None,
            terms: None,
        }
    }

    #[test]
    fn a_reward_with_an_earlier_refund_publishes_earned_then_reversed_and_no_buyer() {
        let mut c = Commission::new(user("aff"), OrderId::parse("o1").unwrap(), user("buyer-1"));
        let refund = Refund { refund_id: RefundId::parse("r1").unwrap(), amount: Money::from_minor(400), reason: RefundReason::Refund, at: Timestamp::from_millis(500), event_id: EventId::parse("er").unwrap() };
        c = c.refund(refund, Timestamp::from_millis(500)).unwrap().after;
        let change = c.earn(earned(1000, 1000, 0), Timestamp::from_millis(2_000)).unwrap();
        let events = LifecycleEvent::of_entries(std::slice::from_ref(&change));
        let keys: Vec<_> = events.iter().map(|e| (e.routing_key(), e.event_id.as_str())).collect();
        assert_eq!(keys, [("affiliate.reward.earned", "aff#earned#o1"), ("affiliate.reward.reversed", "aff#reversed#o1#r1")]);
        // The events move `available` exactly as the transaction's statistics do.
        assert_eq!(events.iter().map(|e| e.available_delta).sum::<i64>(), change.stats.available);
        let wire = events[1].to_wire(Some(2), Some(Money::from_minor(60)));
        assert_eq!(wire["amount"], 40);
        assert_eq!(wire["available_after"], 60);
        assert_eq!(wire["from"], "available");
        assert!(!wire.to_string().contains("buyer-1"));
    }

    #[test]
    fn a_matured_batch_is_one_event_with_each_reward() {
        let now = Timestamp::from_millis(1_000).plus_days(31);
        let changes: Vec<Change> = ["o2", "o1"]
            .iter()
            .map(|o| {
                let c = Commission::new(user("aff"), OrderId::parse(*o).unwrap(), user("b"));
                let c = c.earn(earned(1000, 500, 30), Timestamp::from_millis(1_000)).unwrap().after;
                c.mature(now).unwrap()
            })
            .collect();
        let e = LifecycleEvent::matured(&user("aff"), &changes, now).unwrap();
        assert_eq!(e.event_id, "aff#matured#o1");
        assert_eq!(e.available_delta, 100);
        let wire = e.to_wire(Some(3), None);
        assert_eq!(wire["rewards"].as_array().unwrap().len(), 2);
        assert!(wire.get("available_after").is_none());
        assert!(LifecycleEvent::matured(&user("aff"), &[], now).is_none());
    }

    #[test]
    fn an_id_too_long_for_an_amqp_message_id_is_hashed_stably() {
        let long = user(&"ü".repeat(64));
        let order = "ö".repeat(64);
        let id = event_id(&long, "reversed", &[&order, &"ä".repeat(64)]);
        assert!(id.len() <= MAX_EVENT_ID_BYTES && id.starts_with("reversed_"), "{id}");
        assert_eq!(id, event_id(&long, "reversed", &[&order, &"ä".repeat(64)]));
        assert_eq!(event_id(&user("aff"), "earned", &["o1"]), "aff#earned#o1");
    }

    #[test]
    fn a_withdrawal_keeps_its_id_and_fields_and_is_unsequenced_when_lifecycle_events_are_off() {
        let w = WithdrawalRecord {
            withdrawal_id: WithdrawalId::parse("wd_1").unwrap(),
            user_id: user("aff"),
            amount: Money::from_minor(500),
            currency: Currency::parse("USD").unwrap(),
            available_after: Money::ZERO,
            at: Timestamp::from_millis(9),
        };
        let wire = LifecycleEvent::withdrawn(&w).to_wire(None, Some(Money::ZERO));
        assert_eq!(wire["type"], "affiliate.withdrawn");
        assert_eq!(wire["withdrawal_id"], "wd_1");
        assert_eq!(wire["user_id"], "aff");
        assert!(wire.get("sequence").is_none());
        assert!(Publication::lifecycle(false, vec![LifecycleEvent::withdrawn(&w)]).is_empty());
    }
}
