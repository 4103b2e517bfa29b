//! What a lifecycle step adds to the earner's statistics.

use crate::ledger::Bucket;

/// Signed changes of one user's statistics, applied with `ADD` in the change's transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsDelta {
    pub pending: i64,
    pub available: i64,
    pub total_earned: i64,
    pub reversed_total: i64,
    pub withdrawn_total: i64,
    pub held: i64,
    pub rewarded_orders: i64,
    /// A referred user's first reward (their inviter's paying referrals).
    pub paying_referrals: i64,
    /// Rewards earned (gross), by level (index 0 = level 1).
    pub earned_by_level: [i64; 3],
}

impl StatsDelta {
    pub fn is_zero(&self) -> bool {
        *self == StatsDelta::default()
    }
    /// Only increases (a reward as earned): such a change may be written apart from the
    /// user's main statistics (a store's shards), since nothing conditions on its figures
    /// shrinking there.
    pub fn is_credit_only(&self) -> bool {
        let figures = [self.pending, self.available, self.total_earned, self.reversed_total, self.withdrawn_total, self.held, self.rewarded_orders, self.paying_referrals];
        !self.is_zero() && figures.iter().chain(self.earned_by_level.iter()).all(|v| *v >= 0)
    }
    pub(super) fn add_to(&mut self, bucket: Bucket, amount: i64) {
        match bucket {
            Bucket::Pending => self.pending += amount,
            Bucket::Available => self.available += amount,
            Bucket::Held => self.held += amount,
        }
    }
    /// Checked sum of two deltas.
    pub fn plus(self, o: StatsDelta) -> Option<StatsDelta> {
        Some(StatsDelta {
            pending: self.pending.checked_add(o.pending)?,
            available: self.available.checked_add(o.available)?,
            total_earned: self.total_earned.checked_add(o.total_earned)?,
            reversed_total: self.reversed_total.checked_add(o.reversed_total)?,
            withdrawn_total: self.withdrawn_total.checked_add(o.withdrawn_total)?,
            held: self.held.checked_add(o.held)?,
            rewarded_orders: self.rewarded_orders.checked_add(o.rewarded_orders)?,
            paying_referrals: self.paying_referrals.checked_add(o.paying_referrals)?,
            earned_by_level: [
                self.earned_by_level[0].checked_add(o.earned_by_level[0])?,
                self.earned_by_level[1].checked_add(o.earned_by_level[1])?,
                self.earned_by_level[2].checked_add(o.earned_by_level[2])?,
            ],
        })
    }
}
