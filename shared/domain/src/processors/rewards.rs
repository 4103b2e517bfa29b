//! The reward side of the lifecycle: deciding a paid order's reward, applying it, refunds
//! and chargebacks, maturity at the end of the holding period (on demand and scheduled).
//! Every step reads the order's commission, lets [`crate::lifecycle`] decide, and writes
//! the result in one transaction conditional on the version read (re-read on conflict).

use std::collections::BTreeSet;

use serde_json::json;
use tracing::{info, warn};

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::ids::{EventId, OrderId, RefundId, UserId};
use crate::lifecycle::{Change, Commission, Refund, RefundReason, Refused};
use crate::config::MarketConfig;
use crate::model::{LedgerEntry, LevelReward, RewardEvent};
use crate::money::{commission, Money};
use crate::policy::EffectivePolicy;
use crate::ports::{
    CommissionOutcome, CommissionWrite, ConfigSource, Maturation, MarketStore, RewardOutcome, TriggerCount,
    MAX_FOLD_PER_TRANSACTION,
};
use crate::time::Timestamp;

use super::{Deps, Processor, MATURATION_SOURCE, ORDER_SOURCE, REFUND_SOURCE};

/// Rounds of read-decide-write on one commission before giving up (each lost round means
/// another change of the same order won).
const COMMISSION_ATTEMPTS: usize = 16;

// ---------------------------------------------------------------- order.paid

#[derive(Debug, Clone)]
pub struct OrderPaid {
    pub event_id: EventId,
    pub order_id: OrderId,
    pub buyer: UserId,
    pub amount: Money,
    pub currency: String,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReward {
    NoInviter,
    MarketDisabled,
    NonPositiveAmount,
    OtherCurrency,
    InviterDisabled,
    TriggerLimitReached,
    ZeroReward,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderDecision {
    Reward(RewardEvent),
    NoReward(NoReward),
}

/// Decides the reward for a paid order; the reward processor applies it.
pub struct DecideOrderReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for DecideOrderReward<S, C> {
    type Request = OrderPaid;
    type Response = OrderDecision;

    async fn process(&self, ev: OrderPaid) -> Result<OrderDecision, MarketError> {
        let d = &self.0;
        let (buyer, config) = futures::join!(d.store.get_policy(&ev.buyer), d.config.current());
        let no = |r| Ok(OrderDecision::NoReward(r));
        let Some(buyer) = buyer? else { return no(NoReward::NoInviter) };
        let Some(inviter) = buyer.inviter.clone() else { return no(NoReward::NoInviter) };
        if !config.enabled {
            return no(NoReward::MarketDisabled);
        }
        if !ev.amount.is_positive() {
            return no(NoReward::NonPositiveAmount);
        }
        if ev.currency != config.currency.as_str() {
            return no(NoReward::OtherCurrency);
        }
        let inviter_policy = d.store.get_policy(&inviter).await?;
        let policy = EffectivePolicy::resolve(inviter_policy.as_ref(), &config);
        if !policy.affiliate_enabled {
            return no(NoReward::InviterDisabled);
        }
        if !policy.trigger_limit.allows_another(buyer.rewards_triggered) {
            return no(NoReward::TriggerLimitReached);
        }
        let reward = commission(ev.amount, policy.commission_bps)?;
        if !reward.is_positive() {
            return no(NoReward::ZeroReward);
        }
        let levels = self.ancestors(&ev, &inviter, inviter_policy.and_then(|p| p.inviter), &config).await?;
        Ok(OrderDecision::Reward(RewardEvent {
            order_id: ev.order_id,
            buyer: ev.buyer,
            inviter,
            order_amount: ev.amount,
            currency: config.currency,
            commission_bps: policy.commission_bps,
            reward,
            trigger_limit: policy.trigger_limit,
            occurred_at: ev.occurred_at,
            source_event_id: ev.event_id,
            holding_period_days: config.holding_period_days,
            levels,
        }))
    }
}

impl<S: MarketStore, C: ConfigSource> DecideOrderReward<S, C> {
    /// The shares of the inviter's ancestors (`level_bps`): one policy read per level, up
    /// the chain of inviters. A disabled ancestor is skipped (its level is not paid, nobody
    /// else gets it); the walk ends at a user without inviter, and at a user already in the
    /// chain (a cycle in stored data: logged, never followed).
    async fn ancestors(&self, ev: &OrderPaid, inviter: &UserId, mut next: Option<UserId>, config: &MarketConfig) -> Result<Vec<LevelReward>, MarketError> {
        let mut chain = vec![ev.buyer.clone(), inviter.clone()];
        let mut levels = Vec::new();
        for (level, bps) in (2u8..).zip(config.level_bps.iter().copied()) {
            let Some(earner) = next.take() else { break };
            if chain.contains(&earner) {
                warn!(order_id = %ev.order_id, buyer = %ev.buyer, earner = %earner, level, "a cycle of inviters in stored data: the level walk stops");
                break;
            }
            let policy = self.0.store.get_policy(&earner).await?;
            let effective = EffectivePolicy::resolve(policy.as_ref(), config);
            let reward = commission(ev.amount, bps)?;
            if effective.affiliate_enabled && reward.is_positive() {
                levels.push(LevelReward { level, earner: earner.clone(), commission_bps: bps, reward });
            }
            next = policy.and_then(|p| p.inviter);
            chain.push(earner);
        }
        Ok(levels)
    }
}


// ---------------------------------------------------------------- reward processor

pub struct ApplyReward<S, C>(pub Deps<S, C>);

/// Audit records of a step's reversal entries (refunds replayed with a late reward, or a
/// refund after it), on the earner's trail.
fn reversal_audits(entries: &[LedgerEntry], at: Timestamp, actor: &Actor) -> Vec<AuditRecord> {
    entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Reversal { user_id, order_id, reversal_id, cause, amount, from, source, note, .. } => {
                Some(AuditRecord::new(user_id, at, AuditAction::RewardReversed, actor.clone(), reversal_id.as_str(), json!({
                    "order_id": order_id, "cause": cause, "amount": amount, "from": from, "source": source, "note": note,
                })))
            }
            _ => None,
        })
        .collect()
}

