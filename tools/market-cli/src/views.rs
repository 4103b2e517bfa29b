//! Each answer of the API as a person reads it and as a script reads it (JSON).
//! Money stays in minor units in JSON (with its currency); people see it formatted.

use market_proto::v1::{history_entry, ledger_entry, trigger_limit, *};
use serde_json::{json, Value};

use crate::render::{bps, fields, money, table, time};

/// Something the CLI can print both ways.
pub struct View {
    pub json: Value,
    pub text: String,
}

fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |_| Value::String(time(t)))
}

fn limit_of(limit: Option<&TriggerLimit>) -> String {
    match limit.and_then(|l| l.limit.as_ref()) {
        Some(trigger_limit::Limit::Count(n)) => n.to_string(),
        Some(trigger_limit::Limit::Unlimited(_)) => "unlimited".into(),
        None => "default".into(),
    }
}

fn effective_limit(p: &EffectivePolicy) -> String {
    match p.trigger_limit {
        Some(effective_policy::TriggerLimit::TriggerLimitCount(n)) => n.to_string(),
        Some(effective_policy::TriggerLimit::TriggerLimitUnlimited(_)) => "unlimited".into(),
        None => "-".into(),
    }
}

fn codes_table(codes: &[InviteCode]) -> String {
    let rows: Vec<Vec<String>> = codes
        .iter()
        .map(|c| vec![c.code.clone(), time(c.created_at.as_ref()), time(c.expires_at.as_ref()), c.registrations.to_string()])
        .collect();
    table(&["CODE", "CREATED", "EXPIRES", "REGISTRATIONS"], &rows)
}

fn codes_json(codes: &[InviteCode]) -> Value {
    codes
        .iter()
        .map(|c| json!({"code": c.code, "created_at": ts(c.created_at.as_ref()), "expires_at": ts(c.expires_at.as_ref()), "registrations": c.registrations}))
        .collect()
}

pub fn stats(r: &GetAffiliateStatsResponse) -> View {
    let s = r.stats.clone().unwrap_or_default();
    let p = r.policy.unwrap_or_default();
    let c = s.currency.as_str();
    let text = fields(&[
        ("pending", format!("{} (next release {})", money(s.pending, c), time(s.next_release_at.as_ref()))),
        ("available", money(s.available, c)),
        ("held for review", money(s.held, c)),
        ("withdrawn", money(s.withdrawn_total, c)),
        ("total earned", money(s.total_earned, c)),
        ("earned by level", s.earned_by_level.iter().map(|m| money(*m, c)).collect::<Vec<_>>().join(" / ")),
        ("reversed", money(s.reversed_total, c)),
        ("invited users", s.invited_count.to_string()),
        ("rewarded orders", s.rewarded_orders.to_string()),
        ("rate", bps(p.commission_bps)),
        ("trigger limit", effective_limit(&p)),
        ("codes", format!("{} of {}", s.active_codes, p.max_active_codes)),
        ("affiliate", if p.affiliate_enabled { "enabled" } else { "disabled" }.into()),
        ("group", group_line(r.group.as_ref())),
        ("tier", tier_line(r.group.as_ref())),
    ]) + "\n\n"
        + &codes_table(&r.codes);
    let json = json!({
        "currency": c, "pending": s.pending, "next_release_at": ts(s.next_release_at.as_ref()), "available": s.available, "held": s.held,
        "withdrawn": s.withdrawn_total, "total_earned": s.total_earned, "earned_by_level": s.earned_by_level, "reversed": s.reversed_total,
        "invited_users": s.invited_count, "rewarded_orders": s.rewarded_orders, "active_codes": s.active_codes,
        "policy": {"commission_bps": p.commission_bps, "trigger_limit": effective_limit(&p), "max_active_codes": p.max_active_codes, "affiliate_enabled": p.affiliate_enabled},
        "codes": codes_json(&r.codes), "updated_at": ts(s.updated_at.as_ref()),
        "group": r.group.as_ref().map(|g| json!({
            "name": g.group.as_ref().map(|x| x.name.clone()), "version": g.group.as_ref().map(|x| x.version),
            "own_commission_bps": g.own_commission_bps, "paying_referrals": g.paying_referrals,
            "current_tier": g.current_tier, "next_tier": g.next_tier, "paying_referrals_to_next_tier": g.paying_referrals_to_next_tier,
            "earned_to_next_tier": g.earned_to_next_tier, "earned_recently": g.earned_recently,
        })),
    });
    View { json, text }
}

