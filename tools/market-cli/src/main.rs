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

mod dlq;
mod render;
mod views;

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use market_client::rpc::Rpc;
use market_proto::v1::*;
use render::print_json;
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
    /// UpdateUserPolicy: rate=BPS, limit=N|unlimited, max-codes=N, enabled=true|false; VALUE "default" clears.
    SetPolicy {
        user: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
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
enum DlqCommand {
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

/// What a command failed with: a usage problem (exit 2) or a failed call (exit 1).
enum Failure {
    Usage(String),
    Call(String),
}

fn status_text(status: &tonic::Status) -> String {
    use tonic::Code;
    let what = match status.code() {
        Code::InvalidArgument => "invalid request",
        Code::FailedPrecondition => "refused",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::ResourceExhausted => "limit reached",
        Code::Unauthenticated => "not signed in (the token is missing, invalid or expired)",
        Code::PermissionDenied => "not allowed (an administrator's token is needed)",
        Code::Unavailable | Code::DeadlineExceeded => "unavailable, try again",
        Code::Unimplemented => "not available on this deployment",
        Code::Internal | Code::DataLoss => "failed on the server",
        _ => "request failed",
    };
    format!("{what}: {}", status.message())
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Failure::Call(status_text(&status))
    }
}

/// `KEY=VALUE` lines of an env file into the environment, unless already set.
fn load_env(path: Option<&str>) {
    let explicit = path.is_some() || std::env::var_os("MARKET_STACK_ENV").is_some();
    if !explicit && std::env::var_os("MARKET_RPC_URL").is_some() {
        return;
    }
    let path = path.map(str::to_owned).or_else(|| std::env::var("MARKET_STACK_ENV").ok()).unwrap_or_else(|| ".local/stacks/dev/env".into());
    let Ok(text) = std::fs::read_to_string(&path) else {
        if explicit {
            eprintln!("no env file at {path}");
        }
        return;
    };
    for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
        if std::env::var_os(k).is_none() {
            // Single-threaded start-up, before the runtime starts.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// The deployed API's URL (`ApiUrl`) from a stack's outputs file.
fn api_url(path: &str) -> Option<String> {
    let list: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    list.iter().find(|o| o["OutputKey"] == "ApiUrl").and_then(|o| o["OutputValue"].as_str()).map(str::to_owned)
}

/// Queue URLs: `QUEUE_URL_<id>` from the env, then a deployed stack's `<id>Url` outputs.
fn queue_urls(outputs: Option<&str>) -> Result<dlq::QueueUrls, Failure> {
    let mut urls: BTreeMap<String, String> = std::env::vars().filter_map(|(k, v)| Some((k.strip_prefix("QUEUE_URL_")?.to_owned(), v))).collect();
    if let Some(path) = outputs {
        let text = std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("{path}: {e}")))?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{path}: not a JSON list of outputs: {e}")))?;
        for o in list {
            if let (Some(k), Some(v)) = (o["OutputKey"].as_str(), o["OutputValue"].as_str()) {
                if let Some(id) = k.strip_suffix("Url") {
                    urls.insert(id.to_owned(), v.to_owned());
                }
            }
        }
    }
    Ok(dlq::QueueUrls(urls))
}

fn emit(json: bool, view: View) {
    if json {
        print_json(&view.json);
    } else {
        println!("{}", view.text);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    load_env(cli.env.as_deref());
    if let Some(api) = cli.outputs.as_deref().and_then(api_url) {
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
            let received = market_client::amqp::WithdrawnQueue { name }.drain().await;
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
            let (overrides, update) = policy_update(&pairs)?;
            let request = UpdateUserPolicyRequest { user_id: user, overrides: Some(overrides), update };
            let r = rpc.admin().update_user_policy(Rpc::authed(request, &admin_token(&rpc))).await?;
            emit(json, views::policy(&r.into_inner()));
        }
        Command::Config => {
            let rpc = rpc()?;
            let r = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin_token(&rpc))).await?;
            emit(json, views::config(&r.into_inner()));
        }
        Command::SetConfig { pairs } => {
            let rpc = rpc()?;
            let (config, update) = config_update(&pairs)?;
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
        Command::Dlq { command } => dead_letters(json, cli.outputs.as_deref(), command).await?,
    }
    Ok(())
}

