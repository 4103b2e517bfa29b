//! Table names and key design. The tables themselves are defined once, in
//! `infra/template.yaml`; this module names their keys and indexes for the code.
//!
//! | table | key | other access | written by |
//! |---|---|---|---|
//! | policy (`affiliate_policy`) | PK `user_id` | GetItem; sparse GSI `by-inviter` (`inviter`, `user_id`): who a user referred | registration, reward (`rewards_triggered`), admin |
//! | stats (`affiliate_stats`) | PK `user_id`: the user's main item, and [`STATS_SHARDS`] shards `<user>#shard<k>` that only rewards as earned credit (one per order, `k` from the order id), so one popular affiliate's rewards spread over items instead of queueing on one | one BatchGetItem of the main item and every shard, summed | every change it summarises, same transaction |
//! | invite codes (`invite_code`) | PK `code` (upper-case); also `request#<owner>#<key>` (a keyed creation's code) `churn#<owner>#<day>` (creations that UTC day, `created`; TTL) and `velocity#<inviter>#<hour>` (referrals that UTC hour, `referrals`; TTL) — never codes | sparse GSI `active-by-owner` (`active_owner`, `created_at`): the owner's not-yet-deactivated codes, newest first; GSI `by-owner` (`owner_id`, `created_at`, keys only): every code they created, and their keyed-creation records | create / deactivate / registration |
//! | ledger (`affiliate_relation`) | PK `user_id`, SK `entry_key`: entries `reward#<order_id>`, `withdrawal#<id>`, `reversal#<order_id>#<refund or reversal id>`, `adjustment#<id>` (immutable); one `commission#<order_id>` per rewarded (or refunded) order: its lifecycle state, versioned | LSI `by-time` (`user_id`, `at_key` = `<ms, 13 digits>#<key>`): the history newest first (commissions, withdrawals, reversals, adjustments; reward entries are not in it — their commission is); sparse LSI `pending-by-maturity` (`user_id`, `pending_until`): a user's pending commissions by maturity, strongly consistent; sparse GSI `due-by-day` (`due_day`, `pending_until`, keys only): who has commissions maturing on a day (the scheduled catch-up); sparse GSI `held-for-review` (`review_queue` = `held`, `held_key` = `<earned ms, 13 digits>#<user>#<order>`): commissions waiting for an admin's review, oldest first; sparse GSI `by-buyer` (`buyer`, `entry_key`, keys only): the commissions of a buyer's orders | reward, refund, maturity, withdrawal, adjustment, admin reversal |
//! | audit | PK `subject` (user id, or `#market` for the configuration), SK `at_key` = `<ms, 13 digits>#<action>#<request id>`: newest first; sparse GSI `by-about` (`about`, `at_key`, keys only): records on others' trails naming a user; TTL `purge_at` = the record's time + `AUDIT_RETENTION_YEARS` (absent: kept) | every state change, in its transaction |
//! | parked events | PK `user_id` (the buyer), SK `event_key` = `order#<order_id>` or `refund#<order_id>#<refund_id>`: an order or refund that arrived before its buyer's registration (`event`, `parked_at`, `expires_at`; TTL `purge_at` a week after) | the buyer's waiting events (strongly consistent `Query`); sparse GSI `expiring-by-day` (`expire_day`, `expires_at`): what the scheduled expiry drops | order and refund hooks (park, conditional on the buyer's policy not registered), registration (decide and delete), scheduled expiry (delete) |
//! | reward groups | PK `group_name`, SK `version`: each version immutable (≥ 1); the head (`version` 0) holds the current rules, `current` its number and `head` | GetItem of the head (every reward decision, strongly consistent) or of a version; sparse GSI `heads` (`head`, `group_name`): the admin listing | admin (`PutRewardGroup`: the next version + the head, conditional on `current` as read, + audit) |
//! | outbox | PK `event_id` (= withdrawal id) | stream (NEW_IMAGE, INSERTs) to the relay, which sets `relayed_at` and TTL `purge_at` | withdrawal |
//!
//! The ledger partition also holds `earned#<YYYY-MM-DD>` (`earned`: rewards as earned that
//! UTC day, every level), added to in each reward's transaction: a tier on recent earnings
//! sums 30 of them (one `Query`).
//!
//! The entry keys are what make repeats harmless: one `reward#<order_id>` per order (an
//! order has one buyer, whose inviter never changes), one `reversal#<order>#<refund id>` per
//! refund, one `withdrawal#<id>` / `adjustment#<id>` per (user, idempotency key).