/// "vip v3: 10 %, flat 5.00 bounty, cap 50.00 a month" — what the affiliate's group pays.
fn group_line(g: Option<&AffiliateGroup>) -> String {
    let Some(group) = g.and_then(|g| g.group.as_ref()) else { return "-".into() };
    let Ok(rules) = market_proto::rules::rules_from_proto(group.rules.as_ref()) else { return group.name.clone() };
    let mut parts = vec![rules.payout.describe()];
    parts.extend(rules.modifiers.iter().map(|m| format!("{}: {}", m.name, m.payout.describe())));
    if let Some(b) = rules.bounty {
        parts.push(format!("bounty {}", b.amount.minor()));
    }
    if let Some(c) = rules.cap {
        parts.push(format!("cap {} per {:?}", c.amount.minor(), c.interval).to_lowercase());
    }
    format!("{} v{}: {}", group.name, group.version, parts.join(", "))
}

fn tier_line(g: Option<&AffiliateGroup>) -> String {
    let Some(g) = g else { return "-".into() };
    let current = if g.current_tier.is_empty() { "none".to_owned() } else { g.current_tier.clone() };
    match g.next_tier.as_str() {
        "" => format!("{current} ({} paying referrals)", g.paying_referrals),
        next => {
            let mut more = Vec::new();
            if g.paying_referrals_to_next_tier > 0 {
                more.push(format!("{} more paying referrals", g.paying_referrals_to_next_tier));
            }
            if g.earned_to_next_tier > 0 {
                more.push(format!("{} more earned in 30 days", g.earned_to_next_tier));
            }
            format!("{current} ({} paying referrals; {} for {next})", g.paying_referrals, more.join(" and "))
        }
    }
}

pub fn codes(codes: &[InviteCode]) -> View {
    View { json: json!({"codes": codes_json(codes)}), text: codes_table(codes) }
}

pub fn created(code: &InviteCode) -> View {
    View { json: codes_json(std::slice::from_ref(code))[0].clone(), text: format!("created {} (expires {})", code.code, time(code.expires_at.as_ref())) }
}

pub fn deleted(code: &str, r: &DeleteInviteCodeResponse) -> View {
    let text = if r.already_inactive { format!("{code} was already inactive") } else { format!("deleted {code}") };
    View { json: json!({"code": code, "already_inactive": r.already_inactive}), text }
}

pub fn withdrawal(r: &WithdrawAffiliateRewardResponse) -> View {
    let c = r.currency.as_str();
    let replayed = if r.replayed { " (replayed: the first answer to this key; nothing paid twice)" } else { "" };
    let text = format!(
        "withdrew {} as {} at {}; available now {}{replayed}",
        money(r.amount, c),
        r.withdrawal_id,
        time(r.created_at.as_ref()),
        money(r.available_after, c)
    );
    let json = json!({"withdrawal_id": r.withdrawal_id, "amount": r.amount, "currency": c, "available_after": r.available_after, "at": ts(r.created_at.as_ref()), "replayed": r.replayed});
    View { json, text }
}

fn status_name(status: i32) -> &'static str {
    match RewardStatus::try_from(status) {
        Ok(RewardStatus::Pending) => "pending",
        Ok(RewardStatus::Available) => "available",
        Ok(RewardStatus::PartiallyReversed) => "partially reversed",
        Ok(RewardStatus::Reversed) => "reversed",
        Ok(RewardStatus::HeldForReview) => "held for review",
        _ => "-",
    }
}

