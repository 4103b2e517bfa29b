//! Events waiting for their buyer's registration (arrival order). Key design: the
//! parked-events table, PK `user_id` (the buyer), SK `event_key` (one item per order and per
//! refund); the sparse GSI `expiring-by-day` (`expire_day`, `expires_at`) tells the
//! scheduled expiry what to drop, day by day, never by Scan.
//!
//! Parking is one transaction: a condition check that the buyer's policy is not registered,
//! the event (must not exist), its audit record. A registration writes `registered_at` in
//! its own transaction and only then reads the buyer's waiting events (strongly
//! consistent). DynamoDB serializes the two transactions on the policy item, so an event is
//! either parked before the registration committed, and the registration finds it, or its
//! parking is refused, and the hook decides it at once.

use market_domain::audit::AuditRecord;
use market_domain::ids::UserId;
use market_domain::inbound::WaitingEvent;
use market_domain::ports::{ParkOutcome, ParkedEvent, ParkedStore, Parking, Result};
use market_domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::audit_put;
use crate::error::mapping_error;
use crate::expr::{check, delete, key, key2, n, put, s, Item};
use crate::tables::{attr, EXPIRING_BY_DAY_INDEX};
use crate::DynamoStore;

/// The item as stored.
#[derive(Serialize, Deserialize)]
struct ParkedItem {
    user_id: String,
    event_key: String,
    event: WaitingEvent,
    parked_at: Timestamp,
    expires_at: Timestamp,
    expire_day: String,
    /// TTL: a backstop after the expiry (which is what audits a dropped event).
    purge_at: i64,
}

fn parked_from(item: Item) -> Result<ParkedEvent> {
    let p: ParkedItem = serde_dynamo::from_item(item).map_err(mapping_error)?;
    Ok(ParkedEvent { event: p.event, parked_at: p.parked_at, expires_at: p.expires_at })
}

/// Events waiting for one buyer are few (a registration decides them all); the expiry
/// takes at most this many of one day per run, and the next run the rest.
const MAX_EXPIRED_PER_DAY: usize = 1000;

impl ParkedStore for DynamoStore {
    async fn park(&self, p: &Parking) -> Result<ParkOutcome> {
        let t = self.tables();
        let buyer = p.event.buyer().as_str();
        let item = ParkedItem {
            user_id: buyer.to_owned(),
            event_key: p.event.key(),
            event: p.event.clone(),
            parked_at: p.parked_at,
            expires_at: p.expires_at,
            expire_day: p.expires_at.utc_day(),
            purge_at: p.purge_at.epoch_seconds(),
        };
        let mut items = vec![
            // 0: the market has not seen the buyer register (no policy, or one an admin
            // wrote before the registration), and is not erasing them (retried then).
            check(&t.policy, key(attr::USER_ID, buyer), "attribute_not_exists(#registered_at) AND attribute_not_exists(#erasing)", vec![])?,
            // 1: one waiting item per order / refund.
            put(&t.parked, serde_dynamo::to_item(&item).map_err(mapping_error)?, "attribute_not_exists(#event_key)", vec![])?,
            audit_put(t, &p.audit)?,
        ];
        // 3: nor erased them since the buyer was read (then the event is the pseudonym's).
        if let Some(pseudonym) = &p.pseudonym {
            items.push(check(&t.policy, key(attr::USER_ID, pseudonym.as_str()), "attribute_not_exists(#user_id)", vec![])?);
        }
        Ok(match self.transact(items).await? {
            Ok(()) => ParkOutcome::Parked,
            Err(c) if c.failed(0) || (p.pseudonym.is_some() && c.failed(3)) => ParkOutcome::BuyerRegistered,
            Err(_) => ParkOutcome::AlreadyWaiting,
        })
    }

    async fn parked_events(&self, buyer: &UserId, limit: usize) -> Result<Vec<ParkedEvent>> {
        let items = self.query(&self.tables().parked, None, "#user_id = :u", vec![(":u", s(buyer.as_str()))], true, limit).await?;
        items.into_iter().map(parked_from).collect()
    }

    async fn unpark(&self, buyer: &UserId, event_key: &str, audit: &AuditRecord) -> Result<bool> {
        let t = self.tables();
        let items = vec![
            delete(&t.parked, key2((attr::USER_ID, buyer.as_str()), (attr::EVENT_KEY, event_key)), "attribute_exists(#event_key)", vec![])?,
            audit_put(t, audit)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }

    async fn expired_events(&self, day: &str, now: Timestamp) -> Result<Vec<ParkedEvent>> {
        let condition = "#expire_day = :d AND #expires_at <= :now";
        let values = vec![(":d", s(day)), (":now", n(now.millis()))];
        let items = self.query(&self.tables().parked, Some(EXPIRING_BY_DAY_INDEX), condition, values, false, MAX_EXPIRED_PER_DAY).await?;
        items.into_iter().map(parked_from).collect()
    }
}
