//! The port of reward groups: named, versioned rule sets (issue 27).

use std::future::Future;

use crate::audit::AuditRecord;
use crate::group::{GroupName, RewardGroup};

use super::Result;

/// A group's next version, written over the version it was based on.
#[derive(Debug, Clone)]
pub struct GroupWrite {
    /// With `version` = the version it replaces + 1 (1: a new group).
    pub group: RewardGroup,
    /// The change's audit record (before and after), in the same transaction.
    pub audit: AuditRecord,
}

pub trait GroupStore: Send + Sync + 'static {
    /// A group's current version (strongly consistent: a change applies to every reward
    /// decided after it); `None` when never defined.
    fn get_group(&self, name: &GroupName) -> impl Future<Output = Result<Option<RewardGroup>>> + Send;
    /// One version of a group, as it was (what a reward earned under it was decided by).
    fn get_group_version(&self, name: &GroupName, version: u64) -> impl Future<Output = Result<Option<RewardGroup>>> + Send;
    /// Writes the next version unless another change came first (`Ok(false)`: nothing
    /// written).
    fn put_group(&self, write: &GroupWrite) -> impl Future<Output = Result<bool>> + Send;
    /// Every defined group's current version, by name (a programme holds few: bounded).
    fn list_groups(&self) -> impl Future<Output = Result<Vec<RewardGroup>>> + Send;
}