/// One row (time, kind, amount, detail) and its JSON, for the history and the ledger.
fn entry_row(kind: &str, at: Option<&prost_types::Timestamp>, amount: String, detail: String) -> Vec<String> {
    vec![time(at), kind.into(), amount, detail]
}

pub fn history(entries: &[HistoryEntry], currency: &str) -> View {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for e in entries {
        match &e.entry {
            Some(history_entry::Entry::Reward(r)) => {
                let c = if r.currency.is_empty() { currency } else { &r.currency };
                let level = if r.level > 1 { format!(" (level {})", r.level) } else { String::new() };
                let detail = format!("order {} of {} at {}{level}; {}", r.order_id, money(r.order_amount, c), bps(r.commission_bps), status_name(r.status));
                rows.push(entry_row("reward", r.earned_at.as_ref(), money(r.reward, c), detail));
                json.push(json!({"kind": "reward", "order_id": r.order_id, "order_amount": r.order_amount, "commission_bps": r.commission_bps, "level": r.level.max(1), "reward": r.reward, "outstanding": r.amount, "refunded_amount": r.refunded_amount, "status": status_name(r.status), "earned_at": ts(r.earned_at.as_ref()), "pending_until": ts(r.pending_until.as_ref()), "currency": c}));
            }
            Some(history_entry::Entry::Withdrawal(w)) => {
                let c = if w.currency.is_empty() { currency } else { &w.currency };
                rows.push(entry_row("withdrawal", w.at.as_ref(), money(-w.amount, c), w.withdrawal_id.clone()));
                json.push(json!({"kind": "withdrawal", "withdrawal_id": w.withdrawal_id, "amount": w.amount, "available_after": w.available_after, "at": ts(w.at.as_ref()), "currency": c}));
            }
            Some(history_entry::Entry::Reversal(r)) => {
                rows.push(entry_row("reversal", r.at.as_ref(), money(-r.amount, currency), format!("order {} ({}, from {})", r.order_id, r.cause, r.taken_from)));
                json.push(json!({"kind": "reversal", "order_id": r.order_id, "reversal_id": r.reversal_id, "cause": r.cause, "amount": r.amount, "taken_from": r.taken_from, "at": ts(r.at.as_ref()), "note": r.note}));
            }
            Some(history_entry::Entry::Adjustment(a)) => {
                rows.push(entry_row("adjustment", a.at.as_ref(), money(a.amount, currency), a.reason.clone()));
                json.push(json!({"kind": "adjustment", "adjustment_id": a.adjustment_id, "amount": a.amount, "reason": a.reason, "available_after": a.available_after, "at": ts(a.at.as_ref())}));
            }
            None => {}
        }
    }
    View { json: Value::Array(json), text: table(&["AT", "KIND", "AMOUNT", "DETAIL"], &rows) }
}

/// The admin ledger has the same entries, rewards with the referred user.
pub fn ledger(entries: &[LedgerEntry], currency: &str) -> View {
    let as_history: Vec<HistoryEntry> = entries
        .iter()
        .filter_map(|e| {
            let entry = match e.entry.clone()? {
                ledger_entry::Entry::Reward(r) => history_entry::Entry::Reward(RewardHistoryEntry {
                    order_id: format!("{} (buyer {})", r.order_id, r.referred_user_id),
                    order_amount: r.order_amount,
                    commission_bps: r.commission_bps,
                    reward: r.reward,
                    amount: r.amount,
                    status: r.status,
                    earned_at: r.at,
                    pending_until: r.pending_until,
                    refunded_amount: r.refunded_amount,
                    currency: r.currency,
                    level: r.level,
                    rule: r.rule,
                    bounty: r.bounty,
                }),
                ledger_entry::Entry::Withdrawal(w) => history_entry::Entry::Withdrawal(w),
                ledger_entry::Entry::Reversal(r) => history_entry::Entry::Reversal(r),
                ledger_entry::Entry::Adjustment(a) => history_entry::Entry::Adjustment(a),
            };
            Some(HistoryEntry { entry: Some(entry) })
        })
        .collect();
    history(&as_history, currency)
}

