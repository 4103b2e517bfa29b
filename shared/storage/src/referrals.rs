//! Policies and referrals: a user's policy (registration writes it once, with the inviter
//! and code when the referral qualifies), and an admin's change of the overrides. Key design:
//! the policy table (PK `user_id`); the referral's transaction also touches the code (its
//! `registrations`), the inviter's stats (`invited_count`) and, under a velocity limit, the
//! inviter's referral counter of the hour.

use aws_sdk_dynamodb::types::AttributeValue;
use market_domain::ids::UserId;
use market_domain::model::InviteCodeRecord;
use market_domain::policy::AffiliatePolicy;
use market_domain::ports::{PolicyOverrides, PolicyStore, PolicyUpdate, ReferralRejection, Registration, RegistrationOutcome, Result};

use crate::audit::{audit_put, audit_puts};
use crate::codes::{now_set, POLICY_ENABLED};
use crate::error::mapping_error;
use crate::expr::{b, check, key, n, s, update};
use crate::tables::{attr, velocity_key};
use crate::DynamoStore;

impl DynamoStore {
    /// A registration's check that the user was not erased (their pseudonym has no policy).
    fn not_erased(&self, reg: &Registration) -> Result<Option<aws_sdk_dynamodb::types::TransactWriteItem>> {
        reg.pseudonym.as_ref().map(|p| check(&self.tables().policy, key(attr::USER_ID, p.as_str()), "attribute_not_exists(#user_id)", vec![])).transpose()
    }
}

impl PolicyStore for DynamoStore {
    async fn get_policy(&self, user: &UserId) -> Result<Option<AffiliatePolicy>> {
        let item = self.get_item(&self.tables().policy, key(attr::USER_ID, user.as_str())).await?;
        item.map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()
    }


    async fn register_user(&self, reg: &Registration) -> Result<RegistrationOutcome> {
        let user = reg.user.as_str();
        let at = now_set(reg.at);
        let first_time = "attribute_not_exists(#registered_at) AND attribute_not_exists(#inviter)";
        let Some(referral) = &reg.referral else {
            let mut set = "SET #registered_at = :at, #registration_event = :event".to_owned();
            let mut vals = vec![(":at", at), (":event", s(reg.event_id.as_str()))];
            if let Some(reason) = reg.rejected {
                set.push_str(", #registration_rejected = :rejected");
                vals.push((":rejected", s(reason.as_str())));
            }
            let mut items = vec![update(&self.tables().policy, key(attr::USER_ID, user), &set, Some(first_time), vals)?];
            items.extend(self.not_erased(reg)?);
            items.extend(audit_puts(self.tables(), &reg.audit)?);
            return match self.transact(items).await? {
                Ok(()) => Ok(RegistrationOutcome::Registered { referred: false }),
                // Erased meanwhile: the registration goes again, as the pseudonym's.
                Err(c) if reg.pseudonym.is_some() && c.failed(1) => Err(market_domain::MarketError::Contention),
                Err(_) => Ok(RegistrationOutcome::AlreadyRegistered),
            };
        };
        if referral.inviter == reg.user {
            return Ok(RegistrationOutcome::ReferralRejected(ReferralRejection::SelfReferral));
        }
        let inviter = referral.inviter.as_str();
        let mut set = "SET #registered_at = :at, #inviter = :inviter, #invite_code = :code, #registration_event = :event".to_owned();
        let mut values = vec![
            (":at", at.clone()),
            (":inviter", s(inviter)),
            (":code", s(referral.code.as_str())),
            (":event", s(reg.event_id.as_str())),
        ];
        if let Some(reason) = reg.review {
            set.push_str(", #review_reason = :review");
            values.push((":review", s(reason.as_str())));
        }
        let mut items = vec![
            // 0: first registration of this user; the inviter is written once, here.
            update(&self.tables().policy, key(attr::USER_ID, user), &set, Some(first_time), values)?,
            // 1: the code is still the inviter's, active and unexpired.
            update(
                &self.tables().codes,
                key(attr::CODE, referral.code.as_str()),
                "ADD #registrations :one",
                Some("#active_owner = :inviter AND (attribute_not_exists(#expires_at) OR #expires_at > :at)"),
                vec![(":one", n(1)), (":inviter", s(inviter)), (":at", at.clone())],
            )?,
            // 2: the inviter's statistics.
            update(
                &self.tables().stats,
                key(attr::USER_ID, inviter),
                "ADD #invited_count :one SET #updated_at = :at",
                Some(crate::tables::NOT_ERASING),
                vec![(":one", n(1)), (":at", at)],
            )?,
            // 3: the inviter's affiliate ability is on.
            check(&self.tables().policy, key(attr::USER_ID, inviter), POLICY_ENABLED, vec![(":true", b(true))])?,
        ];
        // 4 (referral velocity): the inviter's referrals this UTC hour, an item of its own in
        // the code table (`velocity#<inviter>#<hour>`, TTL), like the churn counter. Under the
        // limit, or counted unconditionally once the processor flags the referral.
        let velocity_at = reg.velocity.as_ref().and_then(|v| v.under.map(|_| items.len()));
        if let Some(v) = &reg.velocity {
            let mut values = vec![(":one", n(1)), (":purge", n(v.purge_at.epoch_seconds()))];
            let condition = v.under.map(|limit| {
                values.push((":limit", n(i64::from(limit))));
                "attribute_not_exists(#referrals) OR #referrals < :limit"
            });
            items.push(update(
                &self.tables().codes,
                key(attr::CODE, velocity_key(inviter, &v.hour)),
                "ADD #referrals :one SET #purge_at = :purge",
                condition,
                values,
            )?);
        }
        let erased_at = items.len();
        items.extend(self.not_erased(reg)?);
        items.extend(audit_puts(self.tables(), &reg.audit)?);
        match self.transact(items).await? {
            Ok(()) => Ok(RegistrationOutcome::Registered { referred: true }),
            Err(c) if c.failed(0) => Ok(RegistrationOutcome::AlreadyRegistered),
            Err(c) if reg.pseudonym.is_some() && c.failed(erased_at) => Err(market_domain::MarketError::Contention),
            Err(c) if c.failed(3) => Ok(RegistrationOutcome::ReferralRejected(ReferralRejection::InviterDisabled)),
            // Only the counter failed: the processor retries the referral flagged for review.
            Err(c) if velocity_at.is_some_and(|i| c.failed(i)) && !c.failed(1) => Ok(RegistrationOutcome::VelocityExceeded),
            Err(c) => {
                let old: Option<InviteCodeRecord> =
                    c.old_item(1).cloned().map(serde_dynamo::from_item).transpose().map_err(mapping_error)?;
                let reason = match old {
                    None => ReferralRejection::UnknownCode,
                    Some(rec) if !rec.active => ReferralRejection::InactiveCode,
                    Some(rec) if rec.is_expired(reg.at) => ReferralRejection::ExpiredCode,
                    Some(_) => ReferralRejection::UnknownCode,
                };
                Ok(RegistrationOutcome::ReferralRejected(reason))
            }
        }
    }

