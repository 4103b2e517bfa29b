//! `market-cli`: the developer's and operator's CLI. RPCs as a user or an administrator,
//! platform events, the outbound queue, and dead letters (`dlq list|show|redrive`).
//! Human output by default (money in the deployment's currency, ISO 8601 times, tables);
//! `--json` prints one JSON document for scripts. `market-cli --help` lists everything;
//! `market-cli completions bash` prints shell completion.
//!
//! Where it points: the local stack's env file (`.local/stacks/dev/env`, `--env` or
//! `MARKET_STACK_ENV`) unless the variables are set already; a deployed stack's outputs
//! (`--outputs FILE`, the JSON of `aws cloudformation describe-stacks --query
//! 'Stacks[0].Outputs'`) for its queue URLs, with the usual AWS credentials.

mod changes;
mod dead_letters;
mod dlq;
mod failure;
mod groups;
mod render;
mod stack;
mod views;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use market_client::rpc::Rpc;
use market_proto::v1::*;
use render::print_json;
use failure::Failure;
use views::View;

#[derive(Parser)]
#[command(name = "market-cli", version, about = "Helium Market: RPCs, platform events and dead letters, against the local stack or a deployed one")]
struct Cli {
    /// One JSON document on stdout instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    /// The stack's env file (default: MARKET_STACK_ENV or .local/stacks/dev/env).
    #[arg(long, global = true, value_name = "FILE")]
    env: Option<String>,
    /// A deployed stack's outputs (JSON list of OutputKey/OutputValue) for its queue URLs.
    #[arg(long, global = true, value_name = "FILE")]
    outputs: Option<String>,
    /// The caller's own bearer token (default: one minted with the local stack's key).
    #[arg(long, global = true, env = "MARKET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a bearer token for a user of the local stack.
    Token { user: String },
    /// Print an administrator's bearer token (market:admin scope) for the local stack.
    AdminToken { user: String },
    /// GetAffiliateStats.
    Stats { user: String },
    /// ListInviteCodes.
    Codes { user: String },
    /// CreateInviteCode (a key makes a retry return the same code).
    CreateCode {
        user: String,
        #[arg(long)]
        key: Option<String>,
    },
    /// DeleteInviteCode.
    DeleteCode { user: String, code: String },
    /// WithdrawAffiliateReward (amount in minor units; a retry with the same key pays once).
    Withdraw {
        user: String,
        amount: i64,
        #[arg(long)]
        key: Option<String>,
    },
    /// ListRewardHistory, every page.
    History { user: String },
    /// ResolveInviteCode (public, no token): whether a code is usable.
    Resolve { code: String },
    /// Publish auth/user.registered to RabbitMQ.
    PublishRegistered {
        user: String,
        #[arg(long)]
        code: Option<String>,
    },
    /// Publish shop/order.paid to RabbitMQ (minor units).
    PublishOrder {
        user: String,
        amount: i64,
        #[arg(long)]
        order: Option<String>,
    },
    /// Publish shop/order.refunded to RabbitMQ.
    PublishRefund {
        user: String,
        order: String,
        amount: i64,
        #[arg(long)]
        refund_id: Option<String>,
        #[arg(long, default_value = "refund", value_parser = ["refund", "chargeback"])]
        kind: String,
    },
    /// Take and print the outbound events waiting in the local balance stand-in queue.
    Events,
    /// GetUserPolicy (as administrator).
    Policy { user: String },
    /// UpdateUserPolicy: rate=BPS, limit=N|unlimited, max-codes=N, enabled=true|false, group=NAME; VALUE "default" clears.
    SetPolicy {
        user: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// ListRewardGroups: each group's current rules (--json: the shape set-group reads).
    Groups,
    /// PutRewardGroup: NAME's next version, its rules from a JSON file (see README, Reward rules).
    SetGroup {
        name: String,
        file: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// GetMarketConfig.
    Config,
    /// UpdateMarketConfig: any MarketConfig field as KEY=VALUE.
    SetConfig {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// ListLedger, every page.
    Ledger { user: String },
    /// ListAuditTrail of a user, or of the market configuration (`market`), every page.
    Audit { subject: String },
    /// AdjustBalance (negative = debit).
    Adjust {
        user: String,
        #[arg(allow_negative_numbers = true)]
        amount: i64,
        #[arg(long)]
        key: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        allow_negative: bool,
    },
    /// ReverseReward: void what is left of one reward.
    Reverse {
        user: String,
        order: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        reason: String,
    },
    /// ListHeldRewards: rewards held for review, oldest first, every page.
    Held,
    /// ReviewReward: approve (→ pending/available) or reject (→ reversed) one held reward, once.
    Review {
        user: String,
        order: String,
        /// approve or reject
        #[arg(value_parser = ["approve", "reject"])]
        decision: String,
        #[arg(long)]
        reason: String,
    },
    /// ExportUserData: everything the market holds about a user (GDPR art. 15), every page,
    /// as one JSON document on standard output (always JSON).
    Export { user: String },
    /// EraseUser: replace a user by their pseudonym everywhere (GDPR art. 17).
    Erase {
        user: String,
        /// Debit a positive available balance (else such an erasure is refused).
        #[arg(long)]
        forfeit_balance: bool,
    },
    /// Dead-letter queues: order-paid, order-refunded, user-registered, reward, market-events,
    /// outbox-relay-failures.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Every message with its receive count, times and why it failed.
    List { queue: String },
    /// One message, with its body.
    Show { queue: String, message_id: String },
    /// Send messages back to the queue they came from (all, or those given by --id).
    Redrive {
        queue: String,
        #[arg(long = "id", value_name = "MESSAGE_ID")]
        ids: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Delete one message for good (a poison message, after `show` saved what it said).
    Delete { queue: String, message_id: String },
}

pub fn emit(json: bool, view: View) {
    if json {
        print_json(&view.json);
    } else {
        println!("{}", view.text);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    stack::load_env(cli.env.as_deref());
    if let Some(api) = cli.outputs.as_deref().and_then(stack::api_url) {
        if std::env::var_os("MARKET_RPC_URL").is_none() {
            // Single-threaded start-up, before the runtime starts.
            unsafe { std::env::set_var("MARKET_RPC_URL", api) };
        }
    }
    if let Some(token) = &cli.token {
        unsafe { std::env::set_var("MARKET_TOKEN", token) };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Call(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// The local stack's client (tokens minted with its key), or, without a local key, the API
/// at `MARKET_RPC_URL` (a deployed stack's `ApiUrl`, from `--outputs`) with `--token`.
fn rpc() -> Result<Rpc, Failure> {
    Rpc::from_env().or_else(|e| match (std::env::var("MARKET_RPC_URL"), std::env::var_os("MARKET_TOKEN")) {
        (Ok(url), Some(_)) => Ok(Rpc::for_url(&url)),
        _ => Err(Failure::Usage(format!("{e} (or pass --outputs with a deployed stack's ApiUrl and --token)"))),
    })
}

/// The deployment's currency, for formatting amounts the answer does not label.
async fn currency(rpc: &Rpc, admin_token: &str) -> String {
    let request = Rpc::authed(GetMarketConfigRequest {}, admin_token);
    match rpc.admin().get_market_config(request).await {
        Ok(r) => r.into_inner().currency,
        Err(_) => "USD".into(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    let user_token = |rpc: &Rpc, user: &str| cli.token.clone().unwrap_or_else(|| rpc.token(user));
    let admin_token = |rpc: &Rpc| cli.token.clone().unwrap_or_else(|| rpc.admin_token("cli-admin"));
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "market-cli", &mut std::io::stdout());
        }
        Command::Token { user } => println!("{}", rpc()?.token(&user)),
        Command::AdminToken { user } => println!("{}", rpc()?.admin_token(&user)),
        Command::Stats { user } => {
            let rpc = rpc()?;
            let r = rpc.client().get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &user_token(&rpc, &user))).await?;
            emit(json, views::stats(&r.into_inner()));
        }
        Command::Resolve { code } => {
            let rpc = rpc()?;
            let r = rpc.public(None).resolve_invite_code(ResolveInviteCodeRequest { code: code.clone() }).await?.into_inner();
            let text = format!("{code}: {}", if r.usable { "usable" } else { "not usable" });
            emit(json, View { json: serde_json::json!({"code": code, "usable": r.usable}), text });
        }
        Command::Codes { user } => {
            let rpc = rpc()?;
            let r = rpc.client().list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &user_token(&rpc, &user))).await?;
            emit(json, views::codes(&r.into_inner().codes));
        }
        Command::CreateCode { user, key } => {
            let rpc = rpc()?;
            let request = CreateInviteCodeRequest { idempotency_key: key.unwrap_or_default() };
            let r = rpc.client().create_invite_code(Rpc::authed(request, &user_token(&rpc, &user))).await?.into_inner();
            emit(json, views::created(&r.code.unwrap_or_default()));
        }
        Command::DeleteCode { user, code } => {
            let rpc = rpc()?;
            let request = DeleteInviteCodeRequest { code: code.clone() };
            let r = rpc.client().delete_invite_code(Rpc::authed(request, &user_token(&rpc, &user))).await?;
            emit(json, views::deleted(&code, &r.into_inner()));
        }
        Command::Withdraw { user, amount, key } => {
            let rpc = rpc()?;
            let key = key.unwrap_or_else(|| format!("cli-{}", nanoid::nanoid!(12)));
            let request = WithdrawAffiliateRewardRequest { amount, idempotency_key: key };
            let r = rpc.client().withdraw_affiliate_reward(Rpc::authed(request, &user_token(&rpc, &user))).await?;
            emit(json, views::withdrawal(&r.into_inner()));
        }
        Command::History { user } => {
            let rpc = rpc()?;
            let token = user_token(&rpc, &user);
            let mut client = rpc.client();
            let stats = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await?.into_inner();
            let currency = stats.stats.map(|s| s.currency).unwrap_or_default();
            let (mut entries, mut page_token) = (Vec::new(), String::new());
            loop {
                let request = ListRewardHistoryRequest { page_size: 100, page_token };
                let r = client.list_reward_history(Rpc::authed(request, &token)).await?.into_inner();
                entries.extend(r.entries);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            emit(json, views::history(&entries, &currency));
        }
        Command::PublishRegistered { user, code } => {
            let publisher = market_client::amqp::Publisher::try_connect().await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            let event_id = format!("cli-{}", nanoid::nanoid!(10));
            let body = market_client::amqp::Publisher::user_registered_body(&event_id, &user, code.as_deref());
            publisher.try_publish("auth", "user.registered", &event_id, &body).await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            emit(json, View { json: serde_json::json!({"event_id": event_id, "user": user}), text: format!("published user.registered {event_id} for {user}") });
        }
        Command::PublishOrder { user, amount, order } => {
            let publisher = market_client::amqp::Publisher::try_connect().await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            let event_id = format!("cli-{}", nanoid::nanoid!(10));
            let order = order.unwrap_or_else(|| format!("order-{}", nanoid::nanoid!(8)));
            let body = market_client::amqp::Publisher::order_paid_body(&event_id, &order, &user, amount);
            publisher.try_publish("shop", "order.paid", &event_id, &body).await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            emit(json, View { json: serde_json::json!({"event_id": event_id, "order_id": order, "amount": amount}), text: format!("published order.paid {order} ({amount} minor units) for {user} as {event_id}") });
        }
        Command::PublishRefund { user, order, amount, refund_id, kind } => {
            let publisher = market_client::amqp::Publisher::try_connect().await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            let event_id = format!("cli-{}", nanoid::nanoid!(10));
            let refund_id = refund_id.unwrap_or_else(|| format!("refund-{}", nanoid::nanoid!(8)));
            let body = market_client::amqp::Publisher::order_refunded_body(&event_id, &refund_id, &order, &user, amount, &kind);
            publisher.try_publish("shop", "order.refunded", &event_id, &body).await.map_err(|e| Failure::Call(format!("RabbitMQ: {e}")))?;
            emit(json, View { json: serde_json::json!({"event_id": event_id, "refund_id": refund_id}), text: format!("published order.refunded {refund_id} of {order} ({amount}, {kind}) as {event_id}") });
        }
        Command::Events => {
            let name = std::env::var("OUTBOUND_BIND_QUEUE").map_err(|_| Failure::Usage("OUTBOUND_BIND_QUEUE is not set: is the local stack up?".into()))?;
            let received = market_client::amqp::MarketQueue { name }.drain().await;
            let rows: Vec<Vec<String>> = received
                .iter()
                .map(|r| vec![r.exchange.clone(), r.routing_key.clone(), r.message_id.clone().unwrap_or_else(|| "-".into()), r.body.to_string()])
                .collect();
            let list = received
                .iter()
                .map(|r| serde_json::json!({"exchange": r.exchange, "routing_key": r.routing_key, "message_id": r.message_id, "body": r.body}))
                .collect();
            emit(json, View { json: serde_json::Value::Array(list), text: render::table(&["EXCHANGE", "ROUTING KEY", "MESSAGE ID", "BODY"], &rows) });
        }
        Command::Policy { user } => {
            let rpc = rpc()?;
            let r = rpc.admin().get_user_policy(Rpc::authed(GetUserPolicyRequest { user_id: user }, &admin_token(&rpc))).await?;
            emit(json, views::policy(&r.into_inner()));
        }
        Command::SetPolicy { user, pairs } => {
            let rpc = rpc()?;
            let (overrides, update) = changes::policy_update(&pairs)?;
            let request = UpdateUserPolicyRequest { user_id: user, overrides: Some(overrides), update };
            let r = rpc.admin().update_user_policy(Rpc::authed(request, &admin_token(&rpc))).await?;
            emit(json, views::policy(&r.into_inner()));
        }
        Command::Groups => {
            let rpc = rpc()?;
            let r = rpc.admin().list_reward_groups(Rpc::authed(ListRewardGroupsRequest {}, &admin_token(&rpc))).await?;
            emit(json, groups::listing(&r.into_inner().groups)?);
        }
        Command::SetGroup { name, file, description } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let current = rpc.admin().list_reward_groups(Rpc::authed(ListRewardGroupsRequest {}, &token)).await?.into_inner().groups;
            let request = groups::put_request(&name, &file, description, &current)?;
            let written = rpc.admin().put_reward_group(Rpc::authed(request, &token)).await?.into_inner();
            emit(json, groups::listing(&[written])?);
        }
        Command::Config => {
            let rpc = rpc()?;
            let r = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin_token(&rpc))).await?;
            emit(json, views::config(&r.into_inner()));
        }
        Command::SetConfig { pairs } => {
            let rpc = rpc()?;
            let (config, update) = changes::config_update(&pairs)?;
            let r = rpc.admin().update_market_config(Rpc::authed(UpdateMarketConfigRequest { config: Some(config), update }, &admin_token(&rpc))).await?;
            emit(json, views::config(&r.into_inner()));
        }
        Command::Ledger { user } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let currency = currency(&rpc, &token).await;
            let (mut entries, mut page_token) = (Vec::new(), String::new());
            loop {
                let request = ListLedgerRequest { user_id: user.clone(), page_size: 100, page_token };
                let r = rpc.admin().list_ledger(Rpc::authed(request, &token)).await?.into_inner();
                entries.extend(r.entries);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            emit(json, views::ledger(&entries, &currency));
        }
        Command::Audit { subject } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let market = subject == "market";
            let (mut records, mut page_token) = (Vec::new(), String::new());
            loop {
                let user_id = if market { String::new() } else { subject.clone() };
                let request = ListAuditTrailRequest { user_id, page_size: 100, page_token, market_config: market };
                let r = rpc.admin().list_audit_trail(Rpc::authed(request, &token)).await?.into_inner();
                records.extend(r.records);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            emit(json, views::audit(&records));
        }
        Command::Adjust { user, amount, key, reason, allow_negative } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let request = AdjustBalanceRequest { user_id: user, amount, idempotency_key: key, reason, allow_negative };
            let r = rpc.admin().adjust_balance(Rpc::authed(request, &token)).await?.into_inner();
            emit(json, views::adjusted(&r, &currency(&rpc, &token).await));
        }
        Command::Reverse { user, order, key, reason } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let request = ReverseRewardRequest { user_id: user, order_id: order, idempotency_key: key, reason };
            let r = rpc.admin().reverse_reward(Rpc::authed(request, &token)).await?.into_inner();
            emit(json, views::reversed(&r, &currency(&rpc, &token).await));
        }
        Command::Held => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let (mut rewards, mut page_token) = (Vec::new(), String::new());
            loop {
                let request = ListHeldRewardsRequest { page_size: 100, page_token };
                let r = rpc.admin().list_held_rewards(Rpc::authed(request, &token)).await?.into_inner();
                rewards.extend(r.rewards);
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
            emit(json, views::held(&rewards));
        }
        Command::Review { user, order, decision, reason } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let request = ReviewRewardRequest { user_id: user, order_id: order, approve: decision == "approve", reason };
            let r = rpc.admin().review_reward(Rpc::authed(request, &token)).await?.into_inner();
            emit(json, views::reviewed(&r));
        }
        Command::Export { user } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            market_client::export::export_user_data(&rpc, &token, &user, &mut out).await.map_err(|e| match e.downcast::<tonic::Status>() {
                Ok(status) => Failure::from(*status),
                Err(e) => Failure::Call(e.to_string()),
            })?;
        }
        Command::Erase { user, forfeit_balance } => {
            let rpc = rpc()?;
            let token = admin_token(&rpc);
            let r = rpc.admin().erase_user(Rpc::authed(EraseUserRequest { user_id: user, forfeit_balance }, &token)).await?.into_inner();
            print_json(&serde_json::json!({"pseudonym": r.pseudonym, "moved": r.moved, "rewritten": r.rewritten, "forfeited": r.forfeited}));
        }
        Command::Dlq { command } => dead_letters::dead_letters(json, cli.outputs.as_deref(), command).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
