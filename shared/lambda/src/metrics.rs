//! Business and technical metrics in CloudWatch Embedded Metric Format (`metrics` facade,
//! `metrics_cloudwatch_embedded` collector): one namespace (`METRICS_NAMESPACE`, default
//! `HeliumMarket`), the dimension `Function` (the Lambda function's name) on everything and
//! `Outcome` where it matters — never a user, code, order or request id (those go in the
//! document's properties, searchable in Logs Insights, not dimensions). One flush per
//! invocation, to stdout, where CloudWatch Logs extracts the metrics.

use std::io::Write;
use std::sync::OnceLock;

use market_domain::MarketError;
use metrics::Unit;
use metrics_cloudwatch_embedded::Collector;
use serde_json::Value;

/// Every metric name the functions emit (the template's alarms and the dashboard refer to
/// these; `tests/tests/emf.rs` checks that they agree).
pub mod names {
    pub const COLD_START: &str = "ColdStart";
    /// RPC requests, by `Outcome` (the gRPC status, e.g. `OK`, `FAILED_PRECONDITION`).
    pub const REQUESTS: &str = "Requests";
    /// SQS messages handled, by `Outcome` (`ok`, `retried`, `rejected`).
    pub const MESSAGES: &str = "Messages";
    /// Registrations by `Outcome` (`referred`, `no_code`, or the rejection reason).
    pub const REGISTRATIONS: &str = "Registrations";
    /// Rewards by `Outcome` (`applied`, `replayed`, `duplicate`, `over_limit`, ...).
    pub const REWARDS: &str = "Rewards";
    /// Minor units credited by applied rewards.
    pub const REWARD_AMOUNT: &str = "RewardAmount";
    /// Paid orders whose reward was decided, by `Outcome` (`reward` or the no-reward reason).
    pub const ORDERS: &str = "Orders";
    /// Refunds and chargebacks by `Outcome`.
    pub const REFUNDS: &str = "Refunds";
    /// Withdrawals by `Outcome` (`succeeded`, `replayed`, or the error kind).
    pub const WITHDRAWALS: &str = "Withdrawals";
    /// Minor units withdrawn (first answers only, not replays).
    pub const WITHDRAWN_AMOUNT: &str = "WithdrawnAmount";
    /// Invite code creations by `Outcome` (`created`, `replayed`, `limit_reached`, ...).
    pub const CODES_CREATED: &str = "CodesCreated";
    pub const CODES_DELETED: &str = "CodesDeleted";
    /// Outbound events by `Outcome`: `relayed`/`retried` (outbox -> outbound queue) and
    /// `published`, `returned` (unroutable), `nacked`, `broker_unreachable`, `malformed` (bridge).
    pub const OUTBOUND_EVENTS: &str = "OutboundEvents";
    /// Transactions DynamoDB cancelled for a conflict with a concurrent writer.
    pub const TRANSACTION_CONFLICTS: &str = "TransactionConflicts";
    /// Money transitions rebuilt because another transition of the same affiliate moved its
    /// lifecycle event sequence first (a popular affiliate's writes taking turns).
    pub const SEQUENCE_RETRIES: &str = "SequenceRetries";
    /// Configuration reads by `Outcome`: `cache` (within the TTL), `redis` (refreshed), or the
    /// fallback that applied (`fallback_unreachable`, `fallback_missing`, ...).
    pub const CONFIG_READS: &str = "ConfigReads";
    /// Admin reversals of a reward by `Outcome` (`reversed`, `replayed`, or the error kind).
    pub const REVERSALS: &str = "Reversals";
    /// Admin balance adjustments by `Outcome` (`adjusted`, `replayed`, or the error kind).
    pub const ADJUSTMENTS: &str = "Adjustments";
    /// The review queue by `Outcome`: `held` (an order's rewards held by an abuse rule, counted
    /// when decided), and the admin's decisions `approved`, `rejected`, `replayed` (or the
    /// error kind).
    pub const REVIEWS: &str = "Reviews";
    /// Orders and refunds that arrived before their buyer's registration and were dropped
    /// because it never came, by `Outcome`: `expired` (the scheduled expiry, after
    /// `registration_wait_days`) or `not_waited` (waiting off, or the event older than it).
    /// Those still waiting count as `Orders`/`Refunds` `waiting`.
    pub const WAITING_EVENTS: &str = "WaitingEvents";

