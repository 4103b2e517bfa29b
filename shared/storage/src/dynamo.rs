//! The DynamoDB implementation of the domain's `MarketStore`. Reads are GetItem/Query
//! (strongly consistent where the table allows); every change is one `TransactWriteItems`
//! whose conditions make it idempotent and re-check the rules, and whose cancellation
//! reasons (with the old item) become typed outcomes.

use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, ConsumedCapacity, ReturnConsumedCapacity, TransactWriteItem};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::Client;
use market_domain::audit::AuditRecord;
use market_domain::code::InviteCode;
use market_domain::ids::{UserId, WithdrawalId};
use market_domain::model::{
    AffiliateStats, InviteCodeRecord, LedgerEntry, OutboundEvent, RewardEvent, WithdrawalRecord,
};
use market_domain::money::Money;
use market_domain::policy::{AffiliatePolicy, TriggerLimit};
use market_domain::ports::{
    Deactivation, MarketStore, NewCode, Page, PolicyOverrides, PolicyUpdate, ReferralRejection, Registration, RegistrationOutcome, Result,
    RewardOutcome, WithdrawOutcome, WithdrawalRequest,
};
use market_domain::time::Timestamp;
use market_domain::MarketError;
use rand::Rng;
use serde::Deserialize;
use tracing::debug;

use crate::error::{mapping_error, sdk_error};
use crate::admin::{audit_put, audit_puts};
use crate::outbox::OutboxRecord;
use crate::expr::{b, check, key, key2, n, put, s, update, Item};
use crate::tables::{at_key, attr, MARKET_EXCHANGE, reward_entry_key, withdrawal_entry_key, Tables, ACTIVE_BY_OWNER_INDEX, LEDGER_BY_TIME_INDEX};

/// Retries of a transaction cancelled only by conflicts with concurrent transactions.
const CONFLICT_RETRIES: u32 = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    usage: Arc<Usage>,
}

/// Round trips and capacity units this store consumed (per container; benchmarks and
/// debug logs read it).
#[derive(Debug, Default)]
pub struct Usage {
    round_trips: AtomicU64,
    /// Thousandths of a capacity unit (DynamoDB reports halves for eventually consistent reads).
    capacity_milli: AtomicU64,
}

impl Usage {
    pub(crate) fn record<'a>(&self, consumed: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let units: f64 = consumed.into_iter().filter_map(|c| c.capacity_units()).sum();
        self.capacity_milli.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        debug!(capacity_units = units, "dynamodb call");
    }
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
    pub fn capacity_units(&self) -> f64 {
        self.capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// The outcome of a transaction that DynamoDB cancelled because a condition failed:
/// per item, whether its condition failed and the item as it was.
struct Cancelled(Vec<CancellationReason>);

impl Cancelled {
    fn failed(&self, index: usize) -> bool {
        self.0.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
    }
    fn old_item(&self, index: usize) -> Option<&Item> {
        self.0.get(index).and_then(|r| r.item())
    }
}

#[derive(Deserialize)]
struct AvailableOnly {
    #[serde(default)]
    available: Money,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        DynamoStore { client, tables, usage: Arc::default() }
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one transaction. Conflicts with concurrent transactions are retried with
    /// jittered backoff (the transaction is conditional, so a retry is safe);
    /// `Ok(Err(_))` means a condition failed.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<std::result::Result<(), Cancelled>> {
        for attempt in 0..CONFLICT_RETRIES {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let err = match sent {
                Ok(out) => {
                    self.usage.record(out.consumed_capacity());
                    return Ok(Ok(()));
                }
                Err(err) => {
                    self.usage.record([]);
                    err
                }
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tce)) => tce.cancellation_reasons().to_vec(),
                _ => return Err(sdk_error(err)),
            };
            let cancelled = Cancelled(reasons);
            if (0..cancelled.0.len()).any(|i| cancelled.failed(i)) {
                return Ok(Err(cancelled));
            }
            let retryable = cancelled
                .0
                .iter()
                .any(|r| matches!(r.code(), Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")));
            if !retryable {
                return Err(sdk_error(err));
            }
            let cap_ms = (10u64 << attempt).min(500);
            let pause = rand::thread_rng().gen_range(1..=cap_ms);
            debug!(attempt, pause_ms = pause, "transaction conflict, retrying");
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(MarketError::Contention)
    }

    pub(crate) async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        self.usage.record(out.consumed_capacity());
        Ok(out.item)
    }

    /// A user's ledger, newest first (all pages). Admin reads page this (later: page tokens).
    pub async fn ledger_entries(&self, user: &UserId) -> Result<Vec<LedgerEntry>> {
        let mut entries = Vec::new();
        let mut token = None;
        loop {
            let page = MarketStore::list_ledger(self, user, token.as_deref(), 100).await?;
            entries.extend(page.items);
            token = page.next;
            if token.is_none() {
                return Ok(entries);
            }
        }
    }
}