use std::env;

pub const ACTIVE_BY_OWNER_INDEX: &str = "active-by-owner";
pub const LEDGER_BY_TIME_INDEX: &str = "by-time";
/// LSI of the ledger table: pending commissions of a user by `pending_until`.
pub const PENDING_BY_MATURITY_INDEX: &str = "pending-by-maturity";
/// GSI of the ledger table (keys only): pending commissions by maturity day.
pub const DUE_BY_DAY_INDEX: &str = "due-by-day";
/// GSI of the parked-events table: waiting events by the UTC day their wait ends.
pub const EXPIRING_BY_DAY_INDEX: &str = "expiring-by-day";
/// Sparse GSI of the ledger table: commissions held for review, oldest first.
pub const HELD_FOR_REVIEW_INDEX: &str = "held-for-review";
/// Sparse GSI of the policy table (`inviter`, `user_id`; registration time and code
/// projected): the users an affiliate referred (personal-data export).
pub const BY_INVITER_INDEX: &str = "by-inviter";
/// GSI of the invite-code table (`owner_id`, `created_at`, keys only): every code an owner
/// created, deactivated ones too (personal-data export).
pub const BY_OWNER_INDEX: &str = "by-owner";
/// Sparse GSI of the ledger table (`buyer`, `entry_key`, keys only): the commissions earned
/// on a buyer's orders, in their earners' partitions (personal-data export).
pub const BY_BUYER_INDEX: &str = "by-buyer";
/// Sparse GSI of the audit table (`about`, `at_key`, keys only): the records on other
/// users' trails that name a user (personal-data export).
pub const BY_ABOUT_INDEX: &str = "by-about";
/// Sparse GSI of the reward-groups table (`head`, `group_name`): every group's current
/// version by name (the admin listing).
pub const GROUP_HEADS_INDEX: &str = "heads";
/// The one partition of that index (a programme defines a handful of groups).
pub const GROUP_HEAD_PARTITION: &str = "head";
/// The one partition of the review queue (a queue read by admins, written once per held
/// reward and once per decision: far below a partition's limits).
pub const REVIEW_QUEUE_PARTITION: &str = "held";
/// Items a user's statistics are spread over besides the main one: a reward as earned
/// (only increases) is added to the shard of its order; every other change (refunds,
/// maturity, reviews, withdrawals, adjustments, codes, referrals) to the main item. A read
/// sums them all. At DynamoDB's ~1 000 write units a second per item and 2 units per
/// transactional item write, one affiliate takes about 500 rewards a second per item: 4 000
/// with the shards. A withdrawal's condition on the main item counts on the shards'
/// `available` as read: they only grow, so `available` never goes below 0 by a debit.
pub const STATS_SHARDS: u32 = 8;

/// The key of one of a user's statistics shards (`#` never occurs in a user id).
pub fn stats_shard_key(user: &str, shard: u32) -> String {
    format!("{user}#shard{shard}")
}

/// The keys of a user's statistics shards (a read sums them with the main item).
pub fn stats_shard_keys(user: &str) -> impl Iterator<Item = String> + '_ {
    (0..STATS_SHARDS).map(move |k| stats_shard_key(user, k))
}

/// The keys of every statistics item of a user: the main item, then each shard (a read sums
/// them).
pub fn stats_ids(user: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(user.to_owned()).chain(stats_shard_keys(user))
}

/// The shard an order's reward is credited to: spread evenly, the same for every retry.
pub fn stats_shard_of(order_id: &str) -> u32 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let hash = order_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % u64::from(STATS_SHARDS)) as u32
}

/// A user's earnings of one UTC day in their ledger partition: `earned#<YYYY-MM-DD>`, added
/// to by each reward's transaction (what a tier on recent earnings sums; no history row).
pub fn earned_day_key(day: &str) -> String {
    format!("earned#{day}")
}

/// The condition every write of a user's statistics or trigger count carries: no erasure is
/// moving them (a cancellation on it is `Contention`: the write is retried, and finds the
/// user under their pseudonym).
pub const NOT_ERASING: &str = "attribute_not_exists(#erasing)";

