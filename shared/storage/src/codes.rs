//! Invite codes: create within the owner's slot limit (releasing expired codes in the same
//! transaction), deactivate, look up, list the owner's active ones. Key design: the code
//! table (PK `code`, sparse GSI `active-by-owner`) and the owner's `active_codes` counter on
//! the stats item, which — not the eventually consistent index — holds the limit.

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use market_domain::audit::AuditRecord;
use market_domain::code::InviteCode;
use market_domain::ids::{IdempotencyKey, UserId};
use market_domain::model::InviteCodeRecord;
use market_domain::ports::{CodeStore, Deactivation, NewCode, Result};
use market_domain::time::Timestamp;
use market_domain::MarketError;

use crate::audit::audit_puts;
use crate::error::{mapping_error, sdk_error};
use crate::expr::{b, check, key, n, put, s, update, Item};
use crate::tables::{attr, ACTIVE_BY_OWNER_INDEX};
use crate::DynamoStore;

pub(crate) fn now_set(now: Timestamp) -> aws_sdk_dynamodb::types::AttributeValue {
    n(now.millis())
}

/// The user's affiliate ability is on (absent = on).
pub(crate) const POLICY_ENABLED: &str = "attribute_not_exists(#affiliate_enabled) OR #affiliate_enabled = :true";

/// The code table's key of a keyed creation request: `request#<owner>#<key>` never parses as
/// an invite code, and the item has no `active_owner`, so it stays out of the owner index.
fn request_key(owner: &UserId, key: &IdempotencyKey) -> String {
    format!("request#{owner}#{key}")
}

/// The code table's key of an owner's creation counter for one UTC day (code churn): never
/// an invite code, no `active_owner`, removed by TTL two days later.
fn churn_key(owner: &str, day: &str) -> String {
    format!("churn#{owner}#{day}")
}

impl CodeStore for DynamoStore {
    async fn code_for_request(&self, owner: &UserId, request: &IdempotencyKey) -> Result<Option<InviteCode>> {
        let item = self.get_item(&self.tables().codes, key(attr::CODE, request_key(owner, request))).await?;
        created_code(item.as_ref())
    }

    async fn get_code(&self, code: &InviteCode) -> Result<Option<InviteCodeRecord>> {
        let item = self.get_item(&self.tables().codes, key(attr::CODE, code.as_str())).await?;
        item.map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()
    }

    async fn list_active_codes(&self, owner: &UserId) -> Result<Vec<InviteCodeRecord>> {
        // The sparse index holds only codes not yet deactivated: cost is flat in table size.
        let mut codes = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(&self.tables().codes)
                .index_name(ACTIVE_BY_OWNER_INDEX)
                .key_condition_expression("#active_owner = :o")
                .expression_attribute_names("#active_owner", attr::ACTIVE_OWNER)
                .expression_attribute_values(":o", s(owner.as_str()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(sdk_error)?;
            self.usage().record(out.consumed_capacity());
            let page: Vec<InviteCodeRecord> =
                serde_dynamo::from_items(out.items.unwrap_or_default()).map_err(mapping_error)?;
            codes.extend(page);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(codes);
            }
        }
    }

