//! The checker of a chaos run: reads every item the run touched and verifies SPEC §6 exactly,
//! plus the model: each order's commission computed independently from what was sent.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;

use futures::StreamExt;

use market_domain::audit::AuditAction;
use market_domain::code::InviteCode;
use market_domain::group::GroupName;
use market_domain::ids::UserId;
use market_domain::model::{HistoryItem, LedgerEntry};
use market_domain::ports::prelude::*;

use super::lifecycle::Books;
use super::workload::CodeKind;
use super::world::{Answer, World};
use crate::money_violations;

/// `floor(amount × bps / 10000)`, computed here rather than trusted from the domain.
fn expected(amount: i64, bps: u32) -> i64 {
    (i128::from(amount) * i128::from(bps) / 10_000) as i64
}

/// The check is a few thousand point reads: made this many at once, not one after another.
const READS_AT_ONCE: usize = 16;

async fn read_all<K, T, Fut>(keys: impl IntoIterator<Item = K>, read: impl Fn(K) -> Fut) -> HashMap<K, T>
where
    K: Eq + Hash + Clone,
    Fut: Future<Output = T>,
{
    let reads = keys.into_iter().map(|k| {
        let read = read(k.clone());
        async move { (k, read.await) }
    });
    futures::stream::iter(reads).buffer_unordered(READS_AT_ONCE).collect().await
}

/// Arrival order in a run: what overtook its buyer's registration, and how it was decided.
#[derive(Debug, Default, Clone)]
pub struct Arrivals {
    pub overtaking_orders: usize,
    pub overtaking_refunds: usize,
    /// From the buyers' audit trails: waiting orders and refunds decided after the registration.
    pub decided_orders: usize,
    pub decided_refunds: usize,
    /// Of the decided orders, those whose reward was applied then.
    pub rewarded_late: usize,
    /// Waiting events left after the drain (each is a violation: every buyer registered).
    pub still_waiting: usize,
}

/// Every buyer's registration was delivered, so nothing may still wait; counts what waited.
async fn arrivals(w: &World, sent: &super::world::Sent, v: &mut Vec<String>) -> Arrivals {
    let store = &*w.deps.store;
    let mut a = Arrivals { overtaking_orders: sent.overtaking_orders, overtaking_refunds: sent.overtaking_refunds, ..Arrivals::default() };
    let read = read_all(sent.buyers.iter().map(|b| b.user.clone()), |u| {
        let u = sent.stored_as(&u);
        async move {
            let (waiting, trail) = futures::join!(store.parked_events(&u, 10), store.list_audit(u.as_str(), None, 500));
            (waiting, trail)
        }
    })
    .await;
    for (user, (waiting, trail)) in read {
        match waiting {
            Ok(waiting) if waiting.is_empty() => {}
            Ok(waiting) => {
                a.still_waiting += waiting.len();
                v.push(format!("{user}: {} events still wait for a registration that was delivered: {:?}", waiting.len(), waiting.iter().map(|p| p.event.key()).collect::<Vec<_>>()));
            }
            Err(e) => v.push(format!("{user}: waiting events unreadable: {e}")),
        }
        let Ok(trail) = trail else {
            v.push(format!("{user}: audit trail unreadable"));
            continue;
        };
        for r in trail.items.iter().filter(|r| r.action == AuditAction::WaitingEventDecided) {
            if r.details["kind"] == "refund" {
                a.decided_refunds += 1;
            } else {
                a.decided_orders += 1;
                if r.details["outcome"].as_str().is_some_and(|o| o.starts_with("reward: Applied")) {
                    a.rewarded_late += 1;
                }
            }
        }
    }
    a
}