/// The RabbitMQ exchange of the market's outbound events.
pub const MARKET_EXCHANGE: &str = "market";

/// Attribute names used in key conditions and expressions.
pub mod attr {
    pub const USER_ID: &str = "user_id";
    pub const CODE: &str = "code";
    pub const ACTIVE: &str = "active";
    pub const ACTIVE_OWNER: &str = "active_owner";
    pub const OWNER_ID: &str = "owner_id";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const DEACTIVATED_AT: &str = "deactivated_at";
    pub const REGISTRATIONS: &str = "registrations";
    /// On a keyed creation request's item: the code it created.
    pub const CREATED_CODE: &str = "created_code";
    pub const PURGE_AT: &str = "purge_at";
    pub const ENTRY_KEY: &str = "entry_key";
    pub const KIND: &str = "kind";
    pub const VERSION: &str = "version";
    pub const PENDING_UNTIL: &str = "pending_until";
    pub const DUE_DAY: &str = "due_day";
    pub const PENDING: &str = "pending";
    pub const HELD: &str = "held";
    pub const BALANCE_CHANGES: &str = "balance_changes";
    /// On a user's main statistics item: the last lifecycle event's sequence number.
    pub const EVENT_SEQ: &str = "event_seq";
    /// On a held commission waiting for review: the review queue's partition and sort key.
    pub const REVIEW_QUEUE: &str = "review_queue";
    pub const HELD_KEY: &str = "held_key";
    /// On a velocity counter item: referrals that UTC hour.
    pub const REFERRALS: &str = "referrals";
    pub const REVIEW_REASON: &str = "review_reason";
    pub const REVERSED_TOTAL: &str = "reversed_total";
    pub const PAYING_REFERRALS: &str = "paying_referrals";
    /// On a referred user's policy: their cap usage per window (`rules::capped`).
    pub const CAP_USED: &str = "cap_used";
    /// On an affiliate's policy: their reward group.
    pub const GROUP: &str = "group";
    /// Reward groups: the key, and on the current version's head item the index's key.
    pub const GROUP_NAME: &str = "group_name";
    pub const HEAD: &str = "head";
    pub const CURRENT: &str = "current";
    /// On a daily-earnings item of the ledger (`earned#<day>`): rewards as earned that day.
    pub const EARNED: &str = "earned";
    pub const EARNED_L1: &str = "earned_l1";
    pub const EARNED_L2: &str = "earned_l2";
    pub const EARNED_L3: &str = "earned_l3";
    pub const AT_KEY: &str = "at_key";
    /// Parked events: the event, when it was parked, when its wait ends (and that day).
    pub const EVENT: &str = "event";
    pub const EVENT_KEY: &str = "event_key";
    pub const PARKED_AT: &str = "parked_at";
    pub const EXPIRE_DAY: &str = "expire_day";
    pub const EVENT_ID: &str = "event_id";
    pub const RELAYED_AT: &str = "relayed_at";
    pub const INVITER: &str = "inviter";
    /// On a commission: the buyer whose order earned it.
    pub const BUYER: &str = "buyer";
    pub const INVITE_CODE: &str = "invite_code";
    pub const REGISTERED_AT: &str = "registered_at";
    pub const AFFILIATE_ENABLED: &str = "affiliate_enabled";
    pub const REWARDS_TRIGGERED: &str = "rewards_triggered";
    pub const INVITED_COUNT: &str = "invited_count";
    pub const REWARDED_ORDERS: &str = "rewarded_orders";
    pub const TOTAL_EARNED: &str = "total_earned";
    pub const AVAILABLE: &str = "available";
    pub const WITHDRAWN_TOTAL: &str = "withdrawn_total";
    pub const ACTIVE_CODES: &str = "active_codes";
    pub const UPDATED_AT: &str = "updated_at";
    pub const SUBJECT: &str = "subject";
    /// On an audit record: the other user it names.
    pub const ABOUT: &str = "about";
    /// On a user's policy and statistics while an erasure moves them: their pseudonym. Every
    /// write of those items is conditional on its absence ([`super::NOT_ERASING`]).
    pub const ERASING: &str = "erasing";
    pub const COMMISSION_BPS: &str = "commission_bps";
    pub const TRIGGER_LIMIT: &str = "trigger_limit";
    pub const MAX_ACTIVE_CODES: &str = "max_active_codes";
}

