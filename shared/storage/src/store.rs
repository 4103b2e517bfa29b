//! The DynamoDB store: the client, the tables, and what every aggregate's adapter shares —
//! one `TransactWriteItems` per change (conflicts retried, cancellation reasons with the old
//! items handed back as [`Cancelled`]), consistent `GetItem` and `BatchGetItem`, and capacity
//! accounting.
//! The domain's store ports are implemented one file per aggregate: [`crate::codes`],
//! [`crate::referrals`], [`crate::commissions`], [`crate::balance`], [`crate::history`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, ConsumedCapacity, KeysAndAttributes, ReturnConsumedCapacity, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use market_domain::ports::Result;
use market_domain::MarketError;
use rand::Rng;
use tracing::debug;

use crate::error::sdk_error;
use crate::expr::Item;
use crate::tables::Tables;

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
    /// Transactions DynamoDB cancelled for a conflict with another one (then retried).
    conflicts: AtomicU64,
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
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
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
pub(crate) struct Cancelled(Vec<CancellationReason>);

impl Cancelled {
    pub(crate) fn failed(&self, index: usize) -> bool {
        self.0.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
    }
    pub(crate) fn any_failed(&self, indexes: std::ops::Range<usize>) -> bool {
        indexes.into_iter().any(|i| self.failed(i))
    }
    pub(crate) fn old_item(&self, index: usize) -> Option<&Item> {
        self.0.get(index).and_then(|r| r.item())
    }
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
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<std::result::Result<(), Cancelled>> {
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
            // An item an erasure is moving: retried later, when the user is their pseudonym.
            if (0..cancelled.0.len()).any(|i| cancelled.failed(i) && cancelled.old_item(i).is_some_and(|o| o.contains_key(crate::tables::attr::ERASING))) {
                debug!("a write met a user being erased");
                return Err(MarketError::Contention);
            }
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
            self.usage.conflicts.fetch_add(1, Ordering::Relaxed);
            // market_lambda::metrics::names::TRANSACTION_CONFLICTS (the facade: a no-op
            // outside a function).
            metrics::counter!("TransactionConflicts").increment(1);
            let cap_ms = (10u64 << attempt).min(500);
            let pause = rand::thread_rng().gen_range(1..=cap_ms);
            debug!(attempt, pause_ms = pause, "transaction conflict, retrying");
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(MarketError::Contention)
    }

    /// One page after another of a key condition on a table or one of its indexes, up to
    /// `limit` items (ascending sort key).
    pub(crate) async fn query(
        &self,
        table: &str,
        index: Option<&str>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        consistent: bool,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let remaining = i32::try_from(limit.saturating_sub(items.len())).unwrap_or(i32::MAX);
            let mut q = self
                .client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .consistent_read(consistent)
                .limit(remaining)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            for name in crate::expr::names_in(&[condition]).unwrap_or_default() {
                q = q.expression_attribute_names(name.0, name.1);
            }
            for (k, v) in values.iter().cloned() {
                q = q.expression_attribute_values(k, v);
            }
            let out = q.send().await.map_err(sdk_error)?;
            self.usage.record(out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || items.len() >= limit {
                return Ok(items);
            }
        }
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

    /// Consistent reads of items of one or more tables in one `BatchGetItem` (at most 100
    /// keys), in the order asked. A key DynamoDB leaves unprocessed (throttling) is read on
    /// its own.
    pub(crate) async fn get_items(&self, keys: Vec<(&str, Item)>) -> Result<Vec<Option<Item>>> {
        let mut grouped: HashMap<String, Vec<Item>> = HashMap::new();
        for (table, key) in &keys {
            grouped.entry((*table).to_owned()).or_default().push(key.clone());
        }
        let mut request = HashMap::with_capacity(grouped.len());
        for (table, table_keys) in grouped {
            let read = KeysAndAttributes::builder().set_keys(Some(table_keys)).consistent_read(true).build().map_err(|e| MarketError::Internal(Box::new(e)))?;
            request.insert(table, read);
        }
        let out = self
            .client
            .batch_get_item()
            .set_request_items(Some(request))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        self.usage.record(out.consumed_capacity());
        let found = out.responses.unwrap_or_default();
        let unprocessed = out.unprocessed_keys.unwrap_or_default();
        // An item answers a key when it holds the key's attributes with their values.
        let holds = |item: &Item, key: &Item| key.iter().all(|(k, v)| item.get(k) == Some(v));
        let mut items = Vec::with_capacity(keys.len());
        for (table, key) in keys {
            let left = unprocessed.get(table).is_some_and(|u| u.keys().iter().any(|k| k == &key));
            items.push(if left {
                self.get_item(table, key).await?
            } else {
                found.get(table).and_then(|rows| rows.iter().find(|i| holds(i, &key)).cloned())
            });
        }
        Ok(items)
    }
}

