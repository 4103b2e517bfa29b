//! A user's personal data for an export (GDPR art. 15), in sections, found by key or through
//! an index on the user — never a `Scan`:
//! - by key: the policy, the statistics (main item + shards), the ledger partition, the
//!   audit trail, the waiting events (strongly consistent);
//! - by index (eventually consistent, keys only or a few attributes, each written once per
//!   item), read back by key where keys only: the codes (`by-owner`), the records on others'
//!   trails that name the user (`by-about`), the referrals (`by-inviter`: `inviter` on the
//!   referred users' policies), the commissions others earned on the user's orders
//!   (`by-buyer`, with their reward entries).
//!
//! A page reads every section not finished yet at once (each from where it stands, at most
//! `limit` records of each); its token says where each stands, bound to the user.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use market_domain::ids::UserId;
use market_domain::personal_data::{DataRecord, DataSection};
use market_domain::ports::{Page, PersonalDataStore, Result};
use market_domain::MarketError;
use serde::{Deserialize, Serialize};

use crate::error::mapping_error;
use crate::expr::{key, key2, Item};
use crate::paging::Listing;
use crate::tables::{attr, reward_entry_key, stats_ids, BY_ABOUT_INDEX, BY_BUYER_INDEX, BY_INVITER_INDEX, BY_OWNER_INDEX};
use crate::DynamoStore;

/// Keys a `BatchGetItem` takes.
const BATCH_KEYS: u32 = 100;

/// Where each section of an export stands: its own page token while it has more, listed
/// when done, at its start otherwise.
#[derive(Serialize, Deserialize, Default)]
struct Position {
    /// Whose export.
    u: String,
    /// Sections (index in `DataSection::ALL`) with more to read, and their page tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    at: BTreeMap<usize, String>,
    /// Sections read to their end.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    done: BTreeSet<usize>,
}

fn invalid_token() -> MarketError {
    MarketError::InvalidArgument("invalid page token".into())
}

fn encode(p: &Position) -> Option<String> {
    serde_json::to_vec(p).ok().map(|json| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn decode(user: &UserId, token: Option<&str>) -> Result<Position> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(Position { u: user.to_string(), ..Position::default() }) };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    let p: Position = serde_json::from_slice(&bytes).map_err(|_| invalid_token())?;
    let n = DataSection::ALL.len();
    if p.u != user.as_str() || p.at.keys().chain(&p.done).any(|s| *s >= n) || p.done.len() >= n || p.at.keys().any(|s| p.done.contains(s)) {
        return Err(invalid_token());
    }
    Ok(p)
}

/// A stored item as plain JSON (numbers as numbers).
fn json_of(item: Item) -> Result<serde_json::Value> {
    serde_dynamo::from_item(item).map_err(mapping_error)
}

