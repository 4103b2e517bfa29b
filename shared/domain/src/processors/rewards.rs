//! The reward side of the lifecycle: deciding a paid order's reward (and its levels) and
//! applying it. Refunds are in `refunds.rs`, maturity in `maturity.rs`, the admin's void in
//! `reversal.rs`. Every step reads the order's commissions, lets [`crate::lifecycle`]
//! decide, and writes the result in one transaction conditional on the versions read
//! (re-read on conflict).

use serde_json::json;
use tracing::{info, warn};

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::ids::UserId;
use crate::inbound::{event_time, OrderPaid, WaitingEvent};
use crate::lifecycle::{Commission, Refused};
use crate::config::MarketConfig;
use crate::model::{HoldReason, LedgerEntry, LevelReward, RewardEvent, Settlement};
use crate::group::{EarnedTerms, GroupName, Payout, RewardGroup, RewardRules};
use crate::money::{commission, Bps, Money};
use crate::policy::AffiliatePolicy;
use crate::rules::{bounty_for, capped, default_group, recent_days, sale_reward, CapUsage, EffectivePolicy, Performance, Unpaid};
use crate::ports::{
    CommissionOutcome, CommissionWrite, ConfigSource, MarketStore, ReferralCheck, RewardOutcome, TriggerCount,
};
use crate::time::Timestamp;

use super::arrival::{registered_buyer, Arrival, Buyer};
use super::personal_data::{erased_as, settled};
use super::{Deps, Processor, ORDER_SOURCE, REFUND_SOURCE};

/// Rounds of read-decide-write on one commission before giving up (each lost round means
/// another change of the same order won).
pub(super) const COMMISSION_ATTEMPTS: usize = 16;

// ---------------------------------------------------------------- order.paid

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReward {
    NoInviter,
    /// The market never saw the buyer register, and waiting for it is off or over.
    NotRegistered,
    MarketDisabled,
    NonPositiveAmount,
    OtherCurrency,
    InviterDisabled,
    TriggerLimitReached,
    /// Paid after the inviter's group's duration since the referral.
    OutsideDuration,
    ZeroReward,
}