/// Every violation found, the withdrawals in the ledger (for the outbound check), what
/// overtook its registration, and each inviter's books (for the lifecycle events' check).
pub async fn check(w: &World) -> (Vec<String>, HashSet<String>, Arrivals, HashMap<UserId, Books>) {
    let mut v = std::mem::take(&mut w.sent().violations);
    let store = &*w.deps.store;
    let sent = w.sent().clone();
    let global_max_codes = w.fallback.max_active_codes;

    // Buyers: one inviter at most, never themselves, only through a valid code they sent.
    let mut policies = HashMap::new();
    let mut invited: HashMap<UserId, u64> = HashMap::new();
    // An erased buyer's records are their pseudonym's.
    let stored = read_all(sent.buyers.iter().map(|b| b.user.clone()), |u| {
        let u = sent.stored_as(&u);
        async move { store.get_policy(&u).await.ok() }
    })
    .await;
    let codes: HashSet<String> = stored.values().flatten().flatten().filter_map(|p| p.invite_code.as_ref().map(|c| c.to_string())).chain(sent.created.iter().map(|(_, _, c)| c.clone())).collect();
    let stored_codes = read_all(codes.into_iter().filter_map(|c| InviteCode::parse(&c).ok()), |c| async move { store.get_code(&c).await }).await;
    for b in &sent.buyers {
        let Some(Some(policy)) = stored.get(&b.user).cloned() else {
            v.push(format!("{}: policy unreadable", b.user));
            continue;
        };
        let Some(p) = policy else {
            v.push(format!("{}: registered {} times, no policy stored", b.user, b.registrations.len()));
            continue;
        };
        if p.registered_at.is_none() {
            v.push(format!("{}: not registered after {} registration events", b.user, b.registrations.len()));
        }
        if let Some(inviter) = &p.inviter {
            *invited.entry(inviter.clone()).or_default() += 1;
            if inviter == &b.user {
                v.push(format!("{}: is their own inviter", b.user));
            }
            let code = p.invite_code.as_ref().map(|c| c.to_string());
            let via_valid = b.registrations.iter().any(|r| r.kind == CodeKind::Valid && r.code == code);
            if !via_valid {
                v.push(format!("{}: referred by {inviter} with {code:?}, not a valid code it registered with: {:?}", b.user, b.registrations));
            }
            if let Some(c) = p.invite_code.as_ref() {
                match stored_codes.get(c) {
                    Some(Ok(Some(rec))) if &rec.owner_id == inviter => {}
                    other => v.push(format!("{}: code {c} is not {inviter}'s: {other:?}", b.user)),
                }
            }
        }
        policies.insert(b.user.clone(), p);
    }

    // Orders: the commission of each, from what was sent.
    let mut earned_per_buyer: HashMap<UserId, u32> = HashMap::new();
    let commission_keys = sent.orders.iter().filter_map(|o| Some((policies.get(&o.buyer)?.inviter.clone()?, o.order.clone())));
    let commissions = read_all(commission_keys, |(inviter, order)| async move { store.get_commission(&inviter, &order).await }).await;
    // The rule versions the group-decided rewards recorded, as stored.
    let versions: HashSet<(GroupName, u64)> = commissions
        .values()
        .filter_map(|c| c.as_ref().ok()?.as_ref()?.earned.as_ref()?.terms.clone())
        .filter(|t| !t.group.is_default())
        .map(|t| (t.group, t.version))
        .collect();
    let versions = read_all(versions, |(g, n)| async move { store.get_group_version(&g, n).await }).await;
    let mut cap_use = HashMap::new();
    let mut bounties: HashMap<UserId, u32> = HashMap::new();
    let mut by_group = 0;
    for o in &sent.orders {
        let Some(inviter) = policies.get(&o.buyer).and_then(|p| p.inviter.clone()) else { continue };
        let i = w.inviters.iter().position(|u| sent.stored_as(u) == inviter);
        let c = match commissions.get(&(inviter.clone(), o.order.clone())) {
            Some(Ok(c)) => c.clone(),
            None => {
                v.push(format!("order {}: commission not read", o.order));
                continue;
            }
            Some(Err(e)) => {
                v.push(format!("order {}: commission unreadable: {e}", o.order));
                continue;
            }
        };
        match c.as_ref().and_then(|c| c.earned.as_ref().map(|e| (c, e))) {
            Some((c, e)) if e.terms.as_ref().is_some_and(|t| !t.group.is_default()) => {
                // Decided by the run's group: recomputed from the version it recorded.
                *earned_per_buyer.entry(o.buyer.clone()).or_default() += 1;
                by_group += 1;
                let t = e.terms.as_ref().expect("terms");
                let Some(Ok(Some(group))) = versions.get(&(t.group.clone(), t.version)) else {
                    v.push(format!("order {}: group {} v{} not readable", o.order, t.group, t.version));
                    continue;
                };
                if t.own_rate && !i.and_then(|i| sent.rates.get(&i)).is_some_and(|r| r.contains(&u32::from(e.commission_bps.get()))) {
                    v.push(format!("order {}: own rate {} was never {inviter}'s", o.order, e.commission_bps.get()));
                }
                v.extend(super::rules::check_terms(o, e, t, &group.rules, &mut cap_use));
                if t.bounty.is_some() {
                    *bounties.entry(o.buyer.clone()).or_default() += 1;
                }
                let refunded: i64 = o.refunds.iter().map(|(_, a)| a).sum();
                let net = super::rules::net(e, refunded);
                if e.order_amount.minor() != o.amount || c.amount().minor() != net {
                    v.push(format!("order {}: commission {} of {:?} after refunds {refunded} of {}, expected {net}", o.order, c.amount().minor(), e.order_amount, o.amount));
                }
            }
            Some((c, e)) => {
                *earned_per_buyer.entry(o.buyer.clone()).or_default() += 1;
                let bps = u32::from(e.commission_bps.get());
                let mut rates: HashSet<u32> = sent.global_rates.clone();
                if let Some(i) = i {
                    rates.extend(sent.rates.get(&i).into_iter().flatten());
                }
                if !rates.contains(&bps) {
                    v.push(format!("order {}: rate {bps} was never in force for {inviter} ({rates:?})", o.order));
                }
                if e.order_amount.minor() != o.amount || e.reward.minor() != expected(o.amount, bps) {
                    v.push(format!("order {}: earned {:?} on {:?}, sent {} → {}", o.order, e.reward, e.order_amount, o.amount, expected(o.amount, bps)));
                }
                let refunded: i64 = o.refunds.iter().map(|(_, a)| a).sum();
                let net = expected(o.amount - refunded, bps);
                if c.amount().minor() != net {
                    v.push(format!("order {}: commission {} after refunds {refunded} of {}, expected {net}", o.order, c.amount().minor(), o.amount));
                }
                let ids: Vec<String> = c.refunds.iter().map(|r| r.refund_id.to_string()).collect();
                let want: Vec<String> = o.refunds.iter().map(|(id, _)| id.clone()).collect();
                if ids.len() != want.len() || want.iter().any(|id| !ids.contains(id)) {
                    v.push(format!("order {}: refunds applied {ids:?}, sent {want:?}", o.order));
                }
            }
            None => {
                // Declined rightly only if the inviter was switched off at some point, or the
                // buyer reached a trigger limit that was in force at some point.
                let disabled = i.is_some_and(|i| sent.disabled_ever.contains(&i));
                let triggered = policies.get(&o.buyer).map_or(0, |p| p.rewards_triggered);
                let limited = i.and_then(|i| sent.min_limit.get(&i)).is_some_and(|l| triggered >= *l);
                if !disabled && !limited {
                    v.push(format!("order {} of {} (inviter {inviter}, {triggered} rewarded) has no commission", o.order, o.buyer));
                }
            }
        }
    }
    // Caps: no referred user's rewards in a window above the cap; one bounty per referred user.
    for ((buyer, window), (used, cap)) in &cap_use {
        if used > cap {
            v.push(format!("{buyer}: {used} earned in cap window {window}, over the cap {cap}"));
        }
    }
    for (buyer, n) in bounties.iter().filter(|(_, n)| **n > 1) {
        v.push(format!("{buyer}: {n} sign-up bounties"));
    }
    w.sent().group_commissions = by_group;
    // Invariant 1: the trigger count is the number of the buyer's rewarded orders.
    for (buyer, p) in &policies {
        let earned = earned_per_buyer.get(buyer).copied().unwrap_or(0);
        if p.inviter.is_some() && p.rewards_triggered != earned {
            v.push(format!("{buyer}: rewards_triggered {} but {earned} rewarded orders", p.rewards_triggered));
        }
    }

    // Keyed code creations: every answer to one key is one code; all codes are distinct.
    let mut by_key: HashMap<(usize, String), HashSet<String>> = HashMap::new();
    let mut owners: HashMap<String, usize> = HashMap::new();
    for (owner, key, code) in &sent.created {
        if let Some(k) = key {
            by_key.entry((*owner, k.clone())).or_default().insert(code.clone());
        }
        if let Some(o) = owners.insert(code.clone(), *owner) {
            if o != *owner {
                v.push(format!("code {code} answered to two owners"));
            }
        }
    }
    for ((owner, key), codes) in by_key {
        if codes.len() != 1 {
            v.push(format!("{}: key {key} answered {codes:?}", w.inviters[owner]));
        }
    }
    for (code, owner) in &owners {
        match InviteCode::parse(code) {
            Ok(c) => match stored_codes.get(&c) {
                Some(Ok(Some(rec))) if rec.owner_id == sent.stored_as(&w.inviters[*owner]) => {}
                other => v.push(format!("code {code}: answered to {} but stored {other:?}", w.inviters[*owner])),
            },
            Err(e) => v.push(format!("code {code} answered, not a code: {e}")),
        }
    }

    // Inviters: money invariants, codes within the limit, referrals counted.
    let mut withdrawn_ids = HashSet::new();
    let mut books = HashMap::new();
    // An erased inviter's books are their pseudonym's.
    let stored: Vec<UserId> = w.inviters.iter().map(|u| sent.stored_as(u)).collect();
    let mut accounts = read_all(stored.iter().cloned(), |user| async move {
        let (money, codes) = futures::join!(money_violations(store, &user), store.list_active_codes(&user));
        (money, codes.map(|c| c.len() as u64).unwrap_or(u64::MAX))
    })
    .await;
    for (i, user) in stored.iter().enumerate() {
        let Some((money, active)) = accounts.remove(user) else { continue };
        let (stats, history, money) = match money {
            Ok(r) => r,
            Err(e) => {
                v.push(format!("{user}: unreadable: {e}"));
                continue;
            }
        };
        v.extend(money);
        books.insert(user.clone(), Books { stats: stats.clone(), history: history.clone() });
        let max = u64::from(sent.max_codes.get(&i).copied().unwrap_or(0).max(global_max_codes));
        if active > max || active != u64::from(stats.active_codes) {
            v.push(format!("{user}: {active} active codes, counter {}, max ever {max}", stats.active_codes));
        }
        let counted = invited.get(user).copied().unwrap_or(0);
        if stats.invited_count != counted {
            v.push(format!("{user}: invited_count {} but {counted} referred users", stats.invited_count));
        }
        // Withdrawals: the ledger holds exactly the ones answered, each key's answers agree.
        let ledger: HashSet<String> = history
            .iter()
            .filter_map(|h| match h {
                HistoryItem::Entry(LedgerEntry::Withdrawal { withdrawal_id, .. }) => Some(withdrawal_id.to_string()),
                _ => None,
            })
            .collect();
        let mut answered = HashSet::new();
        for ((u, key), attempts) in sent.withdrawals.iter().filter(|((u, _), _)| *u == i) {
            let done: Vec<_> = attempts.iter().filter(|a| matches!(a.answer, Answer::Withdrawn { .. })).collect();
            if let Some(first) = done.first() {
                if done.iter().any(|a| a.answer != first.answer) {
                    v.push(format!("{user} key k{key}: different successes {done:?}"));
                }
                let first_end = done.iter().map(|a| a.end).min().expect("one");
                if attempts.iter().any(|a| a.answer == Answer::Insufficient && a.start > first_end) {
                    v.push(format!("{user} key k{key}: refused after it succeeded: {attempts:?}"));
                }
            }
            for a in attempts {
                match &a.answer {
                    Answer::Withdrawn { id, .. } => {
                        answered.insert(id.clone());
                    }
                    Answer::Insufficient => {}
                    Answer::Other(e) => v.push(format!("{user} key k{key} (user {u}): answered {e}")),
                }
            }
        }
        if ledger != answered {
            v.push(format!("{user}: ledger withdrawals {ledger:?} ≠ answered {answered:?}"));
        }
        withdrawn_ids.extend(ledger);
    }
    let arrivals = arrivals(w, &sent, &mut v).await;
    erased_ids_gone(w, &sent, &mut v).await;
    (v, withdrawn_ids, arrivals, books)
}