impl DynamoStore {
    /// One read of a section from `token` on: its records and where it continues.
    async fn section_page(&self, user: &UserId, section: DataSection, token: Option<&str>, limit: u32) -> Result<(Vec<Item>, Option<String>)> {
        let t = self.tables();
        let u = user.as_str();
        Ok(match section {
            DataSection::Policy => (self.get_item(&t.policy, key(attr::USER_ID, u)).await?.into_iter().collect(), None),
            DataSection::Statistics => {
                let keys = stats_ids(u).map(|k| (t.stats.as_str(), key(attr::USER_ID, k))).collect();
                (self.get_items(keys).await?.into_iter().flatten().collect(), None)
            }
            DataSection::Ledger => self.query_page(&t.ledger, (None, Listing::NewestFirst), (attr::USER_ID, u), token, limit).await?,
            DataSection::AuditTrail => self.query_page(&t.audit, (None, Listing::NewestFirst), (attr::SUBJECT, u), token, limit).await?,
            DataSection::AuditMentions => {
                let index = (Some(BY_ABOUT_INDEX), Listing::GsiOldestFirst);
                let (keys, next) = self.query_page(&t.audit, index, (attr::ABOUT, u), token, limit.min(BATCH_KEYS)).await?;
                let keys = keys
                    .iter()
                    .filter_map(|k| Some((string(k, attr::SUBJECT)?, string(k, attr::AT_KEY)?)))
                    .map(|(subject, at)| (t.audit.as_str(), key2((attr::SUBJECT, subject), (attr::AT_KEY, at))))
                    .collect();
                (self.read_back(keys).await?, next)
            }
            DataSection::WaitingEvents => self.query_page(&t.parked, (None, Listing::NewestFirst), (attr::USER_ID, u), token, limit).await?,
            DataSection::Referrals => self.query_page(&t.policy, (Some(BY_INVITER_INDEX), Listing::GsiOldestFirst), (attr::INVITER, u), token, limit).await?,
            DataSection::InviteCodes => {
                let index = (Some(BY_OWNER_INDEX), Listing::GsiOldestFirst);
                let (keys, next) = self.query_page(&t.codes, index, (attr::OWNER_ID, u), token, limit.min(BATCH_KEYS)).await?;
                let keys = keys.iter().filter_map(|k| k.get(attr::CODE).cloned()).map(|c| (t.codes.as_str(), Item::from([(attr::CODE.to_owned(), c)]))).collect();
                (self.read_back(keys).await?, next)
            }
            DataSection::PurchasesReferred => {
                // Each commission and its reward entry (same partition, same order).
                let index = (Some(BY_BUYER_INDEX), Listing::GsiOldestFirst);
                let (keys, next) = self.query_page(&t.ledger, index, (attr::BUYER, u), token, limit.min(BATCH_KEYS / 2)).await?;
                let mut reads = Vec::new();
                for k in &keys {
                    let (Some(earner), Some(entry)) = (string(k, attr::USER_ID), string(k, attr::ENTRY_KEY)) else { continue };
                    let Some(order) = entry.strip_prefix("commission#") else { continue };
                    reads.push((t.ledger.as_str(), key2((attr::USER_ID, earner), (attr::ENTRY_KEY, entry))));
                    reads.push((t.ledger.as_str(), key2((attr::USER_ID, earner), (attr::ENTRY_KEY, &reward_entry_key(order)))));
                }
                (self.read_back(reads).await?, next)
            }
        })
    }

    /// Items an index named, read by key (those gone since are left out).
    async fn read_back(&self, keys: Vec<(&str, Item)>) -> Result<Vec<Item>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.get_items(keys).await?.into_iter().flatten().collect())
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v: &AttributeValue| v.as_s().ok()).map(String::as_str)
}

impl PersonalDataStore for DynamoStore {
    async fn personal_data(&self, user: &UserId, page_token: Option<&str>, limit: u32) -> Result<Page<DataRecord>> {
        let mut at = decode(user, page_token)?;
        // Every section not read to its end, at once: a page costs one round trip (two for
        // an index read back by key), whatever the number of sections.
        let open: Vec<(usize, DataSection)> = DataSection::ALL.iter().copied().enumerate().filter(|(i, _)| !at.done.contains(i)).collect();
        let reads = open.iter().map(|(i, section)| self.section_page(user, *section, at.at.get(i).map(String::as_str), limit));
        let pages = futures::future::try_join_all(reads).await?;
        let mut records = Vec::new();
        for ((i, section), (items, next)) in open.into_iter().zip(pages) {
            for item in items {
                records.push(DataRecord { section, record: json_of(item)? });
            }
            match next {
                Some(t) => {
                    at.at.insert(i, t);
                }
                None => {
                    at.at.remove(&i);
                    at.done.insert(i);
                }
            }
        }
        let next = if at.done.len() < DataSection::ALL.len() { Some(encode(&at).ok_or_else(|| MarketError::internal("page token"))?) } else { None };
        Ok(Page { items: records, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_user_and_name_real_sections() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let p = Position { u: "alice".into(), at: BTreeMap::from([(3, "x".into())]), done: BTreeSet::from([0, 1]) };
        let token = encode(&p).unwrap();
        let back = decode(&alice, Some(&token)).unwrap();
        assert_eq!((back.at, back.done), (p.at, p.done));
        assert!(decode(&bob, Some(&token)).is_err(), "another user's token");
        let beyond = encode(&Position { u: "alice".into(), done: BTreeSet::from([DataSection::ALL.len()]), ..Position::default() }).unwrap();
        assert!(decode(&alice, Some(&beyond)).is_err());
        let both = encode(&Position { u: "alice".into(), at: BTreeMap::from([(2, "x".into())]), done: BTreeSet::from([2]) }).unwrap();
        assert!(decode(&alice, Some(&both)).is_err(), "a section both open and done");
        assert!(decode(&alice, Some("not base64 json")).is_err());
        assert!(decode(&alice, None).unwrap().done.is_empty());
    }
}
