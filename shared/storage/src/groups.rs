//! Reward groups (issue 27): PK `group_name`, SK `version`. Each version is an immutable
//! item (`version` ≥ 1: what a reward earned under it was decided by); the head item
//! (`version` 0) holds the current version's rules with `current` = its number and `head`
//! (the sparse GSI `heads`: every group by name, for the admin listing — may lag a change
//! by a moment). A change writes the next version and the head in one transaction,
//! conditional on the head's `current` as read (a new group: no head yet), with its audit
//! record.

use market_domain::group::{GroupName, RewardGroup};
use market_domain::ports::{GroupStore, GroupWrite, Result};
use market_domain::MarketError;

use crate::audit::audit_put;
use crate::error::mapping_error;
use crate::expr::{key2_n, n, put, s, Item};
use crate::tables::{attr, GROUP_HEADS_INDEX, GROUP_HEAD_PARTITION};
use crate::DynamoStore;

/// Groups the admin listing returns (a programme defines a handful).
const MAX_LISTED: usize = 200;

fn version_key(name: &GroupName, version: u64) -> Result<Item> {
    Ok(key2_n((attr::GROUP_NAME, name.as_str()), (attr::VERSION, i64::try_from(version).map_err(|_| MarketError::Overflow)?)))
}

/// A group's item at `version` (0: the head, which records the current version apart).
fn group_item(g: &RewardGroup, head: bool) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(g).map_err(mapping_error)?;
    let current = i64::try_from(g.version).map_err(|_| MarketError::Overflow)?;
    item.extend(version_key(&g.name, if head { 0 } else { g.version })?);
    if head {
        item.insert(attr::CURRENT.into(), n(current));
        item.insert(attr::HEAD.into(), s(GROUP_HEAD_PARTITION));
    }
    Ok(item)
}

fn group_from(mut item: Item) -> Result<RewardGroup> {
    // The head's number is `current` (its `version` is the key 0).
    if let Some(current) = item.remove(attr::CURRENT) {
        item.insert(attr::VERSION.into(), current);
    }
    serde_dynamo::from_item(item).map_err(mapping_error)
}

impl GroupStore for DynamoStore {
    async fn get_group(&self, name: &GroupName) -> Result<Option<RewardGroup>> {
        self.get_item(&self.tables().groups, version_key(name, 0)?).await?.map(group_from).transpose()
    }

    async fn get_group_version(&self, name: &GroupName, version: u64) -> Result<Option<RewardGroup>> {
        if version == 0 {
            return Ok(None);
        }
        self.get_item(&self.tables().groups, version_key(name, version)?).await?.map(group_from).transpose()
    }

    async fn put_group(&self, w: &GroupWrite) -> Result<bool> {
        let t = self.tables();
        let head = match w.group.version {
            0 => return Err(MarketError::internal("a group version starts at 1")),
            1 => put(&t.groups, group_item(&w.group, true)?, "attribute_not_exists(#group_name)", vec![])?,
            v => put(&t.groups, group_item(&w.group, true)?, "#current = :previous", vec![(":previous", n(i64::try_from(v - 1).map_err(|_| MarketError::Overflow)?))])?,
        };
        let items = vec![
            // 0: the head, still at the version the change was based on.
            head,
            // 1: the version itself, immutable.
            put(&t.groups, group_item(&w.group, false)?, "attribute_not_exists(#group_name)", vec![])?,
            audit_put(t, &w.audit)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }

    async fn list_groups(&self) -> Result<Vec<RewardGroup>> {
        let items = self.query(&self.tables().groups, Some(GROUP_HEADS_INDEX), "#head = :h", vec![(":h", s(GROUP_HEAD_PARTITION))], false, MAX_LISTED).await?;
        items.into_iter().map(group_from).collect()
    }
}
