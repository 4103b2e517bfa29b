//! user.registered: the new user, and the referral its invite code earns (or why not).

use serde_json::json;
use tracing::{info, warn};

use super::{DecideWaitingEvents, Deps, Processor, REGISTRATION_SOURCE};
use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::code::InviteCode;
use crate::error::MarketError;
use crate::ids::UserId;
use crate::inbound::{event_time, UserRegistered};
use crate::model::HoldReason;
use crate::ports::{ConfigSource, MarketStore, Referral, ReferralRejection, Registration, RegistrationOutcome, VelocityCount};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationResult {
    Referred { inviter: UserId },
    /// Registered without a referral (no code, or the code did not qualify).
    Registered { rejected: Option<ReferralRejection> },
    AlreadyRegistered,
}

pub struct RegisterUser<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> RegisterUser<S, C> {
    /// Checks the code as read; the store re-checks code and inviter at write time.
    async fn referral_for(&self, user: &UserId, code: &str, now: Timestamp) -> Result<Result<Referral, ReferralRejection>, MarketError> {
        let Ok(code) = InviteCode::parse(code) else { return Ok(Err(ReferralRejection::InvalidCode)) };
        let Some(record) = self.0.store.get_code(&code).await? else {
            return Ok(Err(ReferralRejection::UnknownCode));
        };
        if !record.active {
            return Ok(Err(ReferralRejection::InactiveCode));
        }
        if record.is_expired(now) {
            return Ok(Err(ReferralRejection::ExpiredCode));
        }
        if &record.owner_id == user {
            return Ok(Err(ReferralRejection::SelfReferral));
        }
        Ok(Ok(Referral { inviter: record.owner_id, code }))
    }

    /// The user is registered: by this very event (a redelivery, or a retry after a lost
    /// response) → its first outcome, from the policy; by another event → `AlreadyRegistered`.
    async fn already_registered(&self, ev: &UserRegistered) -> Result<RegistrationResult, MarketError> {
        let policy = self.0.store.get_policy(&ev.user).await?;
        Ok(match policy {
            Some(p) if p.registration_event.as_ref() == Some(&ev.event_id) => match p.inviter {
                Some(inviter) => RegistrationResult::Referred { inviter },
                None => RegistrationResult::Registered { rejected: p.registration_rejected },
            },
            _ => RegistrationResult::AlreadyRegistered,
        })
    }
}

impl<S: MarketStore, C: ConfigSource> Processor for RegisterUser<S, C> {
    type Request = UserRegistered;
    type Response = RegistrationResult;

    /// Registers the user, then decides the orders and refunds that arrived before the
    /// registration and waited for it — on every delivery, so a redelivery finishes what a
    /// crash left (the registration itself answers its first outcome again).
    async fn process(&self, mut ev: UserRegistered) -> Result<RegistrationResult, MarketError> {
        // An erased user's registration (late, or sent again) is their pseudonym's.
        let pseudonym = match super::personal_data::erased_as(&self.0, &ev.user).await? {
            Some(p) => {
                ev.user = p;
                None
            }
            // Not erased (yet): checked again in the registration's transaction.
            None if !crate::personal_data::is_pseudonym(&ev.user) => super::personal_data::pseudonym_of(&self.0, &ev.user).await?,
            None => None,
        };
        let result = self.register(&ev, pseudonym).await?;
        DecideWaitingEvents(self.0.clone()).process(ev.user.clone()).await?;
        Ok(result)
    }
}