async fn dead_letters(json: bool, outputs: Option<&str>, command: DlqCommand) -> Result<(), Failure> {
    let name = match &command {
        DlqCommand::List { queue } | DlqCommand::Show { queue, .. } | DlqCommand::Redrive { queue, .. } | DlqCommand::Delete { queue, .. } => queue.clone(),
    };
    let names = dlq::DEAD_LETTER_QUEUES.map(|(id, _)| id).join(", ");
    let (logical_id, source) = dlq::dead_letter_queue(&name).ok_or_else(|| Failure::Usage(format!("unknown dead-letter queue {name:?}; one of {names}")))?;
    let urls = queue_urls(outputs)?;
    let url = urls.url(logical_id).map_err(Failure::Usage)?.to_owned();
    let sqs = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    match command {
        DlqCommand::List { .. } => {
            let messages = dlq::peek(&sqs, &url).await.map_err(Failure::Call)?;
            let described: Vec<serde_json::Value> = messages.iter().map(|m| dlq::describe(logical_id, m, true)).collect();
            let rows: Vec<Vec<String>> = described
                .iter()
                .map(|d| {
                    let s = |k: &str| d[k].as_str().map(str::to_owned).unwrap_or_else(|| d[k].to_string());
                    vec![s("message_id"), s("receive_count"), s("sent_at"), s("reason")]
                })
                .collect();
            let text = format!("{logical_id}: {} message(s)\n{}", described.len(), render::table(&["MESSAGE ID", "RECEIVES", "SENT", "REASON"], &rows));
            emit(json, View { json: serde_json::json!({"queue": logical_id, "messages": described}), text });
        }
        DlqCommand::Show { message_id, .. } => {
            let messages = dlq::peek(&sqs, &url).await.map_err(Failure::Call)?;
            let message = messages.iter().find(|m| m.message_id() == Some(message_id.as_str())).ok_or_else(|| Failure::Call(format!("no message {message_id} in {logical_id}")))?;
            let view = dlq::describe(logical_id, message, true);
            let text = serde_json::to_string_pretty(&view).unwrap_or_default();
            emit(json, View { json: view, text });
        }
        DlqCommand::Delete { message_id, .. } => {
            let deleted = dlq::delete(&sqs, &url, &message_id).await.map_err(Failure::Call)?;
            if !deleted {
                return Err(Failure::Call(format!("no message {message_id} in {logical_id}")));
            }
            emit(json, View { json: serde_json::json!({"queue": logical_id, "deleted": message_id}), text: format!("deleted {message_id} from {logical_id}") });
        }
        DlqCommand::Redrive { ids, max, .. } => {
            let source = source.ok_or_else(|| {
                Failure::Usage(format!("{logical_id} is the outbox stream's failure destination: the records stay in the outbox table; see the runbook"))
            })?;
            let source_url = urls.url(source).map_err(Failure::Usage)?.to_owned();
            let moved = dlq::redrive(&sqs, &url, &source_url, &ids, max).await.map_err(Failure::Call)?;
            let text = format!("redrove {} message(s) from {logical_id} to {source}", moved.len());
            emit(json, View { json: serde_json::json!({"queue": logical_id, "to": source, "redriven": moved}), text });
        }
    }
    Ok(())
}

fn split_pair(pair: &str) -> Result<(&str, &str), Failure> {
    pair.split_once('=').ok_or_else(|| Failure::Usage(format!("expected KEY=VALUE, got {pair:?}")))
}

fn parse_limit(v: &str) -> Option<TriggerLimit> {
    use market_proto::v1::trigger_limit::Limit;
    let limit = match v {
        "unlimited" => Limit::Unlimited(true),
        n => Limit::Count(n.parse().ok()?),
    };
    Some(TriggerLimit { limit: Some(limit) })
}

fn policy_update(pairs: &[String]) -> Result<(PolicyOverrides, Vec<String>), Failure> {
    let mut overrides = PolicyOverrides::default();
    let mut update = Vec::new();
    for pair in pairs {
        let (k, v) = split_pair(pair)?;
        let clear = v == "default";
        let bad = || Failure::Usage(format!("bad value in {pair}"));
        let field = match k {
            "rate" | "commission_bps" => {
                overrides.commission_bps = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "commission_bps"
            }
            "limit" | "trigger_limit" => {
                overrides.trigger_limit = if clear { None } else { Some(parse_limit(v).ok_or_else(bad)?) };
                "trigger_limit"
            }
            "max-codes" | "max_active_codes" => {
                overrides.max_active_codes = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "max_active_codes"
            }
            "enabled" | "affiliate_enabled" => {
                overrides.affiliate_enabled = if clear { None } else { Some(v.parse().map_err(|_| bad())?) };
                "affiliate_enabled"
            }
            other => return Err(Failure::Usage(format!("unknown policy key {other:?}: rate, limit, max-codes, enabled"))),
        };
        update.push(field.to_owned());
    }
    Ok((overrides, update))
}

fn config_update(pairs: &[String]) -> Result<(MarketConfig, Vec<String>), Failure> {
    let mut config = MarketConfig::default();
    let mut update = Vec::new();
    for pair in pairs {
        let (k, v) = split_pair(pair)?;
        let ok = match k {
            "enabled" => v.parse().map(|b| config.enabled = b).is_ok(),
            "default_commission_bps" => v.parse().map(|n| config.default_commission_bps = n).is_ok(),
            "default_trigger_limit" => parse_limit(v).map(|l| config.default_trigger_limit = Some(l)).is_some(),
            "max_active_codes" => v.parse().map(|n| config.max_active_codes = n).is_ok(),
            "min_withdraw_amount" => v.parse().map(|n| config.min_withdraw_amount = n).is_ok(),
            "currency" => {
                config.currency = v.to_owned();
                true
            }
            "code_expiry_days" => v.parse().map(|n| config.code_expiry_days = n).is_ok(),
            "code_retention_days" => v.parse().map(|n| config.code_retention_days = n).is_ok(),
            "holding_period_days" => v.parse().map(|n| config.holding_period_days = n).is_ok(),
            _ => false,
        };
        if !ok {
            return Err(Failure::Usage(format!("bad config pair {pair}")));
        }
        update.push(k.to_owned());
    }
    Ok((config, update))
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