impl From<Unpaid> for NoReward {
    fn from(u: Unpaid) -> Self {
        match u {
            Unpaid::TriggerLimitReached => NoReward::TriggerLimitReached,
            Unpaid::OutsideDuration => NoReward::OutsideDuration,
            Unpaid::ZeroReward => NoReward::ZeroReward,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderDecision {
    Reward(RewardEvent),
    NoReward(NoReward),
    /// The buyer's registration has not arrived: the order waits for it
    /// ([`super::DecideWaitingEvents`] decides it then).
    Waiting,
}

/// Decides the reward for a paid order; the reward processor applies it.
pub struct DecideOrderReward<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for DecideOrderReward<S, C> {
    type Request = OrderPaid;
    type Response = OrderDecision;

    async fn process(&self, mut ev: OrderPaid) -> Result<OrderDecision, MarketError> {
        let d = &self.0;
        ev.occurred_at = event_time(ev.occurred_at, d.clock.now());
        match registered_buyer(d, WaitingEvent::Order(ev.clone())).await? {
            Buyer::Registered(buyer, config) => {
                // The buyer as stored: their pseudonym if they were erased.
                ev.buyer = buyer.user_id.clone();
                self.decide(ev, buyer, config).await
            }
            Buyer::NotYet(Arrival::Waiting) => Ok(OrderDecision::Waiting),
            Buyer::NotYet(_) => Ok(OrderDecision::NoReward(NoReward::NotRegistered)),
        }
    }
}

impl<S: MarketStore, C: ConfigSource> DecideOrderReward<S, C> {
    /// The decision for a registered buyer.
    async fn decide(&self, ev: OrderPaid, buyer: AffiliatePolicy, config: MarketConfig) -> Result<OrderDecision, MarketError> {
        let d = &self.0;
        let no = |r| Ok(OrderDecision::NoReward(r));
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
        // The default group beside the inviter's policy: most affiliates are in it.
        let default = GroupName::default_group();
        let (inviter_policy, stored_default) = futures::try_join!(d.store.get_policy(&inviter), d.store.get_group(&default))?;
        settled(&inviter, inviter_policy.as_ref())?;
        let policy = EffectivePolicy::resolve(inviter_policy.as_ref(), &config);
        if !policy.affiliate_enabled {
            return no(NoReward::InviterDisabled);
        }
        let group = group_of(d, inviter_policy.as_ref(), stored_default, &config).await?;
        let performance = performance_of(d, &inviter, &group.rules, ev.occurred_at).await?;
        let sale = match sale_reward(&group, inviter_policy.as_ref(), performance, &buyer, &ev)? {
            Ok(sale) => sale,
            Err(unpaid) => return no(unpaid.into()),
        };
        let levels = self.ancestors(&ev, &inviter, inviter_policy.and_then(|p| p.inviter), &config, &sale.level_bps).await?;
        let hold = hold_for_review(&buyer, &ev, &config);
        if let Some(reason) = hold {
            warn!(order_id = %ev.order_id, buyer = %ev.buyer, inviter = %inviter, reason = reason.as_str(), "the order's rewards are held for review");
        }
        Ok(OrderDecision::Reward(RewardEvent {
            order_id: ev.order_id,
            buyer: ev.buyer,
            inviter,
            order_amount: ev.amount,
            currency: config.currency,
            commission_bps: match sale.payout {
                Payout::Percentage { bps } => bps,
                Payout::Flat { .. } => Bps::from_const(0),
            },
            reward: sale.reward,
            trigger_limit: sale.trigger_limit,
            occurred_at: ev.occurred_at,
            source_event_id: ev.event_id,
            holding_period_days: config.holding_period_days,
            levels,
            hold,
            rule: Some(Box::new(sale)),
        }))
    }
}

/// The group an inviter earns under as stored now, given the stored default group as read
/// beside their policy (so that an affiliate of the default group, most of them, costs no
/// round trip more): the default group as the configuration defines it until an admin
/// stores it; a group that cannot be found, the default (logged).
pub(super) async fn group_of<S: MarketStore, C: ConfigSource>(
    d: &Deps<S, C>,
    inviter: Option<&AffiliatePolicy>,
    stored_default: Option<RewardGroup>,
    config: &MarketConfig,
) -> Result<RewardGroup, MarketError> {
    if let Some(name) = inviter.and_then(|p| p.group.as_ref()) {
        if let Some(group) = d.store.get_group(name).await? {
            return Ok(group);
        }
        warn!(group = %name, "an affiliate's group is not defined: the default group applies");
    }
    Ok(stored_default.unwrap_or_else(|| default_group(config)))
}

/// What the group's tiers look at of the affiliate, read only when a tier asks (one parallel
/// round trip): their paying referrals (statistics), their earnings of the recent days up
/// to `at` (daily earnings in their ledger partition).
pub(super) async fn performance_of<S: MarketStore, C: ConfigSource>(d: &Deps<S, C>, affiliate: &UserId, rules: &RewardRules, at: Timestamp) -> Result<Performance, MarketError> {
    let paying = async {
        Ok::<_, MarketError>(match rules.needs_paying_referrals() {
            true => d.store.get_stats(affiliate).await?.paying_referrals,
            false => 0,
        })
    };
    let (paying_referrals, earned_recently) = futures::try_join!(paying, recent_earnings(d, affiliate, rules, at))?;
    Ok(Performance { paying_referrals, earned_recently })
}

/// What the affiliate earned in the recent days up to `at`, read only when a tier of
/// `rules` looks at it (else 0).
pub(super) async fn recent_earnings<S: MarketStore, C: ConfigSource>(d: &Deps<S, C>, affiliate: &UserId, rules: &RewardRules, at: Timestamp) -> Result<Money, MarketError> {
    if !rules.needs_recent_earnings() {
        return Ok(Money::ZERO);
    }
    let (first, last) = recent_days(at);
    d.store.earned_between(affiliate, &first, &last).await
}

/// Whether an abuse rule holds the order's rewards for review: the buyer's referral was
/// flagged at registration (referral velocity), or the order was paid within
/// `review_min_seconds` of the buyer's registration (the market's time of recording it).
/// Decided from what the event carries and what is stored, so a redelivery decides alike.
pub fn hold_for_review(buyer: &AffiliatePolicy, ev: &OrderPaid, config: &MarketConfig) -> Option<HoldReason> {
    if let Some(reason) = buyer.review_reason {
        return Some(reason);
    }
    let window_ms = i64::from(config.review_min_seconds) * 1000;
    let registered = buyer.registered_at?;
    (window_ms > 0 && ev.occurred_at.millis().saturating_sub(registered.millis()) < window_ms).then_some(HoldReason::FastFirstOrder)
}

impl<S: MarketStore, C: ConfigSource> DecideOrderReward<S, C> {
    /// The shares of the inviter's ancestors (`level_bps`): one policy read per level, up
    /// the chain of inviters. A disabled ancestor is skipped (its level is not paid, nobody
    /// else gets it); the walk ends at a user without inviter, and at a user already in the
    /// chain (a cycle in stored data: logged, never followed).
    async fn ancestors(&self, ev: &OrderPaid, inviter: &UserId, mut next: Option<UserId>, config: &MarketConfig, level_bps: &[Bps]) -> Result<Vec<LevelReward>, MarketError> {
        let mut chain = vec![ev.buyer.clone(), inviter.clone()];
        let mut levels = Vec::new();
        for (level, bps) in (2u8..).zip(level_bps.iter().copied()) {
            let Some(earner) = next.take() else { break };
            if chain.contains(&earner) {
                warn!(order_id = %ev.order_id, buyer = %ev.buyer, earner = %earner, level, "a cycle of inviters in stored data: the level walk stops");
                break;
            }
            let policy = self.0.store.get_policy(&earner).await?;
            settled(&earner, policy.as_ref())?;
            let effective = EffectivePolicy::resolve(policy.as_ref(), config);
            let reward = commission(ev.amount, bps)?;
            if effective.affiliate_enabled && reward.is_positive() {
                // The link the reward checks: the earner still invited the user below.
                let invited = chain.last().cloned();
                levels.push(LevelReward { level, earner: earner.clone(), commission_bps: bps, reward, invited });
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
pub(super) fn reversal_audits(entries: &[LedgerEntry], at: Timestamp, actor: &Actor) -> Vec<AuditRecord> {
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

/// The cap's allowance and the bounty of a reward, from the buyer as read (their trigger
/// count and cap usage), and the usage to write with it.
fn settle(ev: &RewardEvent, buyer: Option<&AffiliatePolicy>, triggered: u32) -> Result<(Settlement, Option<CapUsage>), MarketError> {
    let Some(rule) = &ev.rule else { return Ok((Settlement::default(), None)) };
    let bounty = bounty_for(rule, triggered);
    let Some(cap) = rule.cap else { return Ok((Settlement { capped_at: None, bounty }, None)) };
    let empty = CapUsage::new();
    let used = buyer.map_or(&empty, |b| &b.cap_used);
    let (allowed, after) = capped(cap, used, ev.occurred_at, rule.reward)?;
    Ok((Settlement { capped_at: Some(allowed), bounty }, Some(after)))
}

impl<S: MarketStore, C: ConfigSource> ApplyReward<S, C> {
    /// Replaces each erased user the reward names by their pseudonym; whether any was.
    async fn under_pseudonyms(&self, ev: &mut RewardEvent) -> Result<bool, MarketError> {
        let d = &self.0;
        let mut changed = false;
        let mut ids: Vec<&mut UserId> = vec![&mut ev.buyer, &mut ev.inviter];
        for l in &mut ev.levels {
            ids.push(&mut l.earner);
            ids.extend(l.invited.as_mut());
        }
        for id in ids {
            if let Some(p) = erased_as(d, id).await? {
                *id = p;
                changed = true;
            }
        }
        Ok(changed)
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for ApplyReward<S, C> {
    type Request = RewardEvent;
    type Response = RewardOutcome;

    async fn process(&self, mut ev: RewardEvent) -> Result<RewardOutcome, MarketError> {
        let d = &self.0;
        let actor = Actor::System(ORDER_SOURCE.into());
        let publish = d.config.current().await.lifecycle_events;
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            // The buyer's count and cap usage as this round reads them: the transaction
            // holds them (a reward of the same buyer in between: read again).
            let (current, buyer) = futures::try_join!(self.commissions(&ev), d.store.get_policy(&ev.buyer))?;
            let triggered = buyer.as_ref().map_or(0, |b| b.rewards_triggered);
            let (settlement, cap_used) = settle(&ev, buyer.as_ref(), triggered)?;
            let mut earned = vec![ev.earned(&settlement)?];
            for l in &ev.levels {
                earned.push(ev.earned_at_level(l)?);
            }
            let mut changes = Vec::with_capacity(current.len());
            let mut audit = Vec::new();
            for (commission, earned) in current.iter().zip(earned) {
                let (level, bps, reward) = (earned.level, earned.commission_bps, earned.reward);
                let rule = earned.terms.as_deref().map(EarnedTerms::describe);
                let mut change = match commission.earn(earned, now) {
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
                if level == 1 && triggered == 0 {
                    // The referred user's first reward: one more paying referral.
                    change.stats.paying_referrals = 1;
                }
                audit.push(AuditRecord::new(&commission.user_id, now, AuditAction::RewardEarned, actor.clone(), ev.source_event_id.as_str(), json!({
                    "order_id": ev.order_id, "buyer": ev.buyer, "order_amount": ev.order_amount, "currency": ev.currency,
                    "level": level, "commission_bps": bps, "reward": reward, "rule": rule, "net_of_earlier_refunds": change.after.amount(),
                    "matures_at": change.after.earned.as_ref().map(|e| e.matures_at), "status": change.after.status(now),
                })).about(&ev.buyer));
                if let Some(reason) = ev.hold {
                    audit.push(AuditRecord::new(&commission.user_id, now, AuditAction::HeldForReview, actor.clone(), ev.source_event_id.as_str(), json!({
                        "rule": reason.as_str(), "order_id": ev.order_id, "buyer": ev.buyer, "level": level, "held": change.stats.held,
                    })).about(&ev.buyer));
                }
                audit.extend(reversal_audits(&change.entries, now, &Actor::System(REFUND_SOURCE.into())));
                changes.push(change);
            }
            if !ev.trigger_limit.allows_another(triggered) {
                // Not this event's reward (that would have been a replay above).
                return Ok(RewardOutcome::LimitReached);
            }
            let chain = ev.levels.iter().filter_map(|l| Some((l.invited.clone()?, l.earner.clone()))).collect();
            // Exact where it matters: the buyer's first reward, and a cap's usage.
            let as_read = (triggered == 0 || cap_used.is_some()).then_some(triggered);
            let trigger = TriggerCount { buyer: ev.buyer.clone(), inviter: ev.inviter.clone(), limit: ev.trigger_limit, chain, as_read, cap_used };
            let publish = Publication::lifecycle(publish, LifecycleEvent::of_entries(&changes));
            let referral = ReferralCheck::Counted(trigger);
            let outcome = d.store.write_commission(&CommissionWrite { changes, referral, audit, publish, sequence_as_read: None, at: now }).await?;
            let result = match outcome {
                CommissionOutcome::Written => RewardOutcome::Applied,
                CommissionOutcome::LimitReached => RewardOutcome::LimitReached,
                // A twin wrote it meanwhile: re-read to tell a replay from another event.
                CommissionOutcome::Duplicate | CommissionOutcome::Conflict => continue,
                // Decided before an erasure of a user it names: the same reward under their
                // pseudonyms (the mapping is deterministic); an erasure still under way is
                // waited for (retried later).
                CommissionOutcome::Moved => {
                    if self.under_pseudonyms(&mut ev).await? {
                        info!(order_id = %ev.order_id, "a user the reward names was erased: applied under the pseudonym");
                        continue;
                    }
                    return Err(MarketError::Contention);
                }
            };
            info!(order_id = %ev.order_id, inviter = %ev.inviter, reward = %ev.reward, levels = ev.levels.len(), held = ev.hold.map(HoldReason::as_str), outcome = ?result, "reward processed");
            return Ok(result);
        }
        Err(MarketError::Contention)
    }
}
