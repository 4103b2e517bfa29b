//! The audit trail's items: a record per change, put in the change's own transaction (or
//! alone, for the configuration in Redis and for refusals), and its paged listing.
//! Key design: PK `subject`, SK `<ms>#<action>#<request id>` (newest first).

use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, TransactWriteItem};
use market_domain::audit::AuditRecord;
use market_domain::ids::UserId;
use market_domain::ports::{Page, Result};
use serde::{Deserialize, Serialize};

use crate::error::{mapping_error, sdk_error};
use crate::expr::{n, put, Item};
use crate::tables::{attr, Retention, Tables};
use crate::DynamoStore;

/// An audit record as stored: `details` as JSON text (free-form, never queried).
#[derive(Serialize, Deserialize)]
struct AuditItem {
    subject: String,
    at_key: String,
    #[serde(flatten)]
    record: StoredRecord,
}

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    at: market_domain::time::Timestamp,
    action: market_domain::audit::AuditAction,
    actor: market_domain::audit::Actor,
    request_id: String,
    details: String,
    /// The other user the record names: the sparse `by-about` index's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    about: Option<String>,
}

/// An audit record as an item; with a retention (`AUDIT_RETENTION_YEARS`), `purge_at` (the
/// table's TTL) that many years after the record.
pub(crate) fn audit_item(r: &AuditRecord, retention: Retention) -> Result<Item> {
    let item = AuditItem {
        subject: r.subject.clone(),
        at_key: r.sort_key(),
        record: StoredRecord {
            at: r.at,
            action: r.action,
            actor: r.actor.clone(),
            request_id: r.request_id.clone(),
            details: r.details.to_string(),
            about: r.about.as_ref().map(|u| u.to_string()),
        },
    };
    let mut item: Item = serde_dynamo::to_item(item).map_err(mapping_error)?;
    if let Some(purge_at) = retention.purge_at(r.at) {
        item.insert(attr::PURGE_AT.into(), n(purge_at));
    }
    Ok(item)
}

fn audit_record(item: Item) -> Result<AuditRecord> {
    let a: AuditItem = serde_dynamo::from_item(item).map_err(mapping_error)?;
    Ok(AuditRecord {
        subject: a.subject,
        at: a.record.at,
        action: a.record.action,
        actor: a.record.actor,
        request_id: a.record.request_id,
        details: serde_json::from_str(&a.record.details).unwrap_or(serde_json::Value::Null),
        about: a.record.about.map(UserId::parse).transpose()?,
    })
}

/// Audit records go into the transaction of the change, after its conditional items
/// (so the items' cancellation-reason indexes stay put). No condition: the sort key is
/// derived from the change, so a retried transaction writes the same record.
pub(crate) fn audit_puts(t: &Tables, records: &[AuditRecord]) -> Result<Vec<TransactWriteItem>> {
    records.iter().map(|r| audit_put(t, r)).collect()
}

pub(crate) fn audit_put(t: &Tables, record: &AuditRecord) -> Result<TransactWriteItem> {
    put(&t.audit, audit_item(record, t.audit_retention)?, "", vec![])
}

impl DynamoStore {
    pub(crate) async fn audit_page(&self, subject: &str, page_token: Option<&str>, limit: u32) -> Result<Page<AuditRecord>> {
        let (items, next) = self.query_page(&self.tables().audit, (None, crate::paging::Listing::NewestFirst), (attr::SUBJECT, subject), page_token, limit).await?;
        let items = items.into_iter().map(audit_record).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    pub(crate) async fn put_audit_item(&self, record: &AuditRecord) -> Result<()> {
        let out = self
            .client()
            .put_item()
            .table_name(&self.tables().audit)
            .set_item(Some(audit_item(record, self.tables().audit_retention)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        self.usage().record(out.consumed_capacity());
        Ok(())
    }
}