fn now_set(now: Timestamp) -> aws_sdk_dynamodb::types::AttributeValue {
    n(now.millis())
}

fn ledger_item(entry: &LedgerEntry, entry_key: String) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(entry).map_err(mapping_error)?;
    item.insert(attr::AT_KEY.into(), s(at_key(entry.at().millis(), &entry_key)));
    item.insert(attr::ENTRY_KEY.into(), s(entry_key));
    Ok(item)
}

fn withdrawal_from_item(item: Item) -> Result<WithdrawalRecord> {
    match serde_dynamo::from_item(item).map_err(mapping_error)? {
        LedgerEntry::Withdrawal { user_id, withdrawal_id, amount, currency, available_after, at } => {
            Ok(WithdrawalRecord { withdrawal_id, user_id, amount, currency, available_after, at })
        }
        LedgerEntry::Reward { .. } => Err(MarketError::internal("ledger entry is not a withdrawal")),
    }
}

const POLICY_ENABLED: &str = "attribute_not_exists(#affiliate_enabled) OR #affiliate_enabled = :true";

impl MarketStore for DynamoStore {
    async fn get_policy(&self, user: &UserId) -> Result<Option<AffiliatePolicy>> {
        let item = self.get_item(&self.tables.policy, key(attr::USER_ID, user.as_str())).await?;
        item.map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()
    }

    async fn get_stats(&self, user: &UserId) -> Result<AffiliateStats> {
        match self.get_item(&self.tables.stats, key(attr::USER_ID, user.as_str())).await? {
            Some(item) => serde_dynamo::from_item(item).map_err(mapping_error),
            None => Ok(AffiliateStats::empty(user.clone())),
        }
    }

    async fn get_code(&self, code: &InviteCode) -> Result<Option<InviteCodeRecord>> {
        let item = self.get_item(&self.tables.codes, key(attr::CODE, code.as_str())).await?;
        item.map(|i| serde_dynamo::from_item(i).map_err(mapping_error)).transpose()
    }

