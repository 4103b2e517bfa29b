//! The audit trail: who changed what, when, and on behalf of which request or event. The
//! processors build the records; the store writes them in the same transaction as the
//! change they describe (configuration lives in Redis, so its record follows the write).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::UserId;
use crate::time::Timestamp;

/// The trail of the global configuration (`#` never occurs in a user id).
pub const MARKET_SUBJECT: &str = "#market";

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Actor {
    /// The authenticated user, through the user API.
    User(UserId),
    /// An administrator, through the admin API.
    Admin(UserId),
    /// An event from the platform (`auth/user.registered`, `shop/order.paid`) or the
    /// market itself (`market`).
    System(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Admin(u) => write!(f, "admin:{u}"),
            Actor::System(s) => write!(f, "system:{s}"),
        }
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.to_string()
    }
}

impl TryFrom<String> for Actor {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (kind, id) = s.split_once(':').ok_or_else(|| format!("not an actor: {s}"))?;
        let user = || UserId::parse(id).map_err(|e| e.to_string());
        match kind {
            "user" => Ok(Actor::User(user()?)),
            "admin" => Ok(Actor::Admin(user()?)),
            "system" => Ok(Actor::System(id.to_owned())),
            _ => Err(format!("not an actor: {s}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    CodeCreated,
    CodeDeactivated,
    /// An expired code deactivated to free its slot.
    CodeExpired,
    /// A registration without a referral (no code given).
    Registered,
    /// On the new user: referred by `inviter` with `code`.
    ReferralRecorded,
    /// On the inviter: `user` registered with their `code`.
    ReferralGained,
    /// On the new user: registered, the code did not qualify (`reason`).
    ReferralRejected,
    RewardEarned,
    /// A refund recorded before its order's reward (applied when the reward arrives).
    RefundRecorded,
    /// A refund, chargeback or admin void that reduced a commission.
    RewardReversed,
    /// A refund that was not applied (`reason`: over_refund, no_inviter, other_currency).
    RefundRejected,
    /// Commissions whose holding period ended moved from pending to available.
    RewardsMatured,
    /// An admin's credit or debit of `available`.
    BalanceAdjusted,
    Withdrawal,
    PolicyChanged,
    /// Written before the configuration store is: the intended change (`version`, `before`,
    /// `after`). Its outcome follows as `config_changed`, or `config_change_failed`.
    ConfigChangeRequested,
    /// The configuration store took the change (`version`, `before`, `after`).
    ConfigChanged,
    /// The store did not take the requested change (`version`, `reason`: conflict, or
    /// unavailable: then whether it took it shows as the stored `version`).
    ConfigChangeFailed,
    /// An abuse control fired (`rule`, the threshold, the retry time): nothing was changed.
    LimitReached,
    /// An abuse control fired and holds money for review (`rule`): on the inviter when a
    /// referral is flagged, on each earner when a reward is held.
    HeldForReview,
    /// An admin approved or rejected a held reward (`approved`, `note`, `amount`).
    RewardReviewed,
    /// On the buyer: an order or refund arrived before the buyer's registration and waits
    /// for it (`kind`, `order_id`, `expires_at`).
    WaitingForRegistration,
    /// On the buyer: a waiting order or refund was decided when the registration arrived
    /// (`outcome`, `waited_ms`).
    WaitingEventDecided,
    /// On the buyer: the registration never came; the waiting order or refund was dropped
    /// at `expires_at` (`registration_wait_days`).
    WaitingEventExpired,
    /// An admin exported the user's personal data (GDPR art. 15; on the first page).
    DataExported,
    /// An admin erased the user (GDPR art. 17): on the pseudonym (`moved`, `rewritten`,
    /// `forfeited`).
    UserErased,
    /// On the market's trail: an admin defined or changed a reward group (`group`,
    /// `version`, `before`, `after`).
    RewardGroupChanged,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CodeCreated => "code_created",
            AuditAction::LimitReached => "limit_reached",
            AuditAction::HeldForReview => "held_for_review",
            AuditAction::RewardReviewed => "reward_reviewed",
            AuditAction::CodeDeactivated => "code_deactivated",
            AuditAction::CodeExpired => "code_expired",
            AuditAction::Registered => "registered",
            AuditAction::ReferralRecorded => "referral_recorded",
            AuditAction::ReferralGained => "referral_gained",
            AuditAction::ReferralRejected => "referral_rejected",
            AuditAction::RewardEarned => "reward_earned",
            AuditAction::RefundRecorded => "refund_recorded",
            AuditAction::RewardReversed => "reward_reversed",
            AuditAction::RefundRejected => "refund_rejected",
            AuditAction::RewardsMatured => "rewards_matured",
            AuditAction::BalanceAdjusted => "balance_adjusted",
            AuditAction::Withdrawal => "withdrawal",
            AuditAction::PolicyChanged => "policy_changed",
            AuditAction::ConfigChangeRequested => "config_change_requested",
            AuditAction::ConfigChanged => "config_changed",
            AuditAction::ConfigChangeFailed => "config_change_failed",
            AuditAction::WaitingForRegistration => "waiting_for_registration",
            AuditAction::WaitingEventDecided => "waiting_event_decided",
            AuditAction::WaitingEventExpired => "waiting_event_expired",
            AuditAction::DataExported => "data_exported",
            AuditAction::UserErased => "user_erased",
            AuditAction::RewardGroupChanged => "reward_group_changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Whose trail: a user id, or [`MARKET_SUBJECT`].
    pub subject: String,
    pub at: Timestamp,
    pub action: AuditAction,
    pub actor: Actor,
    /// The event id, the request's idempotency anchor (code, withdrawal id) or the admin
    /// request's id.
    pub request_id: String,
    /// The facts of the action (code, amounts, reason, before/after).
    pub details: Value,
    /// The other user the record names, if any (the buyer of a reward, the inviter or the
    /// referred user of a referral): indexed, so a user's export finds the records on
    /// other users' trails that name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<UserId>,
}

impl AuditRecord {
    pub fn new(subject: &UserId, at: Timestamp, action: AuditAction, actor: Actor, request_id: impl Into<String>, details: Value) -> Self {
        AuditRecord { subject: subject.to_string(), at, action, actor, request_id: request_id.into(), details, about: None }
    }

    /// The record names `other` (see [`AuditRecord::about`]).
    pub fn about(mut self, other: &UserId) -> Self {
        self.about = Some(other.clone());
        self
    }

    /// Sort key within the subject's trail: time first (newest-first queries), then what
    /// makes it unique; a retried write of the same change lands on the same key.
    pub fn sort_key(&self) -> String {
        format!("{:013}#{}#{}", self.at.millis().max(0), self.action.as_str(), self.request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_as_text() {
        for a in [Actor::User(UserId::parse("u1").unwrap()), Actor::Admin(UserId::parse("root").unwrap()), Actor::System("shop/order.paid".into())] {
            let text: String = a.clone().into();
            assert_eq!(Actor::try_from(text).unwrap(), a);
        }
        assert!(Actor::try_from("nobody".to_owned()).is_err());
    }

    #[test]
    fn sort_keys_order_by_time() {
        let u = UserId::parse("u").unwrap();
        let r = |ms| AuditRecord::new(&u, Timestamp::from_millis(ms), AuditAction::Withdrawal, Actor::User(u.clone()), "wd_1", Value::Null);
        assert!(r(999).sort_key() < r(1000).sort_key());
        assert_eq!(r(5).sort_key(), "0000000000005#withdrawal#wd_1");
    }
}