impl<S: MarketStore, C: ConfigSource> ApplyReward<S, C> {
    /// The order's commissions as stored (or new), level 1 first, in one parallel round trip.
    /// A level's new commission inherits the refunds recorded on level 1 before the reward,
    /// so every level is replayed net of them.
    async fn commissions(&self, ev: &RewardEvent) -> Result<Vec<Commission>, MarketError> {
        let store = &self.0.store;
        let earners: Vec<&UserId> = std::iter::once(&ev.inviter).chain(ev.levels.iter().map(|l| &l.earner)).collect();
        let read = futures::future::try_join_all(earners.iter().map(|e| store.get_commission(e, &ev.order_id))).await?;
        let mut read = read.into_iter();
        let first = read.next().flatten().unwrap_or_else(|| Commission::new(ev.inviter.clone(), ev.order_id.clone(), ev.buyer.clone()));
        let mut all = vec![first];
        for (level, stored) in ev.levels.iter().zip(read) {
            all.push(stored.unwrap_or_else(|| {
                let mut c = Commission::new(level.earner.clone(), ev.order_id.clone(), ev.buyer.clone());
                c.refunds = all[0].refunds.clone();
                c
            }));
        }
        Ok(all)
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for ApplyReward<S, C> {
    type Request = RewardEvent;
    type Response = RewardOutcome;

    async fn process(&self, ev: RewardEvent) -> Result<RewardOutcome, MarketError> {
        let d = &self.0;
        let actor = Actor::System(ORDER_SOURCE.into());
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let current = self.commissions(&ev).await?;
            let earned = std::iter::once(ev.earned()).chain(ev.levels.iter().map(|l| ev.earned_at_level(l)));
            let mut changes = Vec::with_capacity(current.len());
            let mut audit = Vec::new();
            for (commission, earned) in current.iter().zip(earned) {
                let (level, bps, reward) = (earned.level, earned.commission_bps, earned.reward);
                let change = match commission.earn(earned, now) {
                    Ok(change) => change,
                    Err(Refused::Duplicate) if level == 1 => {
                        // Invariant 8: the same event gets its first outcome again.
                        let same_event = commission.earned.as_ref().is_some_and(|e| e.source_event_id == ev.source_event_id);
                        return Ok(if same_event { RewardOutcome::Replayed } else { RewardOutcome::Duplicate });
                    }
                    Err(Refused::Duplicate) => {
                        // Only written with level 1, so not reachable from consistent data.
                        warn!(order_id = %ev.order_id, earner = %commission.user_id, level, "a level's commission exists without level 1's: skipped");
                        continue;
                    }
                    Err(_) => return Err(MarketError::Overflow),
                };
                audit.push(AuditRecord::new(&commission.user_id, now, AuditAction::RewardEarned, actor.clone(), ev.source_event_id.as_str(), json!({
                    "order_id": ev.order_id, "buyer": ev.buyer, "order_amount": ev.order_amount, "currency": ev.currency,
                    "level": level, "commission_bps": bps, "reward": reward, "net_of_earlier_refunds": change.after.amount(),
                    "matures_at": change.after.earned.as_ref().map(|e| e.matures_at), "status": change.after.status(now),
                })));
                audit.extend(reversal_audits(&change.entries, now, &Actor::System(REFUND_SOURCE.into())));
                changes.push(change);
            }
            let trigger = TriggerCount { buyer: ev.buyer.clone(), inviter: ev.inviter.clone(), limit: ev.trigger_limit };
            let outcome = d.store.write_commission(&CommissionWrite { changes, trigger: Some(trigger), audit, at: now }).await?;
            let result = match outcome {
                CommissionOutcome::Written => RewardOutcome::Applied,
                CommissionOutcome::LimitReached => RewardOutcome::LimitReached,
                // A twin wrote it meanwhile: re-read to tell a replay from another event.
                CommissionOutcome::Duplicate | CommissionOutcome::Conflict => continue,
            };
            info!(order_id = %ev.order_id, inviter = %ev.inviter, reward = %ev.reward, levels = ev.levels.len(), outcome = ?result, "reward processed");
            return Ok(result);
        }
        Err(MarketError::Contention)
    }
}

// ---------------------------------------------------------------- order.refunded

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundResult {
    /// The commission shrank by `reversed` (0 when the refund did not change the floor).
    Applied { reversed: Money },
    /// Recorded before the order's reward: applied when the reward arrives.
    RecordedBeforeReward,
    /// This refund was applied before.
    Duplicate,
    /// The buyer has no inviter: nothing to reverse (audited on the buyer).
    NoInviter,
}

/// Applies a refund or chargeback to the order's commission, exactly once per refund id.
pub struct ApplyRefund<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> ApplyRefund<S, C> {
    /// A refund that changes nothing is still on a trail. Its time is the event's, so a
    /// redelivery rewrites the same record instead of adding one.
    async fn reject(&self, subject: &UserId, ev: &OrderRefunded, reason: &str, extra: serde_json::Value) -> Result<(), MarketError> {
        let record = AuditRecord::new(subject, ev.occurred_at, AuditAction::RefundRejected, Actor::System(REFUND_SOURCE.into()), ev.event_id.as_str(), json!({
            "order_id": ev.order_id, "refund_id": ev.refund_id, "amount": ev.amount, "currency": ev.currency,
            "reason": reason, "detail": extra,
        }));
        self.0.store.put_audit(&record).await
    }
}

impl<S: MarketStore, C: ConfigSource> ApplyRefund<S, C> {
    /// The refund's steps on the commissions of levels 2 and 3 written with level 1's
    /// reward (read in one parallel round trip). Before the reward there are none: the
    /// refund recorded on level 1 is inherited by the levels when the reward arrives.
    async fn levels(&self, level1: &Commission, ev: &OrderRefunded, refund: &Refund, now: Timestamp) -> Result<Vec<Change>, MarketError> {
        let Some(earned) = &level1.earned else { return Ok(Vec::new()) };
        let store = &self.0.store;
        let read = futures::future::try_join_all(earned.level_earners.iter().map(|e| store.get_commission(e, &ev.order_id))).await?;
        let mut changes = Vec::new();
        for (earner, commission) in earned.level_earners.iter().zip(read) {
            let Some(commission) = commission else {
                warn!(order_id = %ev.order_id, earner = %earner, "a level's commission is missing: nothing to reverse there");
                continue;
            };
            match commission.refund(refund.clone(), now) {
                Ok(change) => changes.push(change),
                Err(Refused::Duplicate) => {}
                Err(e) => {
                    warn!(order_id = %ev.order_id, earner = %earner, refused = ?e, "a level's commission refuses the refund level 1 accepts");
                }
            }
        }
        Ok(changes)
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for ApplyRefund<S, C> {
    type Request = OrderRefunded;
    type Response = RefundResult;

    async fn process(&self, ev: OrderRefunded) -> Result<RefundResult, MarketError> {
        let d = &self.0;
        let (buyer, config) = futures::join!(d.store.get_policy(&ev.buyer), d.config.current());
        let Some(inviter) = buyer?.and_then(|p| p.inviter) else {
            self.reject(&ev.buyer, &ev, "no_inviter", json!(null)).await?;
            info!(event_id = %ev.event_id, order_id = %ev.order_id, "refund of an order without inviter: nothing to reverse");
            return Ok(RefundResult::NoInviter);
        };
        if ev.currency != config.currency.as_str() {
            self.reject(&inviter, &ev, "other_currency", json!({"expected": config.currency})).await?;
            return Err(MarketError::InvalidArgument(format!("refund in {} but the market pays in {}", ev.currency, config.currency)));
        }
        let actor = Actor::System(REFUND_SOURCE.into());
        let refund = Refund { refund_id: ev.refund_id.clone(), amount: ev.amount, reason: ev.reason, at: ev.occurred_at, event_id: ev.event_id.clone() };
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let current = d
                .store
                .get_commission(&inviter, &ev.order_id)
                .await?
                .unwrap_or_else(|| Commission::new(inviter.clone(), ev.order_id.clone(), ev.buyer.clone()));
            let change = match current.refund(refund.clone(), now) {
                Ok(change) => change,
                Err(Refused::Duplicate) => return Ok(RefundResult::Duplicate),
                Err(Refused::OverRefund { left }) => {
                    self.reject(&inviter, &ev, "over_refund", json!({"left_of_order": left})).await?;
                    warn!(event_id = %ev.event_id, order_id = %ev.order_id, refund_id = %ev.refund_id, left = %left, "refund exceeds what is left of the order");
                    return Err(MarketError::InvalidArgument("refund exceeds what is left of the order".into()));
                }
                Err(_) => return Err(MarketError::Overflow),
            };
            let earned = change.after.earned.is_some();
            let reversed = Money::from_minor(change.stats.reversed_total);
            let mut audit = reversal_audits(&change.entries, now, &actor);
            if audit.is_empty() {
                let action = if earned { AuditAction::RewardReversed } else { AuditAction::RefundRecorded };
                audit.push(AuditRecord::new(&inviter, now, action, actor.clone(), ev.refund_id.as_str(), json!({
                    "order_id": ev.order_id, "refund_id": ev.refund_id, "refund_amount": ev.amount, "reason": ev.reason,
                    "amount": reversed, "event_id": ev.event_id,
                })));
            }
            // The levels above paid for the same order shrink by the same refund, each at
            // its own rate, in the same transaction.
            let mut changes = vec![change];
            for level in self.levels(&current, &ev, &refund, now).await? {
                audit.extend(reversal_audits(&level.entries, now, &actor));
                changes.push(level);
            }
            let levels = changes.len() - 1;
            match d.store.write_commission(&CommissionWrite { changes, trigger: None, audit, at: now }).await? {
                CommissionOutcome::Written => {
                    info!(event_id = %ev.event_id, order_id = %ev.order_id, refund_id = %ev.refund_id, reversed = %reversed, earned, levels, "refund applied");
                    return Ok(if earned { RefundResult::Applied { reversed } } else { RefundResult::RecordedBeforeReward });
                }
                CommissionOutcome::Duplicate => return Ok(RefundResult::Duplicate),
                CommissionOutcome::Conflict | CommissionOutcome::LimitReached => continue,
            }
        }
        Err(MarketError::Contention)
    }
}

// ---------------------------------------------------------------- maturity

/// Moves a user's commissions whose holding period is over from pending to available (in
/// transactions of at most [`MAX_FOLD_PER_TRANSACTION`]); returns how many moved. The RPCs
/// never wait for it: they count matured rewards as available at the moment of the call.
pub struct MatureRewards<S, C>(pub Deps<S, C>);

/// The maturity step of each due commission (the ones not due any more are skipped).
pub fn maturations(due: &[Commission], now: Timestamp) -> Vec<Change> {
    due.iter().filter_map(|c| c.mature(now).ok()).collect()
}

/// The audit record of one maturation batch.
pub fn maturation_audit(user: &UserId, now: Timestamp, actor: Actor, changes: &[Change]) -> AuditRecord {
    let orders: Vec<_> = changes.iter().map(|c| json!({"order_id": c.after.order_id, "amount": c.after.amount()})).collect();
    let total: i64 = changes.iter().map(|c| c.stats.available).sum();
    let anchor = changes.first().map(|c| format!("{}@{}", c.after.order_id, c.after.version)).unwrap_or_default();
    AuditRecord::new(user, now, AuditAction::RewardsMatured, actor, anchor, json!({"orders": orders, "amount": total}))
}

impl<S: MarketStore, C: ConfigSource> Processor for MatureRewards<S, C> {
    type Request = UserId;
    type Response = usize;

