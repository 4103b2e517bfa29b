//! The operations of a chaos run, drawn from the seed before anything runs (so a seed always
//! means the same operations; which code, buyer or order an operation acts on is chosen when
//! it runs, from what exists then, with the drawn `pick`).

use rand::rngs::StdRng;
use rand::Rng;

/// How a registration's invite code is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// An active code of the inviter (unknown if it has none at that moment).
    Valid,
    /// Not a well-formed code.
    Invalid,
    /// Well-formed, never issued.
    Unknown,
    /// The registering user's own code (the user is the inviter: a self-referral).
    Own,
    /// A code the inviter deleted.
    Deleted,
    /// A code that expired.
    Expired,
    /// No code at all.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMove {
    Rate(u32),
    TriggerLimit(Option<u32>),
    MaxCodes(u32),
    Enabled(bool),
    /// Into the run's reward group (true) or back to the default group.
    Group(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The processors the functions run, called in this process on the real services.
    InProcess,
    /// The real path: gRPC-Web to the functions, events through RabbitMQ and the bridge.
    EndToEnd,
}

#[derive(Debug, Clone)]
pub enum Op {
    /// `twins` requests at once; with a key they must share one code.
    CreateCode { owner: usize, key: Option<String>, twins: u8 },
    /// A code created in the past with a one-day expiry (it is expired when used).
    CreateExpiredCode { owner: usize },
    DeleteCode { owner: usize, pick: u32 },
    /// `late`: the registration is held back and delivered by a later [`Op::LateRegistration`]
    /// (or at the end of the workload), so the buyer's orders and refunds overtake it.
    Register { inviter: usize, kind: CodeKind, pick: u32, deliveries: u8, late: bool },
    /// Delivers one held-back registration.
    LateRegistration { pick: u32 },
    /// A second registration event (another event id) for an already registered buyer.
    RegisterAgain { pick: u32, inviter: usize },
    /// `item`: what was bought and how ([`ITEMS`]: product and kind, either optional).
    Order { pick: u32, amount: i64, deliveries: u8, item: usize },
    /// An order sent again under a new event id (the shop re-publishing it).
    ReuseOrder { pick: u32 },
    /// Refunds `share` basis points of what is left of the order.
    Refund { pick: u32, share: u32, chargeback: bool, deliveries: u8 },
    /// Keys repeat within a user's small pool; a key always carries the same amount.
    Withdraw { user: usize, key: u32, twins: u8 },
    Policy { user: usize, change: PolicyMove },
    GlobalRate { bps: u32 },
    Stats { user: usize },
    /// An admin erases a registered buyer (GDPR art. 17) while their orders and refunds go
    /// on arriving under their id; again, if they were erased before (a no-op).
    EraseBuyer { pick: u32 },
    /// An admin erases an inviter (their balance forfeited) while their buyers' orders and
    /// refunds go on arriving: only [`ERASABLE_INVITERS`]; again if erased before (a no-op).
    EraseInviter { user: usize },
    /// An admin writes the run's reward group's next version: rules [`GROUP_VARIANTS`] `variant`.
    GroupChange { variant: usize },
}

/// What an order carries for the reward rules: (product_id, kind).
pub const ITEMS: [(Option<&str>, Option<&str>); 6] =
    [(None, None), (Some("basic"), Some("new")), (Some("pro"), Some("new")), (Some("basic"), Some("renewal")), (Some("pro"), Some("renewal")), (Some("pro"), None)];

/// How many rule sets the run's reward group changes between (`chaos::rules`).
pub const GROUP_VARIANTS: usize = 6;

/// Inviters an admin may erase mid-run: every fourth from the last flaky one on (a few of
/// them, so the rest of the run keeps its affiliates).
pub fn erasable(inviter: usize) -> bool {
    inviter >= FLAKY_INVITERS && inviter % 4 == 3
}

/// Inviters whose affiliate ability an admin may switch off (their rewards may then be
/// declined); the others are never disabled.
pub const FLAKY_INVITERS: usize = 3;
/// Withdrawal keys come from a window that slides with the run: each key is reused (and
/// raced) by nearby operations, and new keys keep coming.
pub const KEY_WINDOW: u32 = 8;
pub const RATES: [u32; 3] = [500, 1000, 2000];
pub const GLOBAL_RATES: [u32; 2] = [1000, 1500];