pub fn audit(records: &[AuditRecord]) -> View {
    let rows: Vec<Vec<String>> = records.iter().map(|a| vec![time(a.at.as_ref()), a.action.clone(), a.actor.clone(), a.request_id.clone(), a.details_json.clone()]).collect();
    let json = records
        .iter()
        .map(|a| {
            let details = serde_json::from_str::<Value>(&a.details_json).unwrap_or(Value::String(a.details_json.clone()));
            json!({"at": ts(a.at.as_ref()), "action": a.action, "actor": a.actor, "request_id": a.request_id, "details": details})
        })
        .collect();
    View { json: Value::Array(json), text: table(&["AT", "ACTION", "ACTOR", "REQUEST", "DETAILS"], &rows) }
}

pub fn policy(p: &UserPolicy) -> View {
    let o = p.overrides.clone().unwrap_or_default();
    let e = p.effective.unwrap_or_default();
    let or_default = |v: Option<String>| v.unwrap_or_else(|| "default".into());
    let text = fields(&[
        ("user", p.user_id.clone()),
        ("inviter", if p.inviter.is_empty() { "-".into() } else { p.inviter.clone() }),
        ("registered", time(p.registered_at.as_ref())),
        ("rewards triggered", p.rewards_triggered.to_string()),
        ("rate", format!("{} (override: {})", bps(e.commission_bps), or_default(o.commission_bps.map(bps)))),
        ("trigger limit", format!("{} (override: {})", effective_limit(&e), limit_of(o.trigger_limit.as_ref()))),
        ("max codes", format!("{} (override: {})", e.max_active_codes, or_default(o.max_active_codes.map(|n| n.to_string())))),
        ("affiliate", format!("{} (override: {})", if e.affiliate_enabled { "enabled" } else { "disabled" }, or_default(o.affiliate_enabled.map(|b| b.to_string())))),
        ("group", or_default(o.group.clone())),
    ]);
    let json = json!({
        "user_id": p.user_id, "inviter": p.inviter, "registered_at": ts(p.registered_at.as_ref()), "rewards_triggered": p.rewards_triggered,
        "effective": {"commission_bps": e.commission_bps, "trigger_limit": effective_limit(&e), "max_active_codes": e.max_active_codes, "affiliate_enabled": e.affiliate_enabled},
        "overrides": {"commission_bps": o.commission_bps, "trigger_limit": o.trigger_limit.as_ref().map(|l| limit_of(Some(l))), "max_active_codes": o.max_active_codes, "affiliate_enabled": o.affiliate_enabled, "group": o.group},
    });
    View { json, text }
}

