//! Support for the integration tests: they run against the local stack started by
//! `make test` (scripts/test.sh), which exports its env file into the test environment.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use market_domain::code::InviteCode;
use market_domain::config::MarketConfig;
use market_domain::ids::{EventId, OrderId, UserId};
use market_domain::model::{AffiliateStats, HistoryItem, LedgerEntry, RewardEvent};
use market_domain::money::{Bps, Money};
use market_domain::ports::prelude::*;
use market_domain::ports::{RewardOutcome, StaticConfig};
use market_domain::policy::TriggerLimit;
use market_domain::processors::{ApplyReward, CreateInviteCode, DecideOrderReward, Deps, OrderDecision, OrderPaid, Processor, RegisterUser, RegistrationResult, UserRegistered};
use market_domain::time::{Clock, SystemClock, Timestamp};
use market_storage::DynamoStore;

pub mod amqp;
pub mod chaos;
pub mod event_schemas;
pub mod local_aws;
pub mod proxy;
pub mod rpc;
pub mod silent_proxy;
pub mod tls_front;

pub type TestDeps = Deps<DynamoStore, StaticConfig>;

/// Fails with a clear message when the tests are run outside `make test`.
pub fn require_stack() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok() && std::env::var("POLICY_TABLE").is_ok(),
        "integration tests need the local stack: run `make test` (or source `scripts/stack.sh env NAME`)"
    );
}

pub async fn store() -> DynamoStore {
    require_stack();
    let config = market_storage::aws_config().await;
    DynamoStore::from_env(&config).await.expect("table names in the environment")
}

/// The processors' rule tests (`deps`) fire up to a few hundred requests at once at DynamoDB
/// Local, which serves them about one at a time on a 2-core machine: a request can wait
/// seconds in its queue there although it takes milliseconds on DynamoDB, and the functions'
/// 2 s attempt timeout then fails a test that is about the rules, not the timeouts (seen in
/// CI). So these wait longer; the functions, `store()`, the chaos run and the lost-response
/// proxy keep the production timeouts, which is what `unavailable`, `idempotency` and chaos test.
async fn patient_store() -> DynamoStore {
    require_stack();
    let shared = market_storage::aws_config().await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(20))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build();
    let config = aws_sdk_dynamodb::config::Builder::from(&shared).timeout_config(timeouts).build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), market_storage::Tables::from_env().expect("table names in the environment"))
}

pub async fn deps(config: MarketConfig) -> TestDeps {
    Deps::new(patient_store().await, StaticConfig(config))
}

/// A user id no other test (or earlier run on the same stack) uses.
pub fn user(prefix: &str) -> UserId {
    UserId::parse(format!("{prefix}-{}", nanoid::nanoid!(10))).expect("valid id")
}

pub fn order() -> OrderId {
    OrderId::parse(format!("order-{}", nanoid::nanoid!(12))).expect("valid id")
}

pub fn event_id() -> EventId {
    EventId::parse(format!("evt-{}", nanoid::nanoid!(12))).expect("valid id")
}

