//! Each affiliate's event sequence. An affiliate's lifecycle events carry the next numbers of
//! a gap-free sequence, kept on the affiliate's main statistics item (`event_seq`) and moved
//! on in the transaction that writes the events to the outbox, conditional on the number
//! read. Two money transitions of one affiliate thus serialize on that item: the one that
//! lost finds its condition failed, and its writer rebuilds the same transaction on the
//! number (and main balance) the cancellation handed back as the item's old image
//! ([`Sequencing::moved`], [`Sequencing::rebuilt`]) — at once, without a read, so it tries
//! while that state is fresh (reading again first, a withdrawal lost 50 rounds in a row to
//! a stream of rewards now and then); the step's own conditions are untouched, so the
//! processor never notices. The outbox record is `attribute_not_exists` on the event id, so an
//! event exists exactly when its change committed.
//!
//! The same read gives `available` (the main item and every shard) for events that report it:
//! exact, since every money transition of the affiliate moves the sequence while events are on.
//! A withdrawal or adjustment read both with its statistics already: its first attempt
//! numbers on that read ([`SequenceAsRead`]), so it makes one sequential read, not two.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use market_domain::ids::UserId;
use market_domain::lifecycle::events::Publication;
use market_domain::money::Money;
use market_domain::ports::{Result, SequenceAsRead};
use market_domain::time::Timestamp;
use market_domain::MarketError;
use rand::Rng;

use crate::error::mapping_error;
use crate::expr::{key, n, put, Item, Values};
use crate::outbox::OutboxRecord;
use crate::tables::{attr, stats_shard_keys, MARKET_EXCHANGE, STATS_SHARDS};
use crate::DynamoStore;

/// Rebuilds of one transaction after another transition of the same affiliate came first:
/// each round one of the affiliate's concurrent transitions wins, so this bounds how many
/// can queue on one affiliate at once (a money hook's reserved concurrency is 10) before
/// one gives up with `Contention` (a hook's message is then redelivered, an RPC retried).
const SEQUENCE_ATTEMPTS: u32 = 50;

/// What one affiliate's sequence and balance were when read.
#[derive(Debug, Clone, Copy)]
struct Read {
    seq: i64,
    /// Main item and shards, when one of the affiliate's events reports it.
    available: Option<i64>,
    /// Of `available`, the shards' part: rewards credit them only while events are off, so a
    /// rebuild takes them as read and the main item's part from the cancellation.
    apart: i64,
}

/// What one attempt of a sequenced write came to.
pub(crate) enum Step<T> {
    Done(T),
    /// Another transition of one of its affiliates came first: again, on these sequences
    /// (taken from the cancellation's old images), or on a fresh read (`None`).
    Again(Option<Sequencing>),
}

/// The sequences read for one attempt of a publishing transaction (empty when the
/// publication is not sequenced: then only the outbox records are written, as before
/// lifecycle events).
#[derive(Debug, Default, Clone)]
pub(crate) struct Sequencing {
    read: HashMap<UserId, Read>,
    /// Events per affiliate in this publication.
    counts: HashMap<UserId, i64>,
}

/// The sequence's part of an affiliate's main statistics update.
pub(crate) struct Guard {
    pub set: [(&'static str, &'static str, i64); 1],
    pub condition: &'static str,
    pub values: Values,
}

fn number(item: Option<&Item>, name: &str) -> i64 {
    item.and_then(|i| i.get(name)).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// An affiliate's sequence and stored `available` from their main statistics item and its
/// shards as read.
pub(crate) fn sequence_as_read(main: Option<&Item>, shards: impl IntoIterator<Item = Option<Item>>) -> Result<SequenceAsRead> {
    let mut apart = 0i64;
    for shard in shards {
        apart = apart.checked_add(number(shard.as_ref(), attr::AVAILABLE)).ok_or(MarketError::Overflow)?;
    }
    let available = number(main, attr::AVAILABLE).checked_add(apart).ok_or(MarketError::Overflow)?;
    let event_seq = u64::try_from(number(main, attr::EVENT_SEQ)).map_err(|_| MarketError::Overflow)?;
    Ok(SequenceAsRead { event_seq, available: Money::from_minor(available), apart: Money::from_minor(apart) })
}

impl Read {
    /// What a sequenced write works on, from a read of the affiliate's statistics (the
    /// balance only when one of its events reports it).
    fn of(read: SequenceAsRead, needs_available: bool) -> Result<Read> {
        let seq = i64::try_from(read.event_seq).map_err(|_| MarketError::Overflow)?;
        Ok(Read { seq, available: needs_available.then_some(read.available.minor()), apart: read.apart.minor() })
    }
}

/// How a write that lost a round waits before the next: someone waits for a withdrawal or
/// an adjustment, nobody for a hook's reward, refund or maturity (SQS redelivers one that
/// gives up). Short pauses for the first make a stream of an affiliate's rewards yield to
/// its withdrawal instead of starving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    Interactive,
    Background,
}

