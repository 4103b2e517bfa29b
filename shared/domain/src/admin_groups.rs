//! The admin API of reward groups: list them, define or change one (versioned, audited with
//! before and after on the market's trail). Moving an affiliate between groups is
//! `UpdateUserPolicy`'s `group`.

use serde_json::json;
use tracing::info;

use crate::admin::AdminRequest;
use crate::audit::{Actor, AuditAction, AuditRecord, MARKET_SUBJECT};
use crate::config::MAX_EXTRA_LEVELS;
use crate::error::MarketError;
use crate::group::{GroupName, RewardGroup, RewardRules};
use crate::ports::{ConfigSource, GroupWrite, MarketStore};
use crate::processors::{Deps, Processor};
use crate::rules::default_group;

pub struct ListRewardGroups<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for ListRewardGroups<S, C> {
    type Request = ();
    type Response = Vec<RewardGroup>;

    /// Every defined group by name, and the default group as the configuration defines it
    /// while it is not defined.
    async fn process(&self, _: ()) -> Result<Vec<RewardGroup>, MarketError> {
        let d = &self.0;
        let (groups, config) = futures::join!(d.store.list_groups(), d.config.current());
        let mut groups = groups?;
        if !groups.iter().any(|g| g.name.is_default()) {
            groups.push(default_group(&config));
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }
}

/// A group's new rules, over the version the admin read (0: not defined yet).
pub struct GroupChange {
    pub name: GroupName,
    pub rules: RewardRules,
    pub description: String,
    pub expected_version: u64,
}

pub struct PutRewardGroup<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for PutRewardGroup<S, C> {
    type Request = AdminRequest<GroupChange>;
    type Response = RewardGroup;

    async fn process(&self, req: AdminRequest<GroupChange>) -> Result<RewardGroup, MarketError> {
        let d = &self.0;
        let change = &req.body;
        let (stored, config) = futures::join!(d.store.get_group(&change.name), d.config.current());
        let stored = stored?;
        let current = stored.as_ref().map_or(0, |g| g.version);
        if current != change.expected_version {
            return Err(MarketError::VersionConflict { current });
        }
        let now = d.clock.now();
        let group = RewardGroup {
            name: change.name.clone(),
            version: current.checked_add(1).ok_or(MarketError::Overflow)?,
            rules: change.rules.clone(),
            description: change.description.clone(),
            updated_at: Some(now),
            updated_by: Some(req.admin.to_string()),
        };
        group.validate(MAX_EXTRA_LEVELS)?;
        // Before: what rewards were decided by until now (the configuration's, for a
        // default group never defined).
        let before = stored.or_else(|| change.name.is_default().then(|| default_group(&config)));
        let audit = AuditRecord {
            subject: MARKET_SUBJECT.to_owned(),
            at: now,
            action: AuditAction::RewardGroupChanged,
            actor: Actor::Admin(req.admin.clone()),
            request_id: req.request_id.clone(),
            details: json!({"group": group.name, "version": group.version, "before": before.map(|b| b.rules), "after": group.rules, "description": group.description}),
            about: None,
        };
        if !d.store.put_group(&GroupWrite { group: group.clone(), audit }).await? {
            let current = d.store.get_group(&change.name).await?.map_or(0, |g| g.version);
            return Err(MarketError::VersionConflict { current });
        }
        info!(admin = %req.admin, group = %group.name, version = group.version, request_id = %req.request_id, "reward group changed");
        Ok(group)
    }
}