/// A clock the test moves by hand.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(SystemClock.now().millis())))
    }
    pub fn at(millis: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(millis)))
    }
    pub fn set(&self, millis: i64) {
        self.0.store(millis, Ordering::SeqCst);
    }
    pub fn advance_days(&self, days: i64) {
        self.0.fetch_add(days * Timestamp::MS_PER_DAY, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// A refund of `amount` of `order` with refund id `id`; a redelivery (same arguments) carries
/// the same event id.
pub fn refund_event(buyer: &UserId, order: &OrderId, id: &str, amount: i64, at: Timestamp) -> market_domain::processors::OrderRefunded {
    market_domain::processors::OrderRefunded {
        event_id: EventId::parse(format!("ev-{order}-{id}")).expect("valid id"),
        refund_id: market_domain::ids::RefundId::parse(id).expect("valid refund id"),
        order_id: order.clone(),
        buyer: buyer.clone(),
        amount: Money::from_minor(amount),
        currency: "USD".into(),
        reason: market_domain::lifecycle::RefundReason::Refund,
        occurred_at: at,
    }
}

/// Registers `invitee` with a new code of `inviter`.
pub async fn refer(d: &TestDeps, inviter: &UserId, invitee: &UserId) {
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.expect("code created").code;
    let result = RegisterUser(d.clone())
        .process(UserRegistered { event_id: event_id(), user: invitee.clone(), invite_code: Some(code.as_str().into()), occurred_at: d.clock.now() })
        .await
        .expect("registered");
    assert_eq!(result, RegistrationResult::Referred { inviter: inviter.clone() });
}

/// A chain great → grand → inviter → buyer: returns (buyer, [inviter, grand, great]).
pub async fn chain(d: &TestDeps) -> (UserId, [UserId; 3]) {
    let (great, grand, inviter, buyer) = (user("l3"), user("l2"), user("l1"), user("buyer"));
    refer(d, &great, &grand).await;
    refer(d, &grand, &inviter).await;
    refer(d, &inviter, &buyer).await;
    (buyer, [inviter, grand, great])
}

/// Creates a code for `inviter` and registers a fresh user with it; returns (buyer, code).
pub async fn referred_user(d: &TestDeps, inviter: &UserId) -> (UserId, InviteCode) {
    let code = CreateInviteCode::new(d.clone()).process(inviter.clone().into()).await.expect("code created").code;
    let buyer = user("buyer");
    let result = RegisterUser(d.clone())
        .process(UserRegistered {
            event_id: event_id(),
            user: buyer.clone(),
            invite_code: Some(code.as_str().to_owned()),
            occurred_at: d.clock.now(),
        })
        .await
        .expect("registered");
    assert_eq!(result, RegistrationResult::Referred { inviter: inviter.clone() });
    (buyer, code)
}

/// `order.paid` (USD, at the deps' clock) through the decision and the reward processor, as
/// the event path does; panics unless the order is decided a reward.
pub async fn pay(d: &TestDeps, buyer: &UserId, order: &OrderId, amount: i64) -> RewardOutcome {
    let paid = OrderPaid {
        event_id: event_id(),
        order_id: order.clone(),
        buyer: buyer.clone(),
        amount: Money::from_minor(amount),
        currency: "USD".into(),
        occurred_at: d.clock.now(),
        product_id: None, kind: None,
    };
    match DecideOrderReward(d.clone()).process(paid).await.expect("decided") {
        OrderDecision::Reward(ev) => ApplyReward(d.clone()).process(ev).await.expect("applied"),
        other => panic!("no reward: {other:?}"),
    }
}

pub fn reward_event(buyer: &UserId, inviter: &UserId, reward: i64, limit: TriggerLimit) -> RewardEvent {
    RewardEvent {
        order_id: order(),
        buyer: buyer.clone(),
        inviter: inviter.clone(),
        order_amount: Money::from_minor(reward * 10),
        currency: MarketConfig::default().currency,
        commission_bps: Bps::new(1000).expect("valid rate"),
        reward: Money::from_minor(reward),
        trigger_limit: limit,
        occurred_at: SystemClock.now(),
        source_event_id: event_id(),
        holding_period_days: 0,
        levels: Vec::new(),
        hold: None,
        rule: None,
    }
}

/// Gives `inviter` `amount` available through the real path: a referral and a reward.
pub async fn fund(d: &TestDeps, inviter: &UserId, amount: i64) {
    let (buyer, _) = referred_user(d, inviter).await;
    let outcome = ApplyReward(d.clone())
        .process(reward_event(&buyer, inviter, amount, TriggerLimit::Unlimited))
        .await
        .expect("reward applied");
    assert_eq!(outcome, RewardOutcome::Applied);
}

/// Invariants 2, 3 and 9 of the spec for one user, exactly: the stats add up
/// (`total_earned = pending + available + held + withdrawn_total + reversed_total`), the ledger
/// sums to them (rewards as earned + credits, each level's earnings, reversals + debits,
/// withdrawals, pending = the not-yet-matured commissions, held = those awaiting review), each commission's reversals are
/// what it lost, and no withdrawal left `available` below 0. Returns the stats, the history and every violation.
pub async fn money_violations(store: &DynamoStore, user: &UserId) -> Result<(AffiliateStats, Vec<HistoryItem>, Vec<String>), market_domain::MarketError> {
    let stats = store.get_stats(user).await?;
    let history = store.history(user).await?;
    let mut v = Vec::new();
    let (mut earned, mut reversed, mut withdrawn, mut pending, mut held, mut rewarded) = (0i64, 0i64, 0i64, 0i64, 0i64, 0u64);
    let mut by_level = [0i64; 3];
    let mut paying = std::collections::HashSet::new();
    // Invariant 12: each day's earnings (what a tier on recent earnings sums) = the rewards
    // as earned that UTC day.
    let mut earned_by_day = std::collections::BTreeMap::<String, i64>::new();
    let mut reversals_by_order = std::collections::HashMap::<String, i64>::new();
    let mut lost_by_order = std::collections::HashMap::<String, i64>::new();
    for item in &history {
        match item {
            HistoryItem::Commission(c) => {
                let Some(e) = &c.earned else { continue };
                earned += e.reward.minor();
                by_level[usize::from(e.level.clamp(1, 3)) - 1] += e.reward.minor();
                rewarded += 1;
                if e.level == 1 {
                    paying.insert(c.buyer.clone());
                }
                *earned_by_day.entry(e.earned_at.utc_day()).or_default() += e.reward.minor();
                if c.is_held() {
                    held += c.amount().minor();
                } else if !c.matured {
                    pending += c.amount().minor();
                }
                lost_by_order.insert(c.order_id.to_string(), e.reward.minor() - c.amount().minor());
            }
            HistoryItem::Entry(LedgerEntry::Reversal { order_id, amount, .. }) => {
                reversed += amount.minor();
                *reversals_by_order.entry(order_id.to_string()).or_default() += amount.minor();
            }
            HistoryItem::Entry(LedgerEntry::Adjustment { amount, .. }) if amount.minor() > 0 => earned += amount.minor(),
            HistoryItem::Entry(LedgerEntry::Adjustment { amount, .. }) => reversed -= amount.minor(),
            HistoryItem::Entry(LedgerEntry::Withdrawal { amount, available_after, withdrawal_id, .. }) => {
                withdrawn += amount.minor();
                if available_after.minor() < 0 {
                    v.push(format!("{user}: withdrawal {withdrawal_id} left available at {}", available_after.minor()));
                }
            }
            HistoryItem::Entry(e @ LedgerEntry::Reward { .. }) => v.push(format!("{user}: reward entry in the history index: {e:?}")),
        }
    }
    let mut expect = |what: &str, stored: i64, from_ledger: i64| {
        if stored != from_ledger {
            v.push(format!("{user}: {what}: stored {stored}, ledger {from_ledger}"));
        }
    };
    expect("total_earned = rewards as earned + credits", stats.total_earned.minor(), earned);
    expect("reversed_total = reversals + debits", stats.reversed_total.minor(), reversed);
    expect("withdrawn_total = sum of withdrawal entries", stats.withdrawn_total.minor(), withdrawn);
    expect("pending = commissions not matured", stats.pending.minor(), pending);
    expect("held = commissions awaiting review", stats.held.minor(), held);
    expect(
        "total_earned = pending + available + held + withdrawn_total + reversed_total",
        stats.total_earned.minor(),
        stats.pending.minor() + stats.available.minor() + stats.held.minor() + stats.withdrawn_total.minor() + stats.reversed_total.minor(),
    );
    expect("rewarded_orders = earned commissions", stats.rewarded_orders as i64, rewarded as i64);
    expect("paying_referrals = referred users with a commission", stats.paying_referrals as i64, paying.len() as i64);
    for (day, sum) in &earned_by_day {
        expect(&format!("earnings of {day} = its rewards as earned"), store.earned_between(user, day, day).await?.minor(), *sum);
    }
    let all: i64 = earned_by_day.values().sum();
    expect("daily earnings in all = rewards as earned", store.earned_between(user, "0000-01-01", "9999-12-31").await?.minor(), all);
    for (level, (stored, from_ledger)) in stats.earned_by_level().iter().zip(by_level).enumerate() {
        expect(&format!("earned at level {} = its commissions as earned", level + 1), stored.minor(), from_ledger);
    }
    for (order, lost) in lost_by_order {
        let got = reversals_by_order.get(&order).copied().unwrap_or(0);
        if got != lost {
            v.push(format!("{user}: reversal entries of {order} = {got}, the commission lost {lost}"));
        }
    }
    Ok((stats, history, v))
}

/// [`money_violations`] as a test assertion.
pub async fn assert_money_invariants(store: &DynamoStore, user: &UserId) -> AffiliateStats {
    let (stats, _, violations) = money_violations(store, user).await.expect("stats and ledger");
    assert!(violations.is_empty(), "money invariants: {violations:#?}");
    stats
}

/// `scripts/stack.sh <command> <this stack> [args]`: restart or stop pieces of the running
/// stack (tests that kill the bridge, the event sources, Redis or RabbitMQ).
pub fn stack(command: &str, args: &[&str]) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let name = std::env::var("MARKET_STACK").expect("MARKET_STACK: run inside `make test`");
    let status = std::process::Command::new(format!("{root}/scripts/stack.sh"))
        .arg(command)
        .arg(&name)
        .args(args)
        .status()
        .expect("stack.sh runs");
    assert!(status.success(), "stack.sh {command} {args:?}");
}

/// The erasure key of the stack's functions (its secret in the local Secrets Manager, as the
/// template's `ErasureKeySecret`): a test's in-process erasures and events then find the same
/// pseudonyms as the functions do.
pub async fn stack_erasure_key() -> std::sync::Arc<dyn market_domain::processors::ErasureKey> {
    let path = std::env::var("LOCAL_FUNCTION_ENV").expect("LOCAL_FUNCTION_ENV (the stack's env)");
    let env: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("function env")).expect("function env JSON");
    let arn = env["erase-user"]["ERASURE_KEY_SECRET_ARN"].as_str().expect("erase-user's ERASURE_KEY_SECRET_ARN").to_owned();
    let sdk = market_storage::aws_config().await;
    std::sync::Arc::new(market_lambda::secrets::SecretsManagerErasureKey::new(&sdk, arn))
}