    pub const ALL: [&str; 19] = [
        COLD_START,
        REQUESTS,
        MESSAGES,
        REGISTRATIONS,
        REWARDS,
        REWARD_AMOUNT,
        ORDERS,
        REFUNDS,
        WITHDRAWALS,
        WITHDRAWN_AMOUNT,
        CODES_CREATED,
        CODES_DELETED,
        OUTBOUND_EVENTS,
        TRANSACTION_CONFLICTS,
        CONFIG_READS,
        REVERSALS,
        ADJUSTMENTS,
        REVIEWS,
        WAITING_EVENTS,
    ];
}

pub const DEFAULT_NAMESPACE: &str = "HeliumMarket";

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Once per cold start: the collector, the units, and the cold start itself.
/// `METRICS_DISABLED=1` leaves the collector out (nothing is written; `make bench` measures
/// the cold start with and without it).
pub fn init() {
    if std::env::var("METRICS_DISABLED").is_ok_and(|v| v == "1") {
        return;
    }
    let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| DEFAULT_NAMESPACE.into());
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let built = metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(namespace).with_dimension("Function", function).init();
    match built {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
        }
        // Only a second init in one process (tests) gets here; metrics then go nowhere.
        Err(e) => tracing::warn!(error = %e, "metrics collector not installed"),
    }
    for name in names::ALL {
        metrics::describe_counter!(name, Unit::Count, "");
    }
    metrics::counter!(names::COLD_START).increment(1);
}

/// Counts one occurrence of `name` with this outcome.
pub fn outcome(name: &'static str, outcome: &'static str) {
    count(name, outcome, 1);
}

/// Counts `n` occurrences of `name` with this outcome (0 writes nothing).
pub fn count(name: &'static str, outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(name, "Outcome" => outcome).increment(n);
    }
}

/// Adds an amount in minor units (negative amounts are not counters: ignored).
pub fn amount(name: &'static str, minor: i64) {
    if let Ok(minor) = u64::try_from(minor) {
        metrics::counter!(name).increment(minor);
    }
}

/// A low-cardinality name for an error (the `Outcome` of a failed operation).
pub fn error_outcome(e: &MarketError) -> &'static str {
    match e {
        MarketError::InvalidArgument(_) => "invalid_argument",
        MarketError::NotFound => "not_found",
        MarketError::CodeLimitReached => "limit_reached",
        MarketError::InsufficientBalance => "insufficient_balance",
        MarketError::BelowMinimum => "below_minimum",
        MarketError::AffiliateDisabled => "affiliate_disabled",
        MarketError::MarketDisabled => "market_disabled",
        MarketError::NothingToReverse => "nothing_to_reverse",
        MarketError::NotHeldForReview => "not_held",
        MarketError::AlreadyReviewed => "already_reviewed",
        MarketError::BalanceNotSettled => "balance_not_settled",
        MarketError::IdempotencyConflict => "idempotency_conflict",
        MarketError::VersionConflict { .. } => "version_conflict",
        MarketError::Overflow => "overflow",
        MarketError::CodeCollision => "code_collision",
        MarketError::Contention => "contention",
        MarketError::Unavailable(_) => "unavailable",
        MarketError::Internal(_) => "internal",
        MarketError::RateLimited { .. } => "rate_limited",
    }
}