impl DynamoStore {
    /// Runs a publishing write: `attempt` on the sequences read until it is done, at most
    /// [`SEQUENCE_ATTEMPTS`] times (each `Again` means another transition of one of its
    /// affiliates came first), else `Contention`.
    pub(crate) async fn sequenced<T, F, Fut>(&self, p: &Publication, patience: Patience, attempt: F) -> Result<T>
    where
        F: FnMut(Sequencing) -> Fut,
        Fut: std::future::Future<Output = Result<Step<T>>>,
    {
        self.sequenced_from(p, patience, None, attempt).await
    }

    /// [`DynamoStore::sequenced`], the first attempt on `as_read` (the one affiliate's
    /// sequence and balance as its caller read them) when the publication names only them.
    pub(crate) async fn sequenced_from<T, F, Fut>(&self, p: &Publication, patience: Patience, as_read: Option<(&UserId, SequenceAsRead)>, mut attempt: F) -> Result<T>
    where
        F: FnMut(Sequencing) -> Fut,
        Fut: std::future::Future<Output = Result<Step<T>>>,
    {
        let mut next = as_read.and_then(|(user, read)| Sequencing::as_read(p, user, read));
        for round in 0..SEQUENCE_ATTEMPTS {
            let seq = match next.take() {
                Some(seq) => seq,
                None => self.read_sequences(p).await?,
            };
            match attempt(seq).await? {
                Step::Done(done) => return Ok(done),
                Step::Again(known) => next = known,
            }
            // market_lambda::metrics::names::SEQUENCE_RETRIES (a no-op outside a function).
            metrics::counter!("SequenceRetries").increment(1);
            tracing::debug!(round, ?patience, "an affiliate's event sequence moved first, rebuilding");
            pause(round, patience).await;
        }
        Err(MarketError::Contention)
    }

    /// Reads the sequence (and, where an event reports it, the balance) of every affiliate
    /// the publication names: one `BatchGetItem`, none when not sequenced.
    async fn read_sequences(&self, p: &Publication) -> Result<Sequencing> {
        let mut s = Sequencing::default();
        if !p.sequenced || p.events.is_empty() {
            return Ok(s);
        }
        let mut whole: Vec<(UserId, bool)> = Vec::new();
        for e in &p.events {
            *s.counts.entry(e.affiliate.clone()).or_default() += 1;
            match whole.iter_mut().find(|(u, _)| *u == e.affiliate) {
                Some((_, needs)) => *needs |= e.reports_available(),
                None => whole.push((e.affiliate.clone(), e.reports_available())),
            }
        }
        let table = self.tables().stats.as_str();
        let mut keys = Vec::new();
        for (user, needs) in &whole {
            keys.push((table, key(attr::USER_ID, user.as_str())));
            if *needs {
                keys.extend(stats_shard_keys(user.as_str()).map(|k| (table, key(attr::USER_ID, k))));
            }
        }
        let mut items = self.get_items(keys).await?.into_iter();
        for (user, needs) in whole {
            let main = items.next().flatten();
            let shards = items.by_ref().take(if needs { STATS_SHARDS as usize } else { 0 });
            s.read.insert(user, Read::of(sequence_as_read(main.as_ref(), shards)?, needs)?);
        }
        Ok(s)
    }
}

impl Sequencing {
    /// The sequencing of a publication of `user`'s events alone, on what its caller read
    /// (`None`: not sequenced, or it names another affiliate too: read).
    fn as_read(p: &Publication, user: &UserId, read: SequenceAsRead) -> Option<Sequencing> {
        if !p.sequenced || p.events.is_empty() || p.events.iter().any(|e| &e.affiliate != user) {
            return None;
        }
        let needs = p.events.iter().any(|e| e.reports_available());
        let count = i64::try_from(p.events.len()).ok()?;
        Some(Sequencing { read: HashMap::from([(user.clone(), Read::of(read, needs).ok()?)]), counts: HashMap::from([(user.clone(), count)]) })
    }

