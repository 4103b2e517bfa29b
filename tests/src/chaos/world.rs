//! What a chaos run sends and what it was answered: the clients (processors in this process,
//! gRPC-Web to the functions, RabbitMQ for events), the retry every client does on a
//! transient failure, and the record of everything sent that the checker compares with the
//! stored state.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use market_config::RedisConfig;
use market_domain::admin::{AdminRequest, ConfigChange, ConfigDeps, ConfigField, PolicyChange, PolicyField, UpdateMarketConfig, UpdateUserPolicy};
use market_domain::code::InviteCode;
use market_domain::config::MarketConfig;
use market_domain::admin_groups::{GroupChange, PutRewardGroup};
use market_domain::group::GroupName;
use market_domain::ids::{EventId, IdempotencyKey, OrderId, ProductId, RefundId, UserId};
use market_domain::inbound::OrderKind;
use market_domain::ports::GroupStore;
use market_domain::lifecycle::RefundReason;
use market_domain::money::{Bps, Money};
use market_domain::policy::TriggerLimit;
use market_domain::ports::{PolicyOverrides, StaticConfig};
use market_domain::processors::*;
use market_domain::time::{Clock, SystemClock, Timestamp};
use market_domain::MarketError;
use market_proto::v1 as pb;
use market_storage::DynamoStore;
use rand::Rng;
use tonic::Code;

use super::workload::{key_amount, CodeKind, Op, PolicyMove, Via, ITEMS};
use crate::amqp::Publisher;
use crate::rpc::Rpc;

/// How long a client keeps retrying one request through faults.
const RETRY_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct RegistrationSent {
    pub event_id: String,
    pub code: Option<String>,
    pub kind: CodeKind,
}

#[derive(Debug, Clone)]
pub struct Buyer {
    pub user: UserId,
    pub registrations: Vec<RegistrationSent>,
}

#[derive(Debug, Clone)]
pub struct OrderSent {
    pub order: OrderId,
    pub buyer: UserId,
    pub amount: i64,
    /// Not yet refunded (refunds never exceed the order).
    pub left: i64,
    pub refunds: Vec<(String, i64)>,
    /// What the order carried for the reward rules.
    pub product: Option<&'static str>,
    pub kind: Option<OrderKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Withdrawn { id: String, amount: i64 },
    Insufficient,
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub start: Instant,
    pub end: Instant,
    pub answer: Answer,
}

/// What was sent, and the bounds the admin changes put on what may be stored.
#[derive(Default, Clone)]
pub struct Sent {
    pub active: HashMap<usize, Vec<String>>,
    pub deleted: Vec<(usize, String)>,
    pub expired: Vec<(usize, String)>,
    /// Every code a creation answered: (owner, key, code).
    pub created: Vec<(usize, Option<String>, String)>,
    pub buyers: Vec<Buyer>,
    /// Buyers whose registration completed (in process): a second registration picks these.
    pub ready: Vec<usize>,
    /// Buyers orders pick from: every buyer as soon as its registration is drawn, sent or
    /// held back (arrival order: its orders and refunds may overtake it).
    pub pickable: Vec<usize>,
    /// Registrations held back: (buyer, event, deliveries, path), delivered later.
    pub held_back: Vec<(usize, RegistrationSent, u8, Via)>,
    /// Orders and refunds sent while their buyer's registration was held back.
    pub overtaking_orders: usize,
    pub overtaking_refunds: usize,
    pub orders: Vec<OrderSent>,
    pub withdrawals: HashMap<(usize, u32), Vec<Attempt>>,
    pub rates: HashMap<usize, HashSet<u32>>,
    pub global_rates: HashSet<u32>,
    pub min_limit: HashMap<usize, u32>,
    pub max_codes: HashMap<usize, u32>,
    pub disabled_ever: HashSet<usize>,
    /// Erased buyers: their id → their pseudonym (the store knows them by it).
    pub erased: HashMap<UserId, UserId>,
    /// Erasures requested (repeats included).
    pub erasures: usize,
    /// Inviters ever moved into the run's reward group, and its versions written.
    pub grouped_ever: HashSet<usize>,
    pub group_versions: u64,
    /// Commissions the checker found decided by the run's group.
    pub group_commissions: usize,
    /// Answers no client may ever get (e.g. `INTERNAL`), as they happened.
    pub violations: Vec<String>,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub published: AtomicU64,
}