/// Erasure: no item of any table holds an erased buyer's id (as a whole id: not a prefix of
/// another), however many of their events came after it. A test may Scan.
async fn erased_ids_gone(w: &World, sent: &super::world::Sent, v: &mut Vec<String>) {
    if sent.erased.is_empty() {
        return;
    }
    let t = w.deps.store.tables().clone();
    let names = |text: &str, id: &str| text.match_indices(id).any(|(at, _)| !text[at + id.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()));
    // The outbox keeps an erased affiliate's relayed events until its TTL (README); a buyer's
    // id is never in one.
    let buyers: Vec<&UserId> = sent.erased.keys().filter(|u| !w.inviters.contains(u)).collect();
    for table in [&t.policy, &t.stats, &t.codes, &t.ledger, &t.audit, &t.parked, &t.outbox] {
        let mut start = None;
        loop {
            let out = match w.deps.store.client().scan().table_name(table).set_exclusive_start_key(start).send().await {
                Ok(out) => out,
                Err(e) => {
                    v.push(format!("{table}: unreadable for the erasure check: {e}"));
                    break;
                }
            };
            for item in out.items() {
                let text = format!("{item:?}");
                let ids: Vec<&UserId> = if *table == t.outbox { buyers.clone() } else { sent.erased.keys().collect() };
                for id in ids.into_iter().filter(|id| names(&text, id.as_str())) {
                    v.push(format!("{table}: an item still holds erased {id}: {text}"));
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
}
