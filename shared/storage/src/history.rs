//! A user's history (the ledger's `by-time` index: commissions with their state, and every
//! other entry), the audit trail, and standalone audit records.

use market_domain::audit::AuditRecord;
use market_domain::ids::UserId;
use market_domain::model::HistoryItem;
use market_domain::ports::{HistoryStore, Page, Result};

use crate::audit::audit_put;
use crate::expr::{check, key, s};
use crate::ledger::history_item;
use crate::paging::Listing;
use crate::tables::{attr, LEDGER_BY_TIME_INDEX};
use crate::DynamoStore;

impl HistoryStore for DynamoStore {
    async fn list_history(&self, user: &UserId, page_token: Option<&str>, limit: u32) -> Result<Page<HistoryItem>> {
        let (items, next) = self
            .query_page(&self.tables().ledger, (Some(LEDGER_BY_TIME_INDEX), Listing::NewestFirst), (attr::USER_ID, user.as_str()), page_token, limit)
            .await?;
        Ok(Page { items: items.into_iter().map(history_item).collect::<Result<_>>()?, next })
    }

    async fn list_audit(&self, subject: &str, page_token: Option<&str>, limit: u32) -> Result<Page<AuditRecord>> {
        self.audit_page(subject, page_token, limit).await
    }

    async fn put_audit(&self, record: &AuditRecord) -> Result<()> {
        self.put_audit_item(record).await
    }

    async fn put_referral_audit(&self, record: &AuditRecord, buyer: &UserId, inviter: Option<&UserId>) -> Result<()> {
        let t = self.tables();
        let (cond, values) = match inviter {
            Some(i) => ("#inviter = :inviter AND attribute_not_exists(#erasing)", vec![(":inviter", s(i.as_str()))]),
            None => ("attribute_exists(#user_id) AND attribute_not_exists(#inviter) AND attribute_not_exists(#erasing)", vec![]),
        };
        let items = vec![check(&t.policy, key(attr::USER_ID, buyer.as_str()), cond, values)?, audit_put(t, record)?];
        self.transact(items).await?.map_err(|_| market_domain::MarketError::Contention)
    }
}

impl DynamoStore {
    /// A user's whole history, newest first (tests, tooling).
    pub async fn history(&self, user: &UserId) -> Result<Vec<HistoryItem>> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let page = self.list_history(user, token.as_deref(), 100).await?;
            all.extend(page.items);
            token = page.next;
            if token.is_none() {
                return Ok(all);
            }
        }
    }
}