    async fn list_active_codes(&self, owner: &UserId) -> Result<Vec<InviteCodeRecord>> {
        // The sparse index holds only codes not yet deactivated: cost is flat in table size.
        let mut codes = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.codes)
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
            self.usage.record(out.consumed_capacity());
            let page: Vec<InviteCodeRecord> =
                serde_dynamo::from_items(out.items.unwrap_or_default()).map_err(mapping_error)?;
            codes.extend(page);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(codes);
            }
        }
    }

    async fn create_code(&self, new: &NewCode) -> Result<()> {
        let rec = &new.record;
        let owner = rec.owner_id.as_str();
        let released = i64::try_from(new.release_expired.len()).map_err(|_| MarketError::Overflow)?;
        let mut item: Item = serde_dynamo::to_item(rec).map_err(mapping_error)?;
        item.insert(attr::ACTIVE_OWNER.into(), s(owner));

        let mut items = vec![
            // 0: the code is new (codes are unique across all users).
            put(&self.tables.codes, item, "attribute_not_exists(#code)", vec![])?,
            // 1: a slot is free; the counter, not the (eventually consistent) index, holds the limit.
            update(
                &self.tables.stats,
                key(attr::USER_ID, owner),
                "ADD #active_codes :delta SET #updated_at = :now",
                Some("attribute_not_exists(#active_codes) OR #active_codes < :threshold"),
                vec![
                    (":delta", n(1 - released)),
                    (":now", now_set(rec.created_at)),
                    (":threshold", n(i64::from(new.max_active) + released)),
                ],
            )?,
            // 2: the owner's affiliate ability is on.
            check(&self.tables.policy, key(attr::USER_ID, owner), POLICY_ENABLED, vec![(":true", b(true))])?,
        ];
        // 3..: expired codes whose slots this creation takes back (still active and expired).
        for code in &new.release_expired {
            items.push(update(
                &self.tables.codes,
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
        items.extend(audit_puts(&self.tables.audit, &new.audit)?);
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(c) if c.failed(0) => Err(MarketError::CodeCollision),
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
                &self.tables.codes,
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
                &self.tables.stats,
                key(attr::USER_ID, owner.as_str()),
                "ADD #active_codes :minus_one SET #updated_at = :now",
                None,
                vec![(":minus_one", n(-1)), (":now", now_set(now))],
            )?,
        ];
        items.extend(audit_puts(&self.tables.audit, std::slice::from_ref(audit))?);
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

    async fn register_user(&self, reg: &Registration) -> Result<RegistrationOutcome> {
        let user = reg.user.as_str();
        let at = now_set(reg.at);
        let first_time = "attribute_not_exists(#registered_at) AND attribute_not_exists(#inviter)";
        let Some(referral) = &reg.referral else {
            let mut items = vec![update(
                &self.tables.policy,
                key(attr::USER_ID, user),
                "SET #registered_at = :at",
                Some(first_time),
                vec![(":at", at)],
            )?];
            items.extend(audit_puts(&self.tables.audit, &reg.audit)?);
            return Ok(match self.transact(items).await? {
                Ok(()) => RegistrationOutcome::Registered { referred: false },
                Err(_) => RegistrationOutcome::AlreadyRegistered,
            });
        };
        if referral.inviter == reg.user {
            return Ok(RegistrationOutcome::ReferralRejected(ReferralRejection::SelfReferral));
        }
        let inviter = referral.inviter.as_str();
        let mut items = vec![
            // 0: first registration of this user; the inviter is written once, here.
            update(
                &self.tables.policy,
                key(attr::USER_ID, user),
                "SET #registered_at = :at, #inviter = :inviter, #invite_code = :code",
                Some(first_time),
                vec![(":at", at.clone()), (":inviter", s(inviter)), (":code", s(referral.code.as_str()))],
            )?,
            // 1: the code is still the inviter's, active and unexpired.
            update(
                &self.tables.codes,
                key(attr::CODE, referral.code.as_str()),
                "ADD #registrations :one",
                Some("#active_owner = :inviter AND (attribute_not_exists(#expires_at) OR #expires_at > :at)"),
                vec![(":one", n(1)), (":inviter", s(inviter)), (":at", at.clone())],
            )?,
            // 2: the inviter's statistics.
            update(
                &self.tables.stats,
                key(attr::USER_ID, inviter),
                "ADD #invited_count :one SET #updated_at = :at",
                None,
                vec![(":one", n(1)), (":at", at)],
            )?,
            // 3: the inviter's affiliate ability is on.
            check(&self.tables.policy, key(attr::USER_ID, inviter), POLICY_ENABLED, vec![(":true", b(true))])?,
        ];
        items.extend(audit_puts(&self.tables.audit, &reg.audit)?);
        match self.transact(items).await? {
            Ok(()) => Ok(RegistrationOutcome::Registered { referred: true }),
            Err(c) if c.failed(0) => Ok(RegistrationOutcome::AlreadyRegistered),
            Err(c) if c.failed(3) => Ok(RegistrationOutcome::ReferralRejected(ReferralRejection::InviterDisabled)),
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

    async fn apply_reward(&self, ev: &RewardEvent, audit: &AuditRecord) -> Result<RewardOutcome> {
        let entry = LedgerEntry::from(ev);
        let at = now_set(ev.occurred_at);
        let (limit_cond, mut buyer_values) = match ev.trigger_limit {
            TriggerLimit::Limited(limit) => (
                "#inviter = :inviter AND (attribute_not_exists(#rewards_triggered) OR #rewards_triggered < :limit)",
                vec![(":limit", n(i64::from(limit.get())))],
            ),
            TriggerLimit::Unlimited => ("#inviter = :inviter", vec![]),
        };
        buyer_values.extend([(":one", n(1)), (":inviter", s(ev.inviter.as_str()))]);
        let items = vec![
            // 0: exactly one reward per order.
            put(
                &self.tables.ledger,
                ledger_item(&entry, reward_entry_key(ev.order_id.as_str()))?,
                "attribute_not_exists(#entry_key)",
                vec![],
            )?,
            // 1: the buyer is this inviter's referral and still under the trigger limit.
            update(
                &self.tables.policy,
                key(attr::USER_ID, ev.buyer.as_str()),
                "ADD #rewards_triggered :one",
                Some(limit_cond),
                buyer_values,
            )?,
            // 2: the inviter's statistics.
            update(
                &self.tables.stats,
                key(attr::USER_ID, ev.inviter.as_str()),
                "ADD #total_earned :reward, #available :reward, #rewarded_orders :one SET #updated_at = :at",
                None,
                vec![(":reward", n(ev.reward.minor())), (":one", n(1)), (":at", at)],
            )?,
            // 3: the audit record.
            audit_put(&self.tables.audit, audit)?,
        ];
        Ok(match self.transact(items).await? {
            Ok(()) => RewardOutcome::Applied,
            Err(c) if c.failed(0) => RewardOutcome::Duplicate,
            Err(_) => RewardOutcome::LimitReached,
        })
    }

    async fn get_withdrawal(&self, user: &UserId, id: &WithdrawalId) -> Result<Option<WithdrawalRecord>> {
        let k = key2((attr::USER_ID, user.as_str()), (attr::ENTRY_KEY, &withdrawal_entry_key(id.as_str())));
        self.get_item(&self.tables.ledger, k).await?.map(withdrawal_from_item).transpose()
    }

    async fn withdraw(&self, req: &WithdrawalRequest) -> Result<WithdrawOutcome> {
        let rec = &req.record;
        let event = OutboundEvent::from(rec);
        let outbox = OutboxRecord {
            event_id: event.event_id().to_owned(),
            exchange: MARKET_EXCHANGE.to_owned(),
            routing_key: event.routing_key().to_owned(),
            payload: serde_json::to_string(&event).map_err(|e| MarketError::Internal(Box::new(e)))?,
            created_at: rec.at,
            relayed_at: None,
        };
        let items = vec![
            // 0: debit; conditional on the balance read, so `available_after` is exact and never < 0.
            update(
                &self.tables.stats,
                key(attr::USER_ID, rec.user_id.as_str()),
                "SET #available = :after, #updated_at = :at ADD #withdrawn_total :amount",
                Some("#available = :expected AND :after >= :zero"),
                vec![
                    (":after", n(rec.available_after.minor())),
                    (":at", now_set(rec.at)),
                    (":amount", n(rec.amount.minor())),
                    (":expected", n(req.expected_available.minor())),
                    (":zero", n(0)),
                ],
            )?,
            // 1: the ledger entry; its key is derived from the idempotency key.
            put(
                &self.tables.ledger,
                ledger_item(&LedgerEntry::from(rec), withdrawal_entry_key(rec.withdrawal_id.as_str()))?,
                "attribute_not_exists(#entry_key)",
                vec![],
            )?,
            // 2: the outbox record the balance owner will receive.
            put(
                &self.tables.outbox,
                serde_dynamo::to_item(&outbox).map_err(mapping_error)?,
                "attribute_not_exists(#event_id)",
                vec![],
            )?,
            // 3: the audit record.
            audit_put(&self.tables.audit, &req.audit)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(WithdrawOutcome::Done(rec.clone())),
            Err(c) if c.failed(1) => match c.old_item(1) {
                Some(old) => Ok(WithdrawOutcome::Replayed(withdrawal_from_item(old.clone())?)),
                None => Err(MarketError::internal("withdrawal replay without its ledger entry")),
            },
            Err(c) if c.failed(0) => {
                let available = match c.old_item(0) {
                    Some(old) => serde_dynamo::from_item::<_, AvailableOnly>(old.clone()).map_err(mapping_error)?.available,
                    None => Money::ZERO,
                };
                Ok(WithdrawOutcome::BalanceChanged(available))
            }
            Err(_) => Err(MarketError::internal("outbox record exists without its ledger entry")),
        }
    }

    async fn update_policy(&self, u: &PolicyUpdate) -> Result<bool> {
        let fields: [(&str, Option<AttributeValue>, Option<AttributeValue>); 4] = [
            (attr::COMMISSION_BPS, u.before.commission_bps.map(|b| n(i64::from(b.get()))), u.after.commission_bps.map(|b| n(i64::from(b.get())))),
            (attr::TRIGGER_LIMIT, limit_value(&u.before)?, limit_value(&u.after)?),
            (attr::MAX_ACTIVE_CODES, u.before.max_active_codes.map(|m| n(i64::from(m))), u.after.max_active_codes.map(|m| n(i64::from(m)))),
            (attr::AFFILIATE_ENABLED, u.before.affiliate_enabled.map(b), u.after.affiliate_enabled.map(b)),
        ];
        let (mut sets, mut removes, mut conds, mut values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, (name, before, after)) in fields.into_iter().enumerate() {
            // Placeholders are static strings: four fields, indexed.
            let (b_ph, a_ph) = ([":b0", ":b1", ":b2", ":b3"][i], [":a0", ":a1", ":a2", ":a3"][i]);
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
            update(&self.tables.policy, key(attr::USER_ID, u.user.as_str()), expression.trim(), Some(&condition), values)?,
            // 1: the audit record (before/after).
            audit_put(&self.tables.audit, &u.audit)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }

    async fn list_ledger(&self, user: &UserId, page_token: Option<&str>, limit: u32) -> Result<Page<LedgerEntry>> {
        let (items, next) = self
            .query_page(&self.tables.ledger, Some(LEDGER_BY_TIME_INDEX), (attr::USER_ID, user.as_str()), page_token, limit)
            .await?;
        Ok(Page { items: serde_dynamo::from_items(items).map_err(mapping_error)?, next })
    }

    async fn list_audit(&self, subject: &str, page_token: Option<&str>, limit: u32) -> Result<Page<AuditRecord>> {
        self.audit_page(subject, page_token, limit).await
    }

    async fn put_audit(&self, record: &AuditRecord) -> Result<()> {
        self.put_audit_item(record).await
    }
}

fn limit_value(o: &PolicyOverrides) -> Result<Option<AttributeValue>> {
    o.trigger_limit.map(|l| serde_dynamo::to_attribute_value(l).map_err(mapping_error)).transpose()
}