    async fn process(&self, user: UserId) -> Result<usize, MarketError> {
        let d = &self.0;
        let mut moved = 0;
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let due = d.store.due_commissions(&user, now, MAX_FOLD_PER_TRANSACTION).await?;
            let changes = maturations(&due, now);
            if changes.is_empty() {
                return Ok(moved);
            }
            let audit = maturation_audit(&user, now, Actor::System(MATURATION_SOURCE.into()), &changes);
            let count = changes.len();
            if d.store.mature(&Maturation { user: user.clone(), changes, audit, at: now }).await? {
                moved += count;
                info!(user_id = %user, count, "rewards matured");
                if due.len() < MAX_FOLD_PER_TRANSACTION {
                    return Ok(moved);
                }
            }
        }
        Err(MarketError::Contention)
    }
}

/// How far back the scheduled catch-up looks for maturity days it may have missed (the
/// RPCs stay exact regardless; this bounds how long stored figures can lag after an outage).
pub const CATCH_UP_DAYS: u32 = 7;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpReport {
    pub users: usize,
    pub matured: usize,
    pub failed: usize,
}

/// The scheduled catch-up: every user with a commission due now (from the maturity index,
/// by day) gets [`MatureRewards`]. Cost follows the number of due commissions, not the
/// table size.
pub struct CatchUpMaturity<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for CatchUpMaturity<S, C> {
    type Request = ();
    type Response = CatchUpReport;