    /// The sequences to try again on after a cancellation: each failed affiliate's number and
    /// main `available` from its statistics item as the cancellation handed it back (no read:
    /// the retry goes at once, while the state is fresh), the rest as read. `None` when an
    /// old image is missing: read.
    pub(crate) fn rebuilt<'a>(&self, failed: impl IntoIterator<Item = (&'a UserId, Option<&'a Item>)>) -> Option<Sequencing> {
        let mut next = self.clone();
        for (user, old) in failed {
            let old = old?;
            let read = next.read.get_mut(user)?;
            read.seq = number(Some(old), attr::EVENT_SEQ);
            if let Some(a) = read.available.as_mut() {
                *a = number(Some(old), attr::AVAILABLE).checked_add(read.apart)?;
            }
        }
        Some(next)
    }

    /// Affiliates with events whose statistics the transaction does not otherwise touch.
    pub(crate) fn affiliates(&self) -> impl Iterator<Item = &UserId> {
        self.read.keys()
    }

    /// `SET event_seq` to the last number this transaction uses, on the number read.
    pub(crate) fn guard(&self, user: &UserId) -> Option<Guard> {
        let read = self.read.get(user)?;
        let next = read.seq + self.counts.get(user).copied().unwrap_or(0);
        let (condition, values) = if read.seq == 0 {
            ("attribute_not_exists(#event_seq)", vec![])
        } else {
            ("#event_seq = :seq", vec![(":seq", n(read.seq))])
        };
        Some(Guard { set: [(attr::EVENT_SEQ, ":next_seq", next)], condition, values })
    }

    /// Whether a cancelled transaction's failed statistics item (as it was) shows that the
    /// affiliate's sequence moved since it was read: then rebuild ([`Sequencing::rebuilt`]).
    pub(crate) fn moved(&self, user: &UserId, old: Option<&Item>) -> bool {
        self.read.get(user).is_some_and(|r| number(old, attr::EVENT_SEQ) != r.seq)
    }

    /// The publication's outbox records, each affiliate's events numbered on from its read.
    pub(crate) fn outbox_items(&self, table: &str, p: &Publication, at: Timestamp) -> Result<Vec<TransactWriteItem>> {
        let mut state: HashMap<&UserId, (i64, Option<i64>)> = self.read.iter().map(|(u, r)| (u, (r.seq, r.available))).collect();
        let mut items = Vec::with_capacity(p.events.len());
        for e in &p.events {
            let (sequence, available) = match state.get_mut(&e.affiliate) {
                Some((seq, available)) => {
                    *seq += 1;
                    if let Some(a) = available.as_mut() {
                        *a = a.checked_add(e.available_delta).ok_or(MarketError::Overflow)?;
                    }
                    (Some(u64::try_from(*seq).map_err(|_| MarketError::Overflow)?), available.map(Money::from_minor))
                }
                None => (None, None),
            };
            let record = OutboxRecord {
                event_id: e.event_id.clone(),
                exchange: MARKET_EXCHANGE.to_owned(),
                routing_key: e.routing_key().to_owned(),
                payload: e.to_wire(sequence, available).to_string(),
                created_at: at,
                relayed_at: None,
            };
            items.push(put(table, serde_dynamo::to_item(&record).map_err(mapping_error)?, "attribute_not_exists(#event_id)", vec![])?);
        }
        Ok(items)
    }
}

/// A jittered pause before rebuilding: interactive writes retry at once (the other
/// transition has committed already); background ones back off as contenders show up.
async fn pause(attempt: u32, patience: Patience) {
    let cap_ms = match patience {
        Patience::Interactive => 4,
        Patience::Background => (5u64 << attempt.min(6)).min(200),
    };
    let ms = rand::thread_rng().gen_range(1..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_takes_the_number_and_main_balance_from_the_cancellation_and_the_shards_as_read() {
        let alice = UserId::parse("alice").unwrap();
        let s = Sequencing {
            read: HashMap::from([(alice.clone(), Read { seq: 3, available: Some(500), apart: 200 })]),
            counts: HashMap::from([(alice.clone(), 2)]),
        };
        let old: Item = HashMap::from([(attr::EVENT_SEQ.to_owned(), n(5)), (attr::AVAILABLE.to_owned(), n(450))]);
        assert!(s.moved(&alice, Some(&old)));
        let next = s.rebuilt([(&alice, Some(&old))]).expect("rebuilt from the old image");
        let r = next.read[&alice];
        assert_eq!((r.seq, r.available, r.apart), (5, Some(650), 200), "main from the cancellation, shards as read");
        let guard = next.guard(&alice).unwrap();
        assert_eq!((guard.condition, guard.set[0].2), ("#event_seq = :seq", 7), "on the number seen, two events on");
        assert!(!next.moved(&alice, Some(&old)));
        assert!(s.rebuilt([(&alice, None)]).is_none(), "no old image: read");
    }
}