/// How long a kind of record is kept: `None` = as long as the table (no TTL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention(pub Option<u32>);

impl Retention {
    /// `<NAME>` in years; absent or 0 = kept.
    fn from_env(name: &str) -> Result<Self, MissingEnv> {
        match env::var(name) {
            Err(_) => Ok(Retention(None)),
            Ok(v) => v.trim().parse::<u32>().map(|y| Retention((y > 0).then_some(y))).map_err(|_| MissingEnv("AUDIT_RETENTION_YEARS")),
        }
    }

    /// The TTL (epoch seconds) of a record written `at`: whole years of 365.25 days later.
    pub fn purge_at(self, at: market_domain::time::Timestamp) -> Option<i64> {
        const YEAR_SECONDS: i64 = 31_557_600;
        self.0.map(|years| at.millis().div_euclid(1000).saturating_add(i64::from(years).saturating_mul(YEAR_SECONDS)))
    }
}

#[derive(Debug, Clone)]
pub struct Tables {
    pub policy: String,
    pub stats: String,
    pub codes: String,
    pub ledger: String,
    pub outbox: String,
    pub audit: String,
    pub parked: String,
    /// Reward groups (versioned rule sets).
    pub groups: String,
    /// How long audit records are kept (the audit table's TTL `purge_at`).
    pub audit_retention: Retention,
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set or not valid")]
pub struct MissingEnv(pub &'static str);

impl Tables {
    /// Names from the functions' environment (the template's Globals, or the local env file).
    pub fn from_env() -> Result<Self, MissingEnv> {
        let var = |name: &'static str| env::var(name).map_err(|_| MissingEnv(name));
        Ok(Tables {
            policy: var("POLICY_TABLE")?,
            stats: var("STATS_TABLE")?,
            codes: var("INVITE_CODE_TABLE")?,
            ledger: var("LEDGER_TABLE")?,
            outbox: var("OUTBOX_TABLE")?,
            audit: var("AUDIT_TABLE")?,
            parked: var("PARKED_EVENTS_TABLE")?,
            groups: var("REWARD_GROUPS_TABLE")?,
            audit_retention: Retention::from_env("AUDIT_RETENTION_YEARS")?,
        })
    }
}

pub fn reward_entry_key(order_id: &str) -> String {
    format!("reward#{order_id}")
}

pub fn withdrawal_entry_key(withdrawal_id: &str) -> String {
    format!("withdrawal#{withdrawal_id}")
}

pub fn reversal_entry_key(order_id: &str, reversal_id: &str) -> String {
    format!("reversal#{order_id}#{reversal_id}")
}

pub fn adjustment_entry_key(adjustment_id: &str) -> String {
    format!("adjustment#{adjustment_id}")
}

pub fn commission_key(order_id: &str) -> String {
    format!("commission#{order_id}")
}

/// Sort key of the time index; 13 digits of milliseconds sort lexically until the year 2286.
pub fn at_key(at_millis: i64, entry_key: &str) -> String {
    format!("{:013}#{entry_key}", at_millis.max(0))
}

/// Sort key of the review queue: oldest first, unique per commission.
pub fn held_key(earned_millis: i64, user: &str, order: &str) -> String {
    format!("{:013}#{user}#{order}", earned_millis.max(0))
}

/// The velocity counter of an inviter's referrals in one UTC hour (`yyyy-mm-ddThh`).
pub fn velocity_key(inviter: &str, hour: &str) -> String {
    format!("velocity#{inviter}#{hour}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_of_whole_years_purges_that_long_after_the_record() {
        let at = market_domain::time::Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(Retention(None).purge_at(at), None);
        assert_eq!(Retention(Some(1)).purge_at(at), Some(1_700_000_000 + 31_557_600));
        assert_eq!(Retention(Some(6)).purge_at(at), Some(1_700_000_000 + 6 * 31_557_600));
    }

    #[test]
    fn orders_spread_over_every_stats_shard_and_keep_theirs() {
        let mut seen = [0u32; STATS_SHARDS as usize];
        for i in 0..8000 {
            let order = format!("order-{i}");
            assert_eq!(stats_shard_of(&order), stats_shard_of(&order));
            seen[stats_shard_of(&order) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
        assert_eq!(stats_shard_key("alice", 3), "alice#shard3");
    }
}