pub struct World {
    pub run: String,
    /// The run's reward group (its versions change between `chaos::rules::variant`s).
    pub group: GroupName,
    pub inviters: Vec<UserId>,
    pub deps: Deps<DynamoStore, RedisConfig>,
    /// Creates codes dated three days back with a one-day expiry: expired when used.
    pub(super) past: Deps<DynamoStore, StaticConfig>,
    configs: Arc<RedisConfig>,
    pub fallback: MarketConfig,
    pub rpc: Rpc,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    pub sent: Mutex<Sent>,
    pub counters: Counters,
    /// Per inviter: their own operations (codes, withdrawals, policy, stats) hold it shared,
    /// their erasure exclusively — an erased user does not act any more, and one acting
    /// while being erased would write their id again after it.
    acting: Vec<tokio::sync::RwLock<()>>,
}

fn transient(e: &MarketError) -> bool {
    matches!(e, MarketError::Unavailable(_) | MarketError::Contention)
}

impl Sent {
    /// The id the store knows a user by: their pseudonym once erased.
    pub fn stored_as(&self, user: &UserId) -> UserId {
        self.erased.get(user).cloned().unwrap_or_else(|| user.clone())
    }
}

fn lock(m: &Mutex<Sent>) -> std::sync::MutexGuard<'_, Sent> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl World {
    pub async fn new(run: String, inviters: usize) -> World {
        let store = crate::store().await;
        let fallback = match std::env::var("MARKET_CONFIG_JSON") {
            Ok(doc) if !doc.trim().is_empty() => MarketConfig::from_json(&doc).expect("MARKET_CONFIG_JSON"),
            _ => MarketConfig::default(),
        };
        let config = RedisConfig::from_env(fallback.clone(), None).expect("redis config");
        let configs = Arc::new(RedisConfig::from_env(fallback.clone(), None).expect("redis config"));
        let then = Timestamp::from_millis(SystemClock.now().millis() - 3 * Timestamp::MS_PER_DAY);
        let past_config = MarketConfig { code_expiry_days: 1, ..fallback.clone() };
        let past = Deps::new(crate::store().await, StaticConfig(past_config)).with_clock(Arc::new(FixedClock(then)));
        let mut sent = Sent::default();
        sent.global_rates.insert(u32::from(fallback.default_commission_bps.get()));
        let group = GroupName::parse(run.to_lowercase()).expect("group name");
        World {
            group,
            inviters: (0..inviters).map(|i| UserId::parse(format!("{run}-inv{i}")).expect("id")).collect(),
            run,
            // The stack's erasure key: in-process events of an erased buyer find the same
            // pseudonym as the functions do.
            deps: Deps::new(store, config).with_erasure_key(crate::stack_erasure_key().await),
            past,
            configs,
            fallback,
            rpc: Rpc::from_env().expect("rpc"),
            publisher: tokio::sync::Mutex::new(None),
            sent: Mutex::new(sent),
            counters: Counters::default(),
            acting: (0..inviters).map(|_| tokio::sync::RwLock::new(())).collect(),
        }
    }

    pub(super) fn configs(&self) -> &RedisConfig {
        &self.configs
    }

    pub fn sent(&self) -> std::sync::MutexGuard<'_, Sent> {
        lock(&self.sent)
    }

    fn violation(&self, what: String) {
        self.sent().violations.push(what);
    }

    /// A client's retry loop: transient failures (a paused DynamoDB, contention) are retried
    /// with jittered backoff until the deadline — as SQS redelivers and callers retry.
    async fn retry<T, F, Fut>(&self, f: F) -> Result<T, MarketError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, MarketError>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match f().await {
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    backoff().await;
                }
                r => return r,
            }
        }
    }

    /// The same over gRPC-Web: `UNAVAILABLE`, deadlines and transport errors are retried;
    /// an `INTERNAL` answer is a violation (and retried too).
    async fn retry_rpc<T, F, Fut>(&self, what: &str, f: F) -> Result<T, tonic::Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            match f().await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if Instant::now() < deadline && matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Aborted | Code::Internal) => {
                    if s.code() == Code::Internal {
                        self.violation(format!("{what}: INTERNAL: {}", s.message()));
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    backoff().await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    /// Publishes with the broker's confirm, reconnecting through outages.
    async fn publish(&self, exchange: &str, key: &str, id: &str, body: &str) {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let mut guard = self.publisher.lock().await;
            if guard.is_none() {
                *guard = Publisher::try_connect().await.ok();
            }
            if let Some(p) = guard.as_ref() {
                if p.try_publish(exchange, key, id, body).await.is_ok() {
                    self.counters.published.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                *guard = None;
            }
            drop(guard);
            if Instant::now() > deadline {
                self.violation(format!("could not publish {exchange}/{key} {id} for {} s", RETRY_FOR.as_secs()));
                return;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            backoff().await;
        }
    }

    /// Erases `user` through `EraseUser` (forfeiting a balance if asked) and records their
    /// pseudonym; a repeat must answer the same pseudonym and change nothing.
    async fn erase(&self, user: &UserId, forfeit_balance: bool) {
        let token = self.rpc.admin_token(admin().as_str());
        let request = pb::EraseUserRequest { user_id: user.to_string(), forfeit_balance };
        let erased = self
            .retry_rpc("EraseUser", || {
                let (mut client, request) = (self.rpc.admin(), Rpc::authed(request.clone(), &token));
                async move { client.erase_user(request).await }
            })
            .await;
        match erased {
            Ok(r) => {
                let pseudonym = UserId::parse(r.pseudonym).expect("a pseudonym");
                let mut s = self.sent();
                s.erasures += 1;
                let problem = match s.erased.get(user) {
                    Some(p) if *p != pseudonym => Some(format!("{user}: erased as {pseudonym}, before as {p}")),
                    Some(_) if r.moved + r.rewritten > 0 => Some(format!("{user}: a repeated erasure changed {} items", r.moved + r.rewritten)),
                    _ => None,
                };
                s.violations.extend(problem);
                s.erased.insert(user.clone(), pseudonym);
            }
            Err(e) => self.violation(format!("erasing {user}: {e:?}")),
        }
    }

    /// `user`'s pseudonym under the stack's key (a pseudonym stays itself).
    async fn pseudonym(&self, user: &UserId) -> UserId {
        if market_domain::personal_data::is_pseudonym(user) {
            return user.clone();
        }
        let key = self.deps.erasure_key.as_ref().expect("the stack's erasure key").key().await.expect("the erasure key");
        market_domain::personal_data::pseudonym(&key, user).expect("a pseudonym")
    }

    fn pick<T: Clone>(items: &[T], pick: u32) -> Option<T> {
        (!items.is_empty()).then(|| items[pick as usize % items.len()].clone())
    }

    pub async fn execute(self: &Arc<Self>, op: Op, via: Via) {
        // An inviter's own operation: not while they are erased, never after.
        let own = match op {
            Op::CreateCode { owner, .. } | Op::CreateExpiredCode { owner } | Op::DeleteCode { owner, .. } => Some(owner),
            Op::Withdraw { user, .. } | Op::Policy { user, .. } | Op::Stats { user } => Some(user),
            _ => None,
        };
        let _acting = match own {
            Some(i) => {
                let guard = self.acting[i].read().await;
                if self.sent().erased.contains_key(&self.inviters[i]) {
                    return;
                }
                Some(guard)
            }
            None => None,
        };
        match op {
            Op::CreateCode { owner, key, twins } => {
                let tasks: Vec<_> = (0..twins).map(|_| tokio::spawn(self.clone().create_code(owner, key.clone(), via))).collect();
                for t in tasks {
                    let _ = t.await;
                }
            }
            Op::CreateExpiredCode { owner } => {
                let req = NewCodeRequest { owner: self.inviters[owner].clone(), idempotency_key: None };
                let create = CreateInviteCode::new(self.past.clone());
                if let Ok(r) = self.retry(|| create.process(req.clone())).await {
                    self.sent().expired.push((owner, r.code.to_string()));
                }
            }
            Op::DeleteCode { owner, pick } => {
                let Some(code) = Self::pick(self.sent().active.get(&owner).map(Vec::as_slice).unwrap_or(&[]), pick) else { return };
                let caller = self.inviters[owner].clone();
                let done = match via {
                    Via::InProcess => {
                        let delete = DeleteInviteCode(self.deps.clone());
                        self.retry(|| delete.process(DeleteInviteCodeRequest { caller: caller.clone(), code: code.clone() })).await.is_ok()
                    }
                    Via::EndToEnd => {
                        let token = self.rpc.token(caller.as_str());
                        self.retry_rpc("DeleteInviteCode", || {
                            let (mut client, request) = (self.rpc.client(), Rpc::authed(pb::DeleteInviteCodeRequest { code: code.clone() }, &token));
                            async move { client.delete_invite_code(request).await }
                        })
                        .await
                        .is_ok()
                    }
                };
                if done {
                    let mut s = self.sent();
                    if let Some(codes) = s.active.get_mut(&owner) {
                        codes.retain(|c| c != &code);
                    }
                    s.deleted.push((owner, code));
                }
            }
            Op::Register { inviter, kind, pick, deliveries, late } => self.register(inviter, kind, pick, deliveries, late, via).await,
            Op::LateRegistration { pick } => {
                let held = {
                    let mut s = self.sent();
                    let n = s.held_back.len();
                    (n > 0).then(|| s.held_back.remove(pick as usize % n))
                };
                if let Some((index, sent, deliveries, via)) = held {
                    self.deliver_registration(index, sent, deliveries, via).await;
                }
            }
            Op::RegisterAgain { pick, inviter } => {
                let (buyer, code) = {
                    let s = self.sent();
                    let Some(b) = Self::pick(&s.ready, pick) else { return };
                    (s.buyers[b].user.clone(), Self::pick(s.active.get(&inviter).map(Vec::as_slice).unwrap_or(&[]), pick))
                };
                let ev = UserRegistered { event_id: new_event(&self.run), user: buyer.clone(), invite_code: code.clone(), occurred_at: SystemClock.now() };
                let register = RegisterUser(self.deps.clone());
                match self.retry(|| register.process(ev.clone())).await {
                    Ok(RegistrationResult::AlreadyRegistered) => {}
                    other => self.violation(format!("a second registration of {buyer} answered {other:?}")),
                }
            }
            Op::EraseBuyer { pick } => {
                let buyer = {
                    let s = self.sent();
                    let Some(b) = Self::pick(&s.ready, pick) else { return };
                    s.buyers[b].user.clone()
                };
                // Buyers only here (an inviter who is a buyer too: EraseInviter).
                if !self.inviters.contains(&buyer) {
                    self.erase(&buyer, false).await;
                }
            }
            Op::EraseInviter { user } => {
                let _alone = self.acting[user].write().await;
                let inviter = self.inviters[user].clone();
                self.erase(&inviter, true).await;
            }
            Op::Order { pick, amount, deliveries, item } => {
                let order = {
                    let mut s = self.sent();
                    let Some(b) = Self::pick(&s.pickable, pick) else { return };
                    let (product, kind) = ITEMS[item % ITEMS.len()];
                    let kind = kind.map(|k| if k == "new" { OrderKind::New } else { OrderKind::Renewal });
                    let order = OrderSent { order: new_order(&self.run), buyer: s.buyers[b].user.clone(), amount, left: amount, refunds: vec![], product, kind };
                    s.orders.push(order.clone());
                    if s.held_back.iter().any(|h| h.0 == b) {
                        s.overtaking_orders += 1;
                    }
                    order
                };
                self.pay(&order, deliveries, via).await;
            }
            Op::ReuseOrder { pick } => {
                let Some(order) = Self::pick(&self.sent().orders, pick) else { return };
                self.pay(&order, 1, Via::InProcess).await;
            }
            Op::Refund { pick, share, chargeback, deliveries } => {
                let (order, refund_id, part) = {
                    let mut s = self.sent();
                    if s.orders.is_empty() {
                        return;
                    }
                    let i = pick as usize % s.orders.len();
                    let o = &mut s.orders[i];
                    let part = (o.left * i64::from(share) / 10_000).max(1);
                    if o.left < part {
                        return;
                    }
                    o.left -= part;
                    let id = format!("rf{}", o.refunds.len());
                    o.refunds.push((id.clone(), part));
                    let o = o.clone();
                    if s.held_back.iter().any(|h| s.buyers[h.0].user == o.buyer) {
                        s.overtaking_refunds += 1;
                    }
                    (o, id, part)
                };
                self.refund(&order, &refund_id, part, chargeback, deliveries, via).await;
            }
            Op::Withdraw { user, key, twins } => {
                let tasks: Vec<_> = (0..twins).map(|_| tokio::spawn(self.clone().withdraw(user, key, via))).collect();
                for t in tasks {
                    let _ = t.await;
                }
            }
            Op::Policy { user, change } => self.policy(user, change).await,
            Op::GroupChange { variant } => self.change_group(variant).await,
            Op::GlobalRate { bps } => {
                self.sent().global_rates.insert(bps);
                let values = MarketConfig { default_commission_bps: Bps::new(bps).expect("rate"), ..self.fallback.clone() };
                let deps = ConfigDeps { deps: self.deps.clone(), configs: self.configs.clone() };
                let update = UpdateMarketConfig(deps);
                let r = self
                    .retry(|| {
                        let body = ConfigChange { values: values.clone(), fields: vec![ConfigField::DefaultCommissionBps] };
                        update.process(AdminRequest { admin: admin(), request_id: nanoid::nanoid!(), body })
                    })
                    .await;
                // Redis may be down past the retries (the fault schedule): then it is not made.
                if let Some(e) = r.as_ref().err().filter(|e| !transient(e)) {
                    self.violation(format!("config change: {e:?}"));
                }
            }
            Op::Stats { user } => {
                let caller = self.inviters[user].clone();
                let ok = match via {
                    Via::InProcess => {
                        let stats = GetAffiliateStats(self.deps.clone());
                        self.retry(|| stats.process(caller.clone())).await.is_ok()
                    }
                    Via::EndToEnd => {
                        let token = self.rpc.token(caller.as_str());
                        self.retry_rpc("GetAffiliateStats", || {
                            let (mut client, request) = (self.rpc.client(), Rpc::authed(pb::GetAffiliateStatsRequest {}, &token));
                            async move { client.get_affiliate_stats(request).await }
                        })
                            .await
                            .is_ok()
                    }
                };
                if !ok {
                    self.violation(format!("stats of {caller} failed"));
                }
            }
        }
    }

    async fn create_code(self: Arc<Self>, owner: usize, key: Option<String>, via: Via) {
        let caller = self.inviters[owner].clone();
        let code = match via {
            Via::InProcess => {
                let idempotency_key = key.as_deref().map(|k| IdempotencyKey::parse(k).expect("key"));
                let create = CreateInviteCode::new(self.deps.clone());
                let r = self.retry(|| create.process(NewCodeRequest { owner: caller.clone(), idempotency_key: idempotency_key.clone() })).await;
                match r {
                    Ok(rec) => Some(rec.code.to_string()),
                    Err(MarketError::CodeLimitReached | MarketError::AffiliateDisabled) => None,
                    Err(e) => {
                        self.violation(format!("create code for {caller}: {e:?}"));
                        None
                    }
                }
            }
            Via::EndToEnd => {
                let token = self.rpc.token(caller.as_str());
                let request = pb::CreateInviteCodeRequest { idempotency_key: key.clone().unwrap_or_default() };
                match self.retry_rpc("CreateInviteCode", || {
                    let (mut client, request) = (self.rpc.client(), Rpc::authed(request.clone(), &token));
                    async move { client.create_invite_code(request).await }
                }).await {
                    Ok(r) => r.code.map(|c| c.code),
                    Err(s) if matches!(s.code(), Code::ResourceExhausted | Code::FailedPrecondition | Code::PermissionDenied) => None,
                    Err(s) => {
                        self.violation(format!("CreateInviteCode for {caller}: {s:?}"));
                        None
                    }
                }
            }
        };
        if let Some(code) = code {
            let mut s = self.sent();
            let active = s.active.entry(owner).or_default();
            if !active.contains(&code) {
                active.push(code.clone());
            }
            s.created.push((owner, key, code));
        }
    }

    /// Delivers every registration still held back (the end of the workload: every buyer
    /// registers in the end, after their orders).
    pub(super) async fn deliver_held_back(self: &Arc<Self>) {
        let held = std::mem::take(&mut self.sent().held_back);
        let tasks: Vec<_> = held
            .into_iter()
            .map(|(index, sent, deliveries, via)| {
                let w = self.clone();
                tokio::spawn(async move { w.deliver_registration(index, sent, deliveries, via).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn register(self: &Arc<Self>, inviter: usize, kind: CodeKind, pick: u32, deliveries: u8, late: bool, via: Via) {
        let (sent, index) = {
            let mut s = self.sent();
            let of = |list: &[(usize, String)]| {
                let mine: Vec<String> = list.iter().filter(|(o, _)| *o == inviter).map(|(_, c)| c.clone()).collect();
                Self::pick(&mine, pick)
            };
            let active = Self::pick(s.active.get(&inviter).map(Vec::as_slice).unwrap_or(&[]), pick);
            let unknown = || (Some(InviteCode::generate().to_string()), CodeKind::Unknown);
            let (code, kind) = match kind {
                CodeKind::Valid | CodeKind::Own => match active {
                    Some(c) => (Some(c), kind),
                    None => unknown(),
                },
                CodeKind::Invalid => (Some("not a code!".to_owned()), kind),
                CodeKind::Unknown => unknown(),
                CodeKind::Deleted => of(&s.deleted).map(|c| (Some(c), kind)).unwrap_or_else(unknown),
                CodeKind::Expired => of(&s.expired).map(|c| (Some(c), kind)).unwrap_or_else(unknown),
                CodeKind::None => (None, kind),
            };
            let event_id = new_event(&self.run).to_string();
            let sent = RegistrationSent { event_id, code: code.clone(), kind };
            let user = if kind == CodeKind::Own { self.inviters[inviter].clone() } else { new_user(&self.run, s.buyers.len()) };
            let index = match s.buyers.iter().position(|b| b.user == user) {
                Some(i) => {
                    s.buyers[i].registrations.push(sent.clone());
                    i
                }
                None => {
                    s.buyers.push(Buyer { user: user.clone(), registrations: vec![sent.clone()] });
                    s.buyers.len() - 1
                }
            };
            if !s.pickable.contains(&index) {
                s.pickable.push(index);
            }
            if late {
                s.held_back.push((index, sent, deliveries, via));
                return;
            }
            (sent, index)
        };
        self.deliver_registration(index, sent, deliveries, via).await;
    }

    async fn deliver_registration(self: &Arc<Self>, index: usize, sent: RegistrationSent, deliveries: u8, via: Via) {
        let user = self.sent().buyers[index].user.clone();
        match via {
            Via::InProcess => {
                let ev = UserRegistered {
                    event_id: EventId::parse(sent.event_id.clone()).expect("event id"),
                    user: user.clone(),
                    invite_code: sent.code.clone(),
                    occurred_at: SystemClock.now(),
                };
                let tasks: Vec<_> = (0..deliveries)
                    .map(|_| {
                        let (w, ev) = (self.clone(), ev.clone());
                        tokio::spawn(async move {
                            let register = RegisterUser(w.deps.clone());
                            w.retry(|| register.process(ev.clone())).await
                        })
                    })
                    .collect();
                let mut answers = Vec::new();
                for t in tasks {
                    if let Ok(r) = t.await {
                        answers.push(r.map_err(|e| e.to_string()));
                    }
                }
                // Every delivery of one event gets the same (first) outcome; an inviter erased
                // between deliveries is named by their pseudonym in the later ones.
                let mut normalized = Vec::with_capacity(answers.len());
                for a in answers {
                    normalized.push(match a {
                        Ok(RegistrationResult::Referred { inviter }) => Ok(RegistrationResult::Referred { inviter: self.pseudonym(&inviter).await }),
                        other => other,
                    });
                }
                let answers = normalized;
                let first = answers.first().cloned();
                if answers.iter().any(|a| a.is_err() || Some(a) != first.as_ref()) {
                    self.violation(format!("deliveries of registration {} answered differently: {answers:?}", sent.event_id));
                }
                if answers.iter().all(Result::is_ok) {
                    self.sent().ready.push(index);
                }
            }
            Via::EndToEnd => {
                let body = Publisher::user_registered_body(&sent.event_id, user.as_str(), sent.code.as_deref());
                for _ in 0..deliveries {
                    self.publish("auth", "user.registered", &sent.event_id, &body).await;
                }
            }
        }
    }

    async fn pay(self: &Arc<Self>, order: &OrderSent, deliveries: u8, via: Via) {
        let event_id = new_event(&self.run);
        match via {
            Via::InProcess => {
                let paid = OrderPaid {
                    event_id,
                    order_id: order.order.clone(),
                    buyer: order.buyer.clone(),
                    amount: Money::from_minor(order.amount),
                    currency: "USD".into(),
                    occurred_at: SystemClock.now(),
                    product_id: order.product.map(|p| ProductId::parse(p).expect("product")),
                    kind: order.kind,
                };
                let tasks: Vec<_> = (0..deliveries)
                    .map(|_| {
                        let w = self.clone();
                        let paid = paid.clone();
                        tokio::spawn(async move {
                            // The hook decides, the reward processor applies (the reward queue between them).
                            let (decide, apply) = (DecideOrderReward(w.deps.clone()), ApplyReward(w.deps.clone()));
                            let decision = w.retry(|| decide.process(paid.clone())).await;
                            match decision {
                                Ok(OrderDecision::Reward(reward)) => {
                                    if let Err(e) = w.retry(|| apply.process(reward.clone())).await {
                                        w.violation(format!("reward of {}: {e:?}", reward.order_id));
                                    }
                                }
                                // Decided when the buyer's registration arrives.
                                Ok(OrderDecision::NoReward(_) | OrderDecision::Waiting) => {}
                                Err(e) => w.violation(format!("decision of {}: {e:?}", paid.order_id)),
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            }
            Via::EndToEnd => {
                let kind = order.kind.map(|k| if k == OrderKind::New { "new" } else { "renewal" });
                let body = Publisher::order_paid_body_of(event_id.as_str(), order.order.as_str(), order.buyer.as_str(), order.amount, order.product, kind);
                for _ in 0..deliveries {
                    self.publish("shop", "order.paid", event_id.as_str(), &body).await;
                }
            }
        }
    }

    async fn refund(self: &Arc<Self>, order: &OrderSent, refund_id: &str, part: i64, chargeback: bool, deliveries: u8, via: Via) {
        let event_id = new_event(&self.run);
        let reason = if chargeback { RefundReason::Chargeback } else { RefundReason::Refund };
        match via {
            Via::InProcess => {
                let ev = OrderRefunded {
                    event_id,
                    refund_id: RefundId::parse(refund_id).expect("refund id"),
                    order_id: order.order.clone(),
                    buyer: order.buyer.clone(),
                    amount: Money::from_minor(part),
                    currency: "USD".into(),
                    reason,
                    occurred_at: SystemClock.now(),
                };
                let tasks: Vec<_> = (0..deliveries)
                    .map(|_| {
                        let (w, ev) = (self.clone(), ev.clone());
                        tokio::spawn(async move {
                            let refund = ApplyRefund(w.deps.clone());
                            if let Err(e) = w.retry(|| refund.process(ev.clone())).await {
                                w.violation(format!("refund {} of {}: {e:?}", ev.refund_id, ev.order_id));
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            }
            Via::EndToEnd => {
                let reason = if chargeback { "chargeback" } else { "refund" };
                let body = Publisher::order_refunded_body(event_id.as_str(), refund_id, order.order.as_str(), order.buyer.as_str(), part, reason);
                for _ in 0..deliveries {
                    self.publish("shop", "order.refunded", event_id.as_str(), &body).await;
                }
            }
        }
    }

    async fn withdraw(self: Arc<Self>, user: usize, key: u32, via: Via) {
        let caller = self.inviters[user].clone();
        let amount = key_amount(user, key);
        let key_text = format!("k{key}");
        let start = Instant::now();
        let answer = match via {
            Via::InProcess => {
                let idempotency_key = IdempotencyKey::parse(&key_text).expect("key");
                let withdraw = WithdrawAffiliateReward(self.deps.clone());
                let r = self
                    .retry(|| {
                        let request = WithdrawRequest { caller: caller.clone(), amount: Money::from_minor(amount), idempotency_key: idempotency_key.clone() };
                        withdraw.process(request)
                    })
                    .await;
                match r {
                    Ok(w) => Answer::Withdrawn { id: w.record.withdrawal_id.to_string(), amount: w.record.amount.minor() },
                    Err(MarketError::InsufficientBalance) => Answer::Insufficient,
                    Err(e) => Answer::Other(format!("{e:?}")),
                }
            }
            Via::EndToEnd => {
                let token = self.rpc.token(caller.as_str());
                let request = pb::WithdrawAffiliateRewardRequest { amount, idempotency_key: key_text.clone() };
                match self.retry_rpc("WithdrawAffiliateReward", || {
                    let (mut client, request) = (self.rpc.client(), Rpc::authed(request.clone(), &token));
                    async move { client.withdraw_affiliate_reward(request).await }
                }).await {
                    Ok(r) => Answer::Withdrawn { id: r.withdrawal_id, amount: r.amount },
                    Err(s) if s.code() == Code::FailedPrecondition && s.message().to_lowercase().contains("insufficient") => Answer::Insufficient,
                    Err(s) => Answer::Other(format!("{:?}: {}", s.code(), s.message())),
                }
            }
        };
        let attempt = Attempt { start, end: Instant::now(), answer };
        self.sent().withdrawals.entry((user, key)).or_default().push(attempt);
    }

    /// Defines the run's group (version 1, before the workload) or writes its next version,
    /// over the version read (another change first: read again).
    pub(super) async fn change_group(&self, variant: usize) {
        let put = PutRewardGroup(self.deps.clone());
        let r = self
            .retry(|| async {
                let current = self.deps.store.get_group(&self.group).await?.map_or(0, |g| g.version);
                let body = GroupChange { name: self.group.clone(), rules: super::rules::variant(variant), description: format!("variant {variant}"), expected_version: current };
                match put.process(AdminRequest { admin: admin(), request_id: nanoid::nanoid!(), body }).await {
                    Err(MarketError::VersionConflict { .. }) => Err(MarketError::Contention),
                    other => other,
                }
            })
            .await;
        match r {
            Ok(g) => {
                let mut s = self.sent();
                s.group_versions = s.group_versions.max(g.version);
            }
            Err(e) if transient(&e) => {}
            Err(e) => self.violation(format!("group change to variant {variant}: {e:?}")),
        }
    }

    async fn policy(&self, user: usize, change: PolicyMove) {
        let mut values = PolicyOverrides::default();
        let field = {
            let mut s = self.sent();
            match change {
                PolicyMove::Rate(bps) => {
                    s.rates.entry(user).or_default().insert(bps);
                    values.commission_bps = Some(Bps::new(bps).expect("rate"));
                    PolicyField::CommissionBps
                }
                PolicyMove::TriggerLimit(limit) => {
                    if let Some(l) = limit {
                        let min = s.min_limit.entry(user).or_insert(l);
                        *min = (*min).min(l);
                    }
                    values.trigger_limit = limit.map(|l| TriggerLimit::limited(l).expect("limit"));
                    PolicyField::TriggerLimit
                }
                PolicyMove::MaxCodes(n) => {
                    let max = s.max_codes.entry(user).or_insert(n);
                    *max = (*max).max(n);
                    values.max_active_codes = Some(n);
                    PolicyField::MaxActiveCodes
                }
                PolicyMove::Enabled(on) => {
                    if !on {
                        s.disabled_ever.insert(user);
                    }
                    values.affiliate_enabled = Some(on);
                    PolicyField::AffiliateEnabled
                }
                PolicyMove::Group(into) => {
                    if into {
                        s.grouped_ever.insert(user);
                    }
                    values.group = Some(if into { self.group.clone() } else { GroupName::default_group() });
                    PolicyField::Group
                }
            }
        };
        let update = UpdateUserPolicy(self.deps.clone());
        let r = self
            .retry(|| {
                let body = PolicyChange { user: self.inviters[user].clone(), values: values.clone(), fields: vec![field] };
                update.process(AdminRequest { admin: admin(), request_id: nanoid::nanoid!(), body })
            })
            .await;
        if let Err(e) = r {
            self.violation(format!("policy change {change:?}: {e:?}"));
        }
    }
}

async fn backoff() {
    let ms = rand::thread_rng().gen_range(50..250);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn admin() -> UserId {
    UserId::parse("chaos-admin").expect("id")
}

fn new_event(run: &str) -> EventId {
    EventId::parse(format!("{run}-ev-{}", nanoid::nanoid!(10))).expect("id")
}

fn new_order(run: &str) -> OrderId {
    OrderId::parse(format!("{run}-o-{}", nanoid::nanoid!(10))).expect("id")
}

fn new_user(run: &str, n: usize) -> UserId {
    UserId::parse(format!("{run}-b{n}")).expect("id")
}

struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}
