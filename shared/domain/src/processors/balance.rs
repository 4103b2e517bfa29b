//! Moving money out of (or into) `available`: the user's withdrawal and an admin's
//! adjustment. Both are one transaction that `ADD`s to `available` conditional on it staying
//! ≥ 0, with the matured commissions they spend folded in; both are exactly once by a key
//! derived from the client's idempotency key. Withdrawals and adjustments of one user apply
//! one after another (conditional on the `balance_changes` count they read, which rewards
//! never touch), so rewards landing meanwhile never cancel them; an entry's
//! `available_after` is exact among the user's withdrawals and adjustments, and does not
//! include rewards or refunds that landed between its read and its write.

use serde_json::json;
use tracing::info;

use crate::request::AdminRequest;
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::ids::{AdjustmentId, IdempotencyKey, UserId, WithdrawalId};
use crate::lifecycle::{Change, Commission, StatsDelta};
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::model::{AffiliateStats, LedgerEntry, WithdrawalRecord};
use crate::money::Money;
use crate::ports::{BalanceChange, BalanceOutcome, ConfigSource, MarketStore, SequenceAsRead, MAX_FOLD_PER_TRANSACTION};
use crate::time::Timestamp;

use super::{maturation_audit, maturations, Deps, MatureRewards, Processor};

/// Read-decide-write rounds; a round is lost only when the balance fell below what the
/// change needs or a folded commission changed meanwhile.
const BALANCE_ATTEMPTS: usize = 64;

/// What a balance change can spend: the stored `available` plus the commissions that
/// matured but are not folded yet (folded by the same transaction).
struct Spendable {
    changes: u64,
    credited_apart: Money,
    matured: Vec<Change>,
    folded: i64,
    total: Money,
}

fn spendable(stats: &AffiliateStats, due: &[Commission], now: Timestamp) -> Result<Spendable, MarketError> {
    let matured = maturations(due, now);
    let folded = matured.iter().try_fold(0i64, |acc, c| acc.checked_add(c.stats.available)).ok_or(MarketError::Overflow)?;
    let total = stats.available.checked_add(Money::from_minor(folded))?;
    Ok(Spendable { changes: stats.balance_changes, credited_apart: stats.credited_apart, matured, folded, total })
}

/// Reads what a balance change needs, in one parallel round trip.
async fn read_balance<S: MarketStore, C>(d: &Deps<S, C>, user: &UserId, now: Timestamp) -> Result<(AffiliateStats, Vec<Commission>), MarketError> {
    let (stats, due) = futures::join!(d.store.get_stats(user), d.store.due_commissions(user, now, MAX_FOLD_PER_TRANSACTION));
    Ok((stats?, due?))
}

// ---------------------------------------------------------------- WithdrawAffiliateReward

pub struct WithdrawRequest {
    pub caller: UserId,
    pub amount: Money,
    pub idempotency_key: IdempotencyKey,
}

#[derive(Debug)]
pub struct WithdrawResult {
    pub record: WithdrawalRecord,
    /// True when this is a retry answered with the first result.
    pub replayed: bool,
}

pub struct WithdrawAffiliateReward<S, C>(pub Deps<S, C>);

fn replay(existing: WithdrawalRecord, amount: Money) -> Result<WithdrawResult, MarketError> {
    if existing.amount != amount {
        return Err(MarketError::IdempotencyConflict);
    }
    Ok(WithdrawResult { record: existing, replayed: true })
}