impl<S: MarketStore, C: ConfigSource> RegisterUser<S, C> {
    /// `pseudonym`: the user's, checked in the registration's transaction (an erasure that
    /// completed since it was looked up makes the registration go again, as the pseudonym's).
    async fn register(&self, ev: &UserRegistered, pseudonym: Option<UserId>) -> Result<RegistrationResult, MarketError> {
        let store = &self.0.store;
        let now = self.0.clock.now();
        // The rules take the registration at its own time (never later than now), as the
        // orders at theirs: a registration that arrives late is decided as if it had come
        // in order (its code's expiry, the referral velocity's hour, `registered_at` that
        // `review_min_seconds` measures from). The audit records carry the market's time.
        let at = event_time(ev.occurred_at, now);
        let mut rejected = None;
        if let Some(code) = ev.invite_code.as_deref().filter(|c| !c.trim().is_empty()) {
            match self.referral_for(&ev.user, code, at).await? {
                Ok(referral) => {
                    let inviter = referral.inviter.clone();
                    let actor = Actor::System(REGISTRATION_SOURCE.into());
                    let audit = vec![
                        AuditRecord::new(&ev.user, now, AuditAction::ReferralRecorded, actor.clone(), ev.event_id.as_str(), json!({
                            "inviter": inviter, "code": referral.code,
                        }))
                        .about(&inviter),
                        AuditRecord::new(&inviter, now, AuditAction::ReferralGained, actor.clone(), ev.event_id.as_str(), json!({
                            "user": ev.user, "code": referral.code,
                        }))
                        .about(&ev.user),
                    ];
                    // Referral velocity: counted per inviter and UTC hour in the same
                    // transaction; beyond the limit the referral is recorded flagged.
                    let per_hour = self.0.config.current().await.review_referrals_per_hour;
                    let velocity = (per_hour > 0).then(|| VelocityCount { hour: at.utc_hour(), under: Some(per_hour), purge_at: now.plus_days(2) });
                    let mut reg = Registration { user: ev.user.clone(), event_id: ev.event_id.clone(), at, referral: Some(referral), rejected: None, audit, velocity, review: None, pseudonym: pseudonym.clone() };
                    let mut outcome = store.register_user(&reg).await?;
                    if outcome == RegistrationOutcome::VelocityExceeded {
                        reg.review = Some(HoldReason::ReferralVelocity);
                        if let Some(v) = reg.velocity.as_mut() {
                            v.under = None;
                        }
                        reg.audit.push(AuditRecord::new(&inviter, now, AuditAction::HeldForReview, actor, ev.event_id.as_str(), json!({
                            "rule": "review_referrals_per_hour", "limit": per_hour, "hour": at.utc_hour(), "user": ev.user,
                        })).about(&ev.user));
                        warn!(event_id = %ev.event_id, user_id = %ev.user, inviter = %inviter, limit = per_hour, "referral velocity: the referral's rewards will be held for review");
                        outcome = store.register_user(&reg).await?;
                    }
                    match outcome {
                        RegistrationOutcome::Registered { .. } => {
                            info!(event_id = %ev.event_id, user_id = %ev.user, inviter = %inviter, "referral recorded");
                            return Ok(RegistrationResult::Referred { inviter });
                        }
                        RegistrationOutcome::AlreadyRegistered => return self.already_registered(ev).await,
                        RegistrationOutcome::ReferralRejected(reason) => rejected = Some(reason),
                        // Counted unconditionally on the second attempt: not reachable.
                        RegistrationOutcome::VelocityExceeded => return Err(MarketError::Contention),
                    }
                }
                Err(reason) => rejected = Some(reason),
            }
        }
        if let Some(reason) = rejected {
            warn!(event_id = %ev.event_id, user_id = %ev.user, reason = reason.as_str(), "referral rejected");
        }
        let (action, details) = match rejected {
            Some(reason) => (AuditAction::ReferralRejected, json!({"code": ev.invite_code, "reason": reason.as_str()})),
            None => (AuditAction::Registered, json!({})),
        };
        let audit = vec![AuditRecord::new(&ev.user, now, action, Actor::System(REGISTRATION_SOURCE.into()), ev.event_id.as_str(), details)];
        let reg = Registration { user: ev.user.clone(), event_id: ev.event_id.clone(), at, referral: None, rejected, audit, velocity: None, review: None, pseudonym };
        match store.register_user(&reg).await? {
            RegistrationOutcome::AlreadyRegistered => self.already_registered(ev).await,
            _ => Ok(RegistrationResult::Registered { rejected }),
        }
    }
}
