//! GetAffiliateStats: the affiliate's overview, read in one parallel round trip.

use super::{Deps, Processor, DUE_READ_LIMIT};
use crate::error::MarketError;
use crate::ids::UserId;
use crate::model::{AffiliateStats, InviteCodeRecord};
use crate::policy::EffectivePolicy;
use crate::ports::{ConfigSource, MarketStore};
use crate::time::Timestamp;

pub struct AffiliateOverview {
    /// Exact at the moment of the call: matured rewards count as available.
    pub stats: AffiliateStats,
    /// When the next pending reward becomes available.
    pub next_release_at: Option<Timestamp>,
    pub policy: EffectivePolicy,
    /// Usable (active, unexpired) codes, newest first.
    pub codes: Vec<InviteCodeRecord>,
    /// The deployment's currency the amounts are in.
    pub currency: crate::money::Currency,
    /// The smallest withdrawal the market accepts (a form checks it before sending).
    pub min_withdraw_amount: crate::money::Money,
}

pub struct GetAffiliateStats<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for GetAffiliateStats<S, C> {
    type Request = UserId;
    type Response = AffiliateOverview;

    async fn process(&self, caller: UserId) -> Result<AffiliateOverview, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        // One parallel round trip of three requests (each opens a connection on a cold start).
        let (stats_and_policy, codes, config, pending) = futures::join!(
            d.store.get_stats_and_policy(&caller),
            d.store.list_active_codes(&caller),
            d.config.current(),
            d.store.pending_commissions(&caller, now, DUE_READ_LIMIT)
        );
        let ((stats, policy), pending) = (stats_and_policy?, pending?);
        Ok(AffiliateOverview {
            stats: stats.live(&pending.due),
            next_release_at: pending.next_release,
            policy: EffectivePolicy::resolve(policy.as_ref(), &config),
            codes: codes?.into_iter().filter(|c| c.is_usable(now)).collect(),
            currency: config.currency,
            min_withdraw_amount: config.min_withdraw_amount,
        })
    }
}