/// The amount a withdrawal key always asks for.
pub fn key_amount(user: usize, key: u32) -> i64 {
    10 + ((user as i64 * 31 + i64::from(key) * 17) % 140)
}

pub fn draw(rng: &mut StdRng, ops: usize, inviters: usize, e2e_percent: u32) -> Vec<(Op, Via)> {
    let mut out = Vec::with_capacity(ops);
    for i in 0..ops {
        let inviter = rng.gen_range(0..inviters);
        let deliveries = rng.gen_range(1..=3);
        let pick = rng.gen();
        let roll = rng.gen_range(0..1000);
        let op = match roll {
            0..=69 => Op::CreateCode {
                owner: inviter,
                key: rng.gen_bool(0.5).then(|| format!("c{}", rng.gen_range(0..1_000_000))),
                twins: if rng.gen_bool(0.2) { 3 } else { 1 },
            },
            70..=79 => Op::CreateExpiredCode { owner: inviter },
            80..=119 => Op::DeleteCode { owner: inviter, pick },
            120..=289 => {
                let kind = match rng.gen_range(0..100) {
                    0..=64 => CodeKind::Valid,
                    65..=69 => CodeKind::Invalid,
                    70..=74 => CodeKind::Unknown,
                    75..=79 => CodeKind::Own,
                    80..=86 => CodeKind::Deleted,
                    87..=93 => CodeKind::Expired,
                    _ => CodeKind::None,
                };
                Op::Register { inviter, kind, pick, deliveries, late: rng.gen_bool(0.35) }
            }
            290..=299 => Op::RegisterAgain { pick, inviter },
            // About as often as late registrations are drawn (35 % of 17 %): each waits a few
            // dozen operations, while its buyer's orders and refunds arrive.
            300..=349 => Op::LateRegistration { pick },
            350..=619 => Op::Order { pick, amount: rng.gen_range(100..10_000), deliveries, item: rng.gen_range(0..ITEMS.len()) },
            620..=639 => Op::ReuseOrder { pick },
            640..=739 => Op::Refund { pick, share: rng.gen_range(500..=10_000), chargeback: rng.gen_bool(0.2), deliveries },
            740..=919 => Op::Withdraw { user: inviter, key: (i / 100) as u32 * 2 + rng.gen_range(0..KEY_WINDOW), twins: rng.gen_range(1..=4) },
            920..=959 => {
                let change = match rng.gen_range(0..5) {
                    0 => PolicyMove::Rate(RATES[rng.gen_range(0..RATES.len())]),
                    3 => PolicyMove::Group(rng.gen_bool(0.7)),
                    1 => PolicyMove::TriggerLimit(rng.gen_bool(0.5).then(|| rng.gen_range(3..8))),
                    2 => PolicyMove::MaxCodes(rng.gen_range(2..7)),
                    _ if inviter < FLAKY_INVITERS => PolicyMove::Enabled(rng.gen_bool(0.6)),
                    _ => PolicyMove::Rate(RATES[rng.gen_range(0..RATES.len())]),
                };
                Op::Policy { user: inviter, change }
            }
            960..=969 => Op::GlobalRate { bps: GLOBAL_RATES[rng.gen_range(0..GLOBAL_RATES.len())] },
            970..=979 => Op::EraseBuyer { pick },
            980..=984 if erasable(inviter) => Op::EraseInviter { user: inviter },
            985..=994 => Op::GroupChange { variant: rng.gen_range(0..GROUP_VARIANTS) },
            _ => Op::Stats { user: inviter },
        };
        let end_to_end = matches!(
            op,
            Op::CreateCode { .. } | Op::DeleteCode { .. } | Op::Register { .. } | Op::Order { .. } | Op::Refund { .. } | Op::Withdraw { .. } | Op::Stats { .. }
        ) && rng.gen_range(0..100) < e2e_percent;
        out.push((op, if end_to_end { Via::EndToEnd } else { Via::InProcess }));
    }
    out
}