fn withdrawal_of(entry: LedgerEntry) -> Result<WithdrawalRecord, MarketError> {
    match entry {
        LedgerEntry::Withdrawal { user_id, withdrawal_id, amount, currency, available_after, at } => {
            Ok(WithdrawalRecord { withdrawal_id, user_id, amount, currency, available_after, at })
        }
        _ => Err(MarketError::internal("withdrawal key holds another kind of entry")),
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for WithdrawAffiliateReward<S, C> {
    type Request = WithdrawRequest;
    type Response = WithdrawResult;

    async fn process(&self, req: WithdrawRequest) -> Result<WithdrawResult, MarketError> {
        let d = &self.0;
        if !req.amount.is_positive() {
            return Err(MarketError::InvalidArgument("amount must be positive".into()));
        }
        let id = WithdrawalId::derive(&req.caller, &req.idempotency_key);
        let now = d.clock.now();
        let (existing, balance, config) =
            futures::join!(d.store.get_withdrawal(&req.caller, &id), read_balance(d, &req.caller, now), d.config.current());
        if let Some(existing) = existing? {
            return replay(existing, req.amount);
        }
        if req.amount < config.min_withdraw_amount {
            return Err(MarketError::BelowMinimum);
        }
        let (mut stats, mut due) = balance?;
        for _ in 0..BALANCE_ATTEMPTS {
            let now = d.clock.now();
            let s = spendable(&stats, &due, now)?;
            if s.total < req.amount {
                if due.len() >= MAX_FOLD_PER_TRANSACTION {
                    // More matured rewards than one transaction folds: fold them first.
                    MatureRewards(d.clone()).process(req.caller.clone()).await?;
                    (stats, due) = read_balance(d, &req.caller, d.clock.now()).await?;
                    continue;
                }
                // A twin request with the same key may have just spent the balance: a key
                // that succeeded always answers with its first outcome, never a refusal.
                if let Some(existing) = d.store.get_withdrawal(&req.caller, &id).await? {
                    return replay(existing, req.amount);
                }
                return Err(MarketError::InsufficientBalance);
            }
            let record = WithdrawalRecord {
                withdrawal_id: id.clone(),
                user_id: req.caller.clone(),
                amount: req.amount,
                currency: config.currency.clone(),
                available_after: s.total.checked_sub(req.amount)?,
                at: now,
            };
            let actor = Actor::User(req.caller.clone());
            let mut audit = vec![AuditRecord::new(&req.caller, now, AuditAction::Withdrawal, actor.clone(), id.as_str(), json!({
                "withdrawal_id": id, "amount": record.amount, "currency": record.currency,
                "available_before": s.total, "available_after": record.available_after,
                "idempotency_key": req.idempotency_key, "matured_now": s.folded,
            }))];
            if !s.matured.is_empty() {
                audit.push(maturation_audit(&req.caller, now, actor, &s.matured));
            }
            let available = s.folded.checked_sub(req.amount.minor()).ok_or(MarketError::Overflow)?;
            let change = BalanceChange {
                user: req.caller.clone(),
                expected_changes: s.changes,
                credited_apart: s.credited_apart,
                allow_negative: false,
                stats: StatsDelta { withdrawn_total: req.amount.minor(), pending: -s.folded, available, ..StatsDelta::default() },
                publish: balance_publication(config.lifecycle_events, &req.caller, &s.matured, LifecycleEvent::withdrawn(&record), now),
                sequence_as_read: SequenceAsRead::of(&stats),
                matured: s.matured,
                entry: LedgerEntry::from(&record),
                audit,
                at: now,
            };
            match d.store.change_balance(&change).await? {
                BalanceOutcome::Done => {
                    info!(user_id = %req.caller, withdrawal_id = %record.withdrawal_id, amount = %record.amount, "withdrawn");
                    return Ok(WithdrawResult { record, replayed: false });
                }
                BalanceOutcome::Replayed(entry) => return replay(withdrawal_of(entry)?, req.amount),
                BalanceOutcome::Changed => (stats, due) = read_balance(d, &req.caller, d.clock.now()).await?,
            }
        }
        Err(MarketError::Contention)
    }
}

// ---------------------------------------------------------------- AdjustBalance (admin)

pub struct Adjustment {
    pub user: UserId,
    /// Positive: credit; negative: debit.
    pub amount: Money,
    pub reason: String,
    pub idempotency_key: IdempotencyKey,
    /// A debit may leave `available` negative only with this set.
    pub allow_negative: bool,
}

pub struct AdjustResult {
    pub entry: LedgerEntry,
    pub replayed: bool,
}

pub const MAX_REASON_CHARS: usize = 500;

/// The events of a balance change: with lifecycle events on, the maturity it folds and then
/// its own, sequenced; off, only its own (a withdrawal's), unsequenced.
fn balance_publication(lifecycle: bool, user: &UserId, matured: &[Change], own: LifecycleEvent, now: Timestamp) -> Publication {
    if !lifecycle {
        return Publication { events: vec![own], sequenced: false };
    }
    let mut events: Vec<LifecycleEvent> = LifecycleEvent::matured(user, matured, now).into_iter().collect();
    events.push(own);
    Publication { events, sequenced: true }
}

/// An admin's free-text reason (adjustment, reversal, review), trimmed: 1 to
/// [`MAX_REASON_CHARS`] characters, else `InvalidArgument` naming `field`.
pub(super) fn admin_reason<'a>(field: &str, text: &'a str) -> Result<&'a str, MarketError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_REASON_CHARS {
        return Err(MarketError::InvalidArgument(format!("{field} must be 1 to {MAX_REASON_CHARS} characters")));
    }
    Ok(text)
}

