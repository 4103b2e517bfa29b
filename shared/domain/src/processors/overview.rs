//! GetAffiliateStats: the affiliate's overview, read in one parallel round trip.

use super::{Deps, Processor, DUE_READ_LIMIT};
use crate::error::MarketError;
use crate::ids::UserId;
use crate::model::{AffiliateStats, InviteCodeRecord};
use super::rewards::{group_of, recent_earnings};
use crate::group::{GroupName, RewardGroup};
use crate::money::Bps;
use crate::rules::{tier_standing, EffectivePolicy, Performance, TierStanding};
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
    /// The reward group the affiliate earns under, their own rate (which wins over it), and
    /// their standing in its tiers.
    pub group: RewardGroup,
    pub own_bps: Option<Bps>,
    pub tier: TierStanding,
    /// What the tiers looked at (recent earnings only when a tier asks; else 0).
    pub performance: Performance,
}

pub struct GetAffiliateStats<S, C>(pub Deps<S, C>);

impl<S: MarketStore, C: ConfigSource> Processor for GetAffiliateStats<S, C> {
    type Request = UserId;
    type Response = AffiliateOverview;

    async fn process(&self, caller: UserId) -> Result<AffiliateOverview, MarketError> {
        let d = &self.0;
        let now = d.clock.now();
        // One parallel round trip of four requests (each opens a connection on a cold start),
        // the default group's among them: an affiliate in another group takes a second.
        let default = GroupName::default_group();
        let (stats_and_policy, codes, config, pending, default_group) = futures::join!(
            d.store.get_stats_and_policy(&caller),
            d.store.list_active_codes(&caller),
            d.config.current(),
            d.store.pending_commissions(&caller, now, DUE_READ_LIMIT),
            d.store.get_group(&default)
        );
        let ((stats, policy), pending) = (stats_and_policy?, pending?);
        let group = group_of(d, policy.as_ref(), default_group?, &config).await?;
        // Recent earnings only when a tier looks at them (a second round trip, for those).
        let earned_recently = recent_earnings(d, &caller, &group.rules, now).await?;
        let performance = Performance { paying_referrals: stats.paying_referrals, earned_recently };
        let tier = tier_standing(&group.rules, performance);
        Ok(AffiliateOverview {
            group,
            own_bps: policy.as_ref().and_then(|p| p.commission_bps),
            tier,
            performance,
            stats: stats.live(&pending.due),
            next_release_at: pending.next_release,
            policy: EffectivePolicy::resolve(policy.as_ref(), &config),
            codes: codes?.into_iter().filter(|c| c.is_usable(now)).collect(),
            currency: config.currency,
            min_withdraw_amount: config.min_withdraw_amount,
        })
    }
}
