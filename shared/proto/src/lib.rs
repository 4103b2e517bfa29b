//! The `helium.market.v1` protocol: generated messages, server and client, plus the
//! conversions from domain records (the domain never sees protobuf types).

pub mod admin;
pub mod codec;
pub mod history;
pub mod rules;

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("helium.market.v1");
}

/// The encoded `FileDescriptorSet` of helium.market.v1 (both services, every message).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/helium_market_descriptor.bin"));

use market_domain::model::{AffiliateStats, InviteCodeRecord, WithdrawalRecord};
use market_domain::money::Currency;
use market_domain::policy::TriggerLimit;
use market_domain::rules::EffectivePolicy;
use market_domain::time::Timestamp;

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

impl From<&InviteCodeRecord> for v1::InviteCode {
    fn from(c: &InviteCodeRecord) -> Self {
        v1::InviteCode {
            code: c.code.to_string(),
            created_at: Some(timestamp(c.created_at)),
            expires_at: c.expires_at.map(timestamp),
            registrations: c.registrations,
        }
    }
}

impl From<&EffectivePolicy> for v1::EffectivePolicy {
    fn from(p: &EffectivePolicy) -> Self {
        use v1::effective_policy::TriggerLimit as Pb;
        v1::EffectivePolicy {
            commission_bps: p.commission_bps.into(),
            trigger_limit: Some(match p.trigger_limit {
                TriggerLimit::Limited(n) => Pb::TriggerLimitCount(n.get()),
                TriggerLimit::Unlimited => Pb::TriggerLimitUnlimited(true),
            }),
            max_active_codes: p.max_active_codes,
            affiliate_enabled: p.affiliate_enabled,
        }
    }
}

pub fn stats(s: &AffiliateStats, currency: &Currency) -> v1::AffiliateStats {
    v1::AffiliateStats {
        invited_count: s.invited_count,
        rewarded_orders: s.rewarded_orders,
        total_earned: s.total_earned.minor(),
        available: s.available.minor(),
        withdrawn_total: s.withdrawn_total.minor(),
        active_codes: s.active_codes,
        updated_at: s.updated_at.map(timestamp),
        currency: currency.to_string(),
        pending: s.pending.minor(),
        reversed_total: s.reversed_total.minor(),
        next_release_at: None,
        earned_by_level: s.earned_by_level().iter().map(|m| m.minor()).collect(),
        held: s.held.minor(),
    }
}

pub fn withdrawal(w: &WithdrawalRecord, replayed: bool) -> v1::WithdrawAffiliateRewardResponse {
    v1::WithdrawAffiliateRewardResponse {
        withdrawal_id: w.withdrawal_id.to_string(),
        amount: w.amount.minor(),
        currency: w.currency.to_string(),
        available_after: w.available_after.minor(),
        created_at: Some(timestamp(w.at)),
        replayed,
    }
}