    async fn process(&self, _: ()) -> Result<CatchUpReport, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        let mut users = BTreeSet::new();
        for back in (0..=CATCH_UP_DAYS).rev() {
            let day = Timestamp::from_millis(now.millis() - i64::from(back) * Timestamp::MS_PER_DAY).utc_day();
            users.extend(d.store.due_earners(&day, now).await?);
        }
        let mut report = CatchUpReport { users: users.len(), ..CatchUpReport::default() };
        let mature = MatureRewards(d.clone());
        for user in users {
            match mature.process(user.clone()).await {
                Ok(n) => report.matured += n,
                Err(e) => {
                    // One user's failure (contention, a throttle) must not stop the others;
                    // the next run picks them up.
                    warn!(user_id = %user, error = %e, "maturity catch-up failed for a user");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}

// ---------------------------------------------------------------- ReverseReward (admin)

pub struct ReverseRequest {
    /// The earner whose commission is voided.
    pub user: UserId,
    pub order_id: OrderId,
    /// Why (fraud, duplicate, ...): on the reversal entry and the audit record.
    pub note: String,
    pub idempotency_key: crate::ids::IdempotencyKey,
}

pub struct ReverseResult {
    pub reversed: Money,
    pub commission: Commission,
    pub replayed: bool,
    /// The moment the commission's status is shown for.
    pub now: Timestamp,
}

/// Voids the rest of one commission, exactly once per key.
pub struct ReverseReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ReverseReward<S, C> {
    type Request = crate::admin::AdminRequest<ReverseRequest>;
    type Response = ReverseResult;

    async fn process(&self, req: crate::admin::AdminRequest<ReverseRequest>) -> Result<ReverseResult, MarketError> {
        let d = &self.0;
        let r = &req.body;
        let note = r.note.trim();
        if note.is_empty() || note.chars().count() > super::MAX_REASON_CHARS {
            return Err(MarketError::InvalidArgument(format!("note must be 1 to {} characters", super::MAX_REASON_CHARS)));
        }
        let id = crate::ids::ReversalId::derive(&r.user, &r.order_id, &r.idempotency_key);
        let actor = Actor::Admin(req.admin.clone());
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let Some(current) = d.store.get_commission(&r.user, &r.order_id).await?.filter(|c| c.earned.is_some()) else {
                return Err(MarketError::NotFound);
            };
            if let Some(void) = current.voided.as_ref().filter(|v| v.reversal_id == id) {
                return Ok(ReverseResult { reversed: void.amount, replayed: true, commission: current, now });
            }
            let request = crate::lifecycle::VoidRequest { reversal_id: id.clone(), note: note.to_owned(), by: actor.to_string() };
            let change = match current.void(request, now) {
                Ok(change) => change,
                Err(_) => return Err(MarketError::NothingToReverse),
            };
            let reversed = Money::from_minor(change.stats.reversed_total);
            let mut audit = reversal_audits(&change.entries, now, &actor);
            for a in &mut audit {
                a.details["request_id"] = json!(req.request_id);
            }
            let after = change.after.clone();
            match d.store.write_commission(&CommissionWrite { changes: vec![change], trigger: None, audit, at: now }).await? {
                CommissionOutcome::Written => {
                    info!(admin = %req.admin, user_id = %r.user, order_id = %r.order_id, reversed = %reversed, "reward reversed");
                    return Ok(ReverseResult { reversed, commission: after, replayed: false, now });
                }
                // A twin with the same key won: the next read replays it.
                CommissionOutcome::Duplicate | CommissionOutcome::Conflict | CommissionOutcome::LimitReached => continue,
            }
        }
        Err(MarketError::Contention)
    }
}
