//! Per-user affiliate policy and its resolution against the global configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::code::InviteCode;
use crate::group::GroupName;
use crate::ledger::HoldReason;
use crate::referral::ReferralRejection;
use crate::ids::{EventId, UserId};
use crate::money::Bps;

pub use crate::limits::{TriggerLimit, MAX_ACTIVE_CODES_CAP};
use crate::time::Timestamp;

/// A user's stored policy. `None` overrides mean "use the global default".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffiliatePolicy {
    pub user_id: UserId,
    /// Who referred this user; written once, at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inviter: Option<UserId>,
    /// The code this user registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<InviteCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission_bps: Option<Bps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_limit: Option<TriggerLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_codes: Option<u32>,
    /// Absent = enabled; an admin switches it off explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate_enabled: Option<bool>,
    /// How many of this user's orders already rewarded their inviter.
    #[serde(default)]
    pub rewards_triggered: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Timestamp>,
    /// The event that registered this user, and why its code gave no referral: a retry of
    /// that event (a lost response) gets the first outcome again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_event: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_rejected: Option<ReferralRejection>,
    /// Set at registration when an abuse rule flagged this referral: the rewards of this
    /// user's orders are held for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<HoldReason>,
    /// On an erased user's policy (under their pseudonym): when the erasure completed, and
    /// the user's `available` then (what a forfeit debits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at_erasure: Option<crate::money::Money>,
    /// The reward group this user earns under as an inviter (`None`: the default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupName>,
    /// As a referred user: what their orders earned their inviter per window of the
    /// inviter's cap (`rules::capped`), written with each capped reward.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cap_used: BTreeMap<String, i64>,
}

impl AffiliatePolicy {
    pub fn new(user_id: UserId) -> Self {
        AffiliatePolicy {
            user_id,
            inviter: None,
            invite_code: None,
            commission_bps: None,
            trigger_limit: None,
            max_active_codes: None,
            affiliate_enabled: None,
            rewards_triggered: 0,
            registered_at: None,
            registration_event: None,
            registration_rejected: None,
            review_reason: None,
            erased_at: None,
            available_at_erasure: None,
            group: None,
            cap_used: BTreeMap::new(),
        }
    }
}