pub struct AdjustBalance<S, C>(pub Deps<S, C>);

fn replay_adjustment(entry: LedgerEntry, amount: Money) -> Result<AdjustResult, MarketError> {
    match &entry {
        LedgerEntry::Adjustment { amount: first, .. } if *first == amount => Ok(AdjustResult { entry, replayed: true }),
        _ => Err(MarketError::IdempotencyConflict),
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for AdjustBalance<S, C> {
    type Request = AdminRequest<Adjustment>;
    type Response = AdjustResult;

    async fn process(&self, req: AdminRequest<Adjustment>) -> Result<AdjustResult, MarketError> {
        let d = &self.0;
        let a = &req.body;
        if a.amount.minor() == 0 {
            return Err(MarketError::InvalidArgument("amount must not be 0".into()));
        }
        let reason = admin_reason("reason", &a.reason)?;
        let id = AdjustmentId::derive(&a.user, &a.idempotency_key);
        let now = d.clock.now();
        let (existing, balance, config) = futures::join!(d.store.get_adjustment(&a.user, &id), read_balance(d, &a.user, now), d.config.current());
        if let Some(existing) = existing? {
            return replay_adjustment(existing, a.amount);
        }
        let allow_negative = a.allow_negative || a.amount.is_positive();
        let (mut stats, mut due) = balance?;
        for _ in 0..BALANCE_ATTEMPTS {
            let now = d.clock.now();
            let s = spendable(&stats, &due, now)?;
            let after = s.total.checked_add(a.amount)?;
            if after.minor() < 0 && !allow_negative {
                if let Some(existing) = d.store.get_adjustment(&a.user, &id).await? {
                    return replay_adjustment(existing, a.amount);
                }
                return Err(MarketError::InsufficientBalance);
            }
            let entry = LedgerEntry::Adjustment {
                user_id: a.user.clone(),
                adjustment_id: id.clone(),
                amount: a.amount,
                reason: reason.to_owned(),
                admin: req.admin.clone(),
                available_after: after,
                at: now,
            };
            let actor = Actor::Admin(req.admin.clone());
            let mut audit = vec![AuditRecord::new(&a.user, now, AuditAction::BalanceAdjusted, actor.clone(), id.as_str(), json!({
                "adjustment_id": id, "amount": a.amount, "reason": reason, "allow_negative": a.allow_negative,
                "available_before": s.total, "available_after": after, "request_id": req.request_id,
            }))];
            if !s.matured.is_empty() {
                audit.push(maturation_audit(&a.user, now, actor, &s.matured));
            }
            let available = s.folded.checked_add(a.amount.minor()).ok_or(MarketError::Overflow)?;
            let mut stats_delta = StatsDelta { pending: -s.folded, available, ..StatsDelta::default() };
            if a.amount.is_positive() {
                stats_delta.total_earned = a.amount.minor();
            } else {
                stats_delta.reversed_total = a.amount.minor().checked_neg().ok_or(MarketError::Overflow)?;
            }
            let change = BalanceChange {
                user: a.user.clone(),
                expected_changes: s.changes,
                credited_apart: s.credited_apart,
                allow_negative,
                publish: match LifecycleEvent::adjusted(&entry, &config.currency) {
                    Some(adjusted) if config.lifecycle_events => balance_publication(true, &a.user, &s.matured, adjusted, now),
                    _ => Publication::none(),
                },
                sequence_as_read: SequenceAsRead::of(&stats),
                matured: s.matured,
                stats: stats_delta,
                entry: entry.clone(),
                audit,
                at: now,
            };
            match d.store.change_balance(&change).await? {
                BalanceOutcome::Done => {
                    info!(admin = %req.admin, user_id = %a.user, adjustment_id = %id, amount = %a.amount, "balance adjusted");
                    return Ok(AdjustResult { entry, replayed: false });
                }
                BalanceOutcome::Replayed(entry) => return replay_adjustment(entry, a.amount),
                BalanceOutcome::Changed => (stats, due) = read_balance(d, &a.user, d.clock.now()).await?,
            }
        }
        Err(MarketError::Contention)
    }
}