    async fn create_code(&self, new: &NewCode) -> Result<Option<InviteCode>> {
        let rec = &new.record;
        let owner = rec.owner_id.as_str();
        let released = i64::try_from(new.release_expired.len()).map_err(|_| MarketError::Overflow)?;
        let mut item: Item = serde_dynamo::to_item(rec).map_err(mapping_error)?;
        item.insert(attr::ACTIVE_OWNER.into(), s(owner));

        let mut items = vec![
            // 0: the code is new (codes are unique across all users).
            put(&self.tables().codes, item, "attribute_not_exists(#code)", vec![])?,
            // 1: a slot is free; the counter, not the (eventually consistent) index, holds the limit.
            update(
                &self.tables().stats,
                key(attr::USER_ID, owner),
                "ADD #active_codes :delta SET #updated_at = :now",
                Some("(attribute_not_exists(#active_codes) OR #active_codes < :threshold) AND attribute_not_exists(#erasing)"),
                vec![
                    (":delta", n(1 - released)),
                    (":now", now_set(rec.created_at)),
                    (":threshold", n(i64::from(new.max_active) + released)),
                ],
            )?,
            // 2: the owner's affiliate ability is on.
            check(&self.tables().policy, key(attr::USER_ID, owner), POLICY_ENABLED, vec![(":true", b(true))])?,
        ];
        // 3 (with a churn limit): the owner's creations today, under the limit. An item of its
        // own (`churn#<owner>#<day>`, TTL two days later), never a code, like request items.
        let churn_at = new.per_day.map(|_| items.len());
        if let Some(limit) = new.per_day {
            let day = rec.created_at.utc_day();
            items.push(update(
                &self.tables().codes,
                key(attr::CODE, churn_key(owner, &day)),
                "ADD #created :one SET #purge_at = :purge",
                Some("attribute_not_exists(#created) OR #created < :limit"),
                vec![(":one", n(1)), (":limit", n(i64::from(limit))), (":purge", n(rec.created_at.next_utc_day().plus_days(1).epoch_seconds()))],
            )?);
        }
        // Then: expired codes whose slots this creation takes back (still active and expired).
        for code in &new.release_expired {
            items.push(update(
                &self.tables().codes,
                key(attr::CODE, code.as_str()),
                "SET #active = :false, #deactivated_at = :now, #purge_at = :purge REMOVE #active_owner",
                Some("#active_owner = :owner AND #expires_at <= :now"),
                vec![
                    (":false", b(false)),
                    (":now", now_set(rec.created_at)),
                    (":purge", n(new.purge_at.epoch_seconds())),
                    (":owner", s(owner)),
                ],
            )?);
        }
        // Last: the request's key, once (kept as long as deactivated codes are).
        let keyed = new.request_key.as_ref().map(|_| items.len());
        if let Some(k) = &new.request_key {
            let mut item = Item::new();
            item.insert(attr::CODE.into(), s(request_key(&rec.owner_id, k)));
            item.insert(attr::CREATED_CODE.into(), s(rec.code.as_str()));
            // In `by-owner` with the owner's codes: an export and an erasure find it there.
            item.insert(attr::OWNER_ID.into(), s(owner));
            item.insert("created_at".into(), now_set(rec.created_at));
            item.insert(attr::PURGE_AT.into(), n(new.purge_at.epoch_seconds()));
            items.push(put(&self.tables().codes, item, "attribute_not_exists(#code)", vec![])?);
        }
        items.extend(audit_puts(self.tables(), &new.audit)?);
        match self.transact(items).await? {
            Ok(()) => Ok(None),
            // A twin with the same key created its code first: that code (from the old item).
            Err(c) if keyed.is_some_and(|i| c.failed(i)) => {
                created_code(keyed.and_then(|i| c.old_item(i)))?.map(Some).ok_or(MarketError::Contention)
            }
            Err(c) if c.failed(0) => Err(MarketError::CodeCollision),
            Err(c) if churn_at.is_some_and(|i| c.failed(i)) => Err(MarketError::RateLimited { retry_after: std::time::Duration::ZERO }),
            Err(c) if c.failed(2) => Err(MarketError::AffiliateDisabled),
            Err(c) if c.failed(1) => Err(MarketError::CodeLimitReached),
            Err(_) => Err(MarketError::Contention),
        }
    }

    async fn deactivate_code(
        &self,
        owner: &UserId,
        code: &InviteCode,
        now: Timestamp,
        purge_at: Timestamp,
        audit: &AuditRecord,
    ) -> Result<Deactivation> {
        let mut items = vec![
            update(
                &self.tables().codes,
                key(attr::CODE, code.as_str()),
                "SET #active = :false, #deactivated_at = :now, #purge_at = :purge REMOVE #active_owner",
                Some("#active_owner = :owner"),
                vec![
                    (":false", b(false)),
                    (":now", now_set(now)),
                    (":purge", n(purge_at.epoch_seconds())),
                    (":owner", s(owner.as_str())),
                ],
            )?,
            update(
                &self.tables().stats,
                key(attr::USER_ID, owner.as_str()),
                "ADD #active_codes :minus_one SET #updated_at = :now",
                Some(crate::tables::NOT_ERASING),
                vec![(":minus_one", n(-1)), (":now", now_set(now))],
            )?,
        ];
        items.extend(audit_puts(self.tables(), std::slice::from_ref(audit))?);
        match self.transact(items).await? {
            Ok(()) => Ok(Deactivation::Deactivated),
            Err(c) => {
                // Someone else's code and a missing code look the same to the caller.
                let old: Option<InviteCodeRecord> =
                    c.old_item(0).cloned().map(serde_dynamo::from_item).transpose().map_err(mapping_error)?;
                match old {
                    Some(rec) if &rec.owner_id == owner => Ok(Deactivation::AlreadyInactive),
                    _ => Err(MarketError::NotFound),
                }
            }
        }
    }

}

fn created_code(item: Option<&Item>) -> Result<Option<InviteCode>> {
    item.and_then(|i| i.get(attr::CREATED_CODE))
        .map(|v| v.as_s().ok().and_then(|c| InviteCode::parse(c).ok()).ok_or_else(|| MarketError::internal("a code request item without a valid created_code")))
        .transpose()
}