    async fn update_policy(&self, u: &PolicyUpdate) -> Result<bool> {
        let group = |o: &PolicyOverrides| o.group.as_ref().map(|g| s(g.as_str()));
        let fields: [(&str, Option<AttributeValue>, Option<AttributeValue>); 5] = [
            (attr::COMMISSION_BPS, u.before.commission_bps.map(|b| n(i64::from(b.get()))), u.after.commission_bps.map(|b| n(i64::from(b.get())))),
            (attr::TRIGGER_LIMIT, limit_value(&u.before)?, limit_value(&u.after)?),
            (attr::MAX_ACTIVE_CODES, u.before.max_active_codes.map(|m| n(i64::from(m))), u.after.max_active_codes.map(|m| n(i64::from(m)))),
            (attr::AFFILIATE_ENABLED, u.before.affiliate_enabled.map(b), u.after.affiliate_enabled.map(b)),
            (attr::GROUP, group(&u.before), group(&u.after)),
        ];
        let (mut sets, mut removes, mut conds, mut values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, (name, before, after)) in fields.into_iter().enumerate() {
            // Placeholders are static strings: five fields, indexed.
            let (b_ph, a_ph) = ([":b0", ":b1", ":b2", ":b3", ":b4"][i], [":a0", ":a1", ":a2", ":a3", ":a4"][i]);
            match before {
                Some(v) => {
                    conds.push(format!("#{name} = {b_ph}"));
                    values.push((b_ph, v));
                }
                None => conds.push(format!("attribute_not_exists(#{name})")),
            }
            match after {
                Some(v) => {
                    sets.push(format!("#{name} = {a_ph}"));
                    values.push((a_ph, v));
                }
                None => removes.push(format!("#{name}")),
            }
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let condition = conds.join(" AND ");
        let items = vec![
            // 0: the overrides are still what the admin's change was based on.
            update(&self.tables().policy, key(attr::USER_ID, u.user.as_str()), expression.trim(), Some(&condition), values)?,
            // 1: the audit record (before/after).
            audit_put(self.tables(), &u.audit)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }

}


fn limit_value(o: &PolicyOverrides) -> Result<Option<AttributeValue>> {
    o.trigger_limit.map(|l| serde_dynamo::to_attribute_value(l).map_err(mapping_error)).transpose()
}
