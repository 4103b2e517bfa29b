//! Maturity: commissions whose holding period ended move from pending to available, on
//! demand per user and by the scheduled catch-up.

use std::collections::BTreeSet;

use serde_json::json;
use tracing::{info, warn};

use crate::audit::{Actor, AuditAction, AuditRecord};
use crate::error::MarketError;
use crate::lifecycle::events::{LifecycleEvent, Publication};
use crate::ids::UserId;
use crate::lifecycle::{Change, Commission};
use crate::ports::{ConfigSource, Maturation, MarketStore, MAX_FOLD_PER_TRANSACTION};
use crate::time::Timestamp;

use super::rewards::COMMISSION_ATTEMPTS;
use super::{Deps, Processor, MATURATION_SOURCE};

// ---------------------------------------------------------------- maturity

/// Moves a user's commissions whose holding period is over from pending to available (in
/// transactions of at most [`MAX_FOLD_PER_TRANSACTION`]); returns how many moved. The RPCs
/// never wait for it: they count matured rewards as available at the moment of the call.
pub struct MatureRewards<S, C>(pub Deps<S, C>);

/// The maturity step of each due commission (the ones not due any more are skipped).
pub fn maturations(due: &[Commission], now: Timestamp) -> Vec<Change> {
    due.iter().filter_map(|c| c.mature(now).ok()).collect()
}

/// The audit record of one maturation batch.
pub fn maturation_audit(user: &UserId, now: Timestamp, actor: Actor, changes: &[Change]) -> AuditRecord {
    let orders: Vec<_> = changes.iter().map(|c| json!({"order_id": c.after.order_id, "amount": c.after.amount()})).collect();
    let total: i64 = changes.iter().map(|c| c.stats.available).sum();
    let anchor = changes.first().map(|c| format!("{}@{}", c.after.order_id, c.after.version)).unwrap_or_default();
    AuditRecord::new(user, now, AuditAction::RewardsMatured, actor, anchor, json!({"orders": orders, "amount": total}))
}

impl<S: MarketStore, C: ConfigSource> Processor for MatureRewards<S, C> {
    type Request = UserId;
    type Response = usize;

    async fn process(&self, user: UserId) -> Result<usize, MarketError> {
        let d = &self.0;
        let mut moved = 0;
        let publish = d.config.current().await.lifecycle_events;
        for _ in 0..COMMISSION_ATTEMPTS {
            let now = d.clock.now();
            let due = d.store.due_commissions(&user, now, MAX_FOLD_PER_TRANSACTION).await?;
            let changes = maturations(&due, now);
            if changes.is_empty() {
                return Ok(moved);
            }
            let audit = maturation_audit(&user, now, Actor::System(MATURATION_SOURCE.into()), &changes);
            let count = changes.len();
            let publish = Publication::lifecycle(publish, LifecycleEvent::matured(&user, &changes, now).into_iter().collect());
            if d.store.mature(&Maturation { user: user.clone(), changes, audit, publish, at: now }).await? {
                moved += count;
                info!(user_id = %user, count, "rewards matured");
                if due.len() < MAX_FOLD_PER_TRANSACTION {
                    return Ok(moved);
                }
            }
        }
        Err(MarketError::Contention)
    }
}

/// How far back the scheduled catch-up looks for maturity days it may have missed (the
/// RPCs stay exact regardless; this bounds how long stored figures can lag after an outage).
pub const CATCH_UP_DAYS: u32 = 7;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpReport {
    pub users: usize,
    pub matured: usize,
    pub failed: usize,
}

/// The scheduled catch-up: every user with a commission due now (from the maturity index,
/// by day) gets [`MatureRewards`]. Cost follows the number of due commissions, not the
/// table size.
pub struct CatchUpMaturity<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for CatchUpMaturity<S, C> {
    type Request = ();
    type Response = CatchUpReport;

    async fn process(&self, _: ()) -> Result<CatchUpReport, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        let mut users = BTreeSet::new();
        for day in now.utc_days_back(CATCH_UP_DAYS) {
            users.extend(d.store.due_earners(&day, now).await?);
        }
        let mut report = CatchUpReport { users: users.len(), ..CatchUpReport::default() };
        let mature = MatureRewards(d.clone());
        for user in users {
            match mature.process(user.clone()).await {
                Ok(n) => report.matured += n,
                Err(e) => {
                    // One user's failure (contention, a throttle) must not stop the others;
                    // the next run picks them up.
                    warn!(user_id = %user, error = %e, "maturity catch-up failed for a user");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