/// Writes this invocation's metric documents (one per outcome set), each carrying the
/// correlation properties given (request id, message ids), then clears them.
pub fn flush(properties: &[(&'static str, Value)]) {
    let Some(collector) = COLLECTOR.get() else { return };
    for (name, value) in properties {
        collector.set_property(*name, value.clone());
    }
    // One lock for the whole flush, so a log line cannot cut a document in two.
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = collector.flush(&mut out).and_then(|_| out.flush()) {
        tracing::warn!(error = %e, "metrics not written");
    }
    for (name, _) in properties {
        collector.remove_property(*name);
    }
}

/// The outcome of an operation, counted under `name`: `ok` names a success, an error its kind.
pub fn result<T>(name: &'static str, result: &Result<T, MarketError>, ok: impl FnOnce(&T) -> &'static str) {
    match result {
        Ok(value) => outcome(name, ok(value)),
        Err(e) => outcome(name, error_outcome(e)),
    }
}

pub fn registration(r: &Result<market_domain::processors::RegistrationResult, MarketError>) {
    use market_domain::processors::RegistrationResult as R;
    result(names::REGISTRATIONS, r, |r| match r {
        R::Referred { .. } => "referred",
        R::Registered { rejected: None } => "no_code",
        R::Registered { rejected: Some(reason) } => reason.as_str(),
        R::AlreadyRegistered => "already_registered",
    });
}

pub fn order(r: &Result<market_domain::processors::OrderDecision, MarketError>) {
    use market_domain::processors::{NoReward as N, OrderDecision as D};
    if let Ok(D::Reward(reward)) = r {
        if reward.hold.is_some() {
            outcome(names::REVIEWS, "held");
        }
    }
    result(names::ORDERS, r, |d| match d {
        D::Reward(_) => "reward",
        D::NoReward(N::NoInviter) => "no_inviter",
        D::NoReward(N::MarketDisabled) => "market_disabled",
        D::NoReward(N::NonPositiveAmount) => "non_positive_amount",
        D::NoReward(N::OtherCurrency) => "other_currency",
        D::NoReward(N::InviterDisabled) => "inviter_disabled",
        D::NoReward(N::TriggerLimitReached) => "trigger_limit_reached",
        D::NoReward(N::OutsideDuration) => "outside_duration",
        D::NoReward(N::ZeroReward) => "zero_reward",
        D::NoReward(N::NotRegistered) => "not_registered",
        D::Waiting => "waiting",
    });
    if matches!(r, Ok(D::NoReward(N::NotRegistered))) {
        outcome(names::WAITING_EVENTS, "not_waited");
    }
}

/// A reward's outcome, and the amount credited when it was applied now.
pub fn reward(r: &Result<market_domain::ports::RewardOutcome, MarketError>, reward_minor: i64) {
    use market_domain::ports::RewardOutcome as O;
    result(names::REWARDS, r, |o| match o {
        O::Applied => "applied",
        O::Replayed => "replayed",
        O::Duplicate => "duplicate",
        O::LimitReached => "over_limit",
    });
    if matches!(r, Ok(O::Applied)) {
        amount(names::REWARD_AMOUNT, reward_minor);
    }
}

pub fn refund(r: &Result<market_domain::processors::RefundResult, MarketError>) {
    use market_domain::processors::RefundResult as R;
    result(names::REFUNDS, r, |r| match r {
        R::Applied { .. } => "applied",
        R::RecordedBeforeReward => "recorded_before_reward",
        R::Duplicate => "duplicate",
        R::NoInviter => "no_inviter",
        R::Waiting => "waiting",
        R::NotRegistered => "not_registered",
    });
    if matches!(r, Ok(R::NotRegistered)) {
        outcome(names::WAITING_EVENTS, "not_waited");
    }
}

/// A withdrawal's outcome; the amount counts first answers only (a replay paid nothing).
pub fn withdrawal(r: Result<(i64, bool), &MarketError>) {
    match r {
        Ok((minor, replayed)) => {
            outcome(names::WITHDRAWALS, if replayed { "replayed" } else { "succeeded" });
            if !replayed {
                amount(names::WITHDRAWN_AMOUNT, minor);
            }
        }
        Err(e) => outcome(names::WITHDRAWALS, error_outcome(e)),
    }
}

/// The gRPC status name of a `grpc-status` value (the `Outcome` of an RPC request).
pub fn grpc_status_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}