pub fn config(c: &MarketConfig) -> View {
    let text = fields(&[
        ("enabled", c.enabled.to_string()),
        ("currency", c.currency.clone()),
        ("default rate", bps(c.default_commission_bps)),
        ("default trigger limit", limit_of(c.default_trigger_limit.as_ref())),
        ("max active codes", c.max_active_codes.to_string()),
        ("min withdrawal", money(c.min_withdraw_amount, &c.currency)),
        ("code expiry", if c.code_expiry_days == 0 { "never".into() } else { format!("{} days", c.code_expiry_days) }),
        ("code retention", format!("{} days", c.code_retention_days)),
        ("holding period", format!("{} days", c.holding_period_days)),
        ("levels 2, 3", if c.level_bps.is_empty() { "none (single level)".into() } else { c.level_bps.iter().map(|b| bps(*b)).collect::<Vec<_>>().join(", ") }),
        ("code checks per address", if c.resolve_per_hour == 0 { "unlimited".into() } else { format!("{} per hour", c.resolve_per_hour) }),
        ("codes per user per day", if c.codes_created_per_day == 0 { "unlimited".into() } else { c.codes_created_per_day.to_string() }),
        ("review referrals beyond", if c.review_referrals_per_hour == 0 { "off".into() } else { format!("{} per inviter per hour", c.review_referrals_per_hour) }),
        ("review orders within", if c.review_min_seconds == 0 { "off".into() } else { format!("{} s of registration", c.review_min_seconds) }),
        ("orders wait for sign-up", if c.registration_wait_days == 0 { "no".into() } else { format!("{} days", c.registration_wait_days) }),
        ("lifecycle events", if c.lifecycle_events { "published".into() } else { "off (withdrawals only)".into() }),
        // Each change through the admin API writes the next; its audit records name it.
        ("version", c.version.to_string()),
    ]);
    let json = json!({
        "enabled": c.enabled, "currency": c.currency, "default_commission_bps": c.default_commission_bps,
        "default_trigger_limit": limit_of(c.default_trigger_limit.as_ref()), "max_active_codes": c.max_active_codes,
        "min_withdraw_amount": c.min_withdraw_amount, "code_expiry_days": c.code_expiry_days,
        "code_retention_days": c.code_retention_days, "holding_period_days": c.holding_period_days,
        "level_bps": c.level_bps, "resolve_per_hour": c.resolve_per_hour, "codes_created_per_day": c.codes_created_per_day,
        "review_referrals_per_hour": c.review_referrals_per_hour, "review_min_seconds": c.review_min_seconds,
        "registration_wait_days": c.registration_wait_days, "lifecycle_events": c.lifecycle_events, "version": c.version,
    });
    View { json, text }
}

pub fn adjusted(r: &AdjustBalanceResponse, currency: &str) -> View {
    let replayed = if r.replayed { " (replayed)" } else { "" };
    View {
        json: json!({"adjustment_id": r.adjustment_id, "amount": r.amount, "available_after": r.available_after, "at": ts(r.at.as_ref()), "replayed": r.replayed}),
        text: format!("adjusted by {} as {}; available now {}{replayed}", money(r.amount, currency), r.adjustment_id, money(r.available_after, currency)),
    }
}

/// The review queue: one row per held reward, oldest first.
pub fn held(rewards: &[HeldReward]) -> View {
    let rows: Vec<Vec<String>> = rewards
        .iter()
        .map(|h| {
            let r = h.reward.clone().unwrap_or_default();
            vec![time(r.at.as_ref()), h.user_id.clone(), r.order_id, r.referred_user_id, r.level.to_string(), money(r.amount, &r.currency), h.reason.clone()]
        })
        .collect();
    let json = rewards
        .iter()
        .map(|h| {
            let r = h.reward.clone().unwrap_or_default();
            json!({"user_id": h.user_id, "order_id": r.order_id, "buyer": r.referred_user_id, "level": r.level, "amount": r.amount,
                   "currency": r.currency, "earned_at": ts(r.at.as_ref()), "reason": h.reason})
        })
        .collect();
    View { json: Value::Array(json), text: table(&["EARNED", "EARNER", "ORDER", "BUYER", "LEVEL", "HELD", "REASON"], &rows) }
}

pub fn reviewed(r: &ReviewRewardResponse) -> View {
    let w = r.reward.clone().unwrap_or_default();
    let replayed = if r.replayed { " (replayed)" } else { "" };
    let decision = if r.approved { "approved" } else { "rejected" };
    View {
        json: json!({"order_id": w.order_id, "approved": r.approved, "status": status_name(w.status), "amount": w.amount, "replayed": r.replayed}),
        text: format!("{decision} order {}: now {} ({}){replayed}", w.order_id, status_name(w.status), money(w.amount, &w.currency)),
    }
}

pub fn reversed(r: &ReverseRewardResponse, currency: &str) -> View {
    let replayed = if r.replayed { " (replayed)" } else { "" };
    let order = r.reward.as_ref().map(|w| w.order_id.clone()).unwrap_or_default();
    View { json: json!({"order_id": order, "reversed": r.reversed, "replayed": r.replayed}), text: format!("reversed {} of order {order}{replayed}", money(r.reversed, currency)) }
}
