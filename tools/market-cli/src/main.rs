//! Developer CLI for the local stack: mints a local token for a user and calls the RPCs.
//!
//!   market-cli token <user>
//!   market-cli stats <user>
//!   market-cli codes <user>
//!   market-cli create-code <user>
//!   market-cli delete-code <user> <code>
//!   market-cli withdraw <user> <amount> [idempotency-key]
//!   market-cli publish-registered <user> [invite-code]     (to RabbitMQ auth/user.registered)
//!   market-cli publish-order <user> <amount> [order-id]    (to RabbitMQ shop/order.paid)
//!   market-cli publish-refund <user> <order-id> <amount> [refund-id] [refund|chargeback]
//!   market-cli history <user>
//!
//! It reads the stack's env file (`.local/stacks/dev/env`, or `MARKET_STACK_ENV`) unless the
//! variables are already set.

use market_proto::v1::*;
use market_client::rpc::Rpc;

const USAGE: &str = "usage: market-cli token|stats|codes|create-code|delete-code|withdraw <user> [args]
  token <user>                       print a bearer token for the local stack
  stats <user>                       GetAffiliateStats
  codes <user>                       ListInviteCodes
  create-code <user>                 CreateInviteCode
  delete-code <user> <code>          DeleteInviteCode
  withdraw <user> <amount> [key]     WithdrawAffiliateReward (amount in minor units)
  history <user>                     ListRewardHistory, every page
  publish-registered <user> [code]   publish auth/user.registered to RabbitMQ
  publish-order <user> <amount> [id] publish shop/order.paid to RabbitMQ (USD minor units)
  publish-refund <user> <order> <amount> [refund-id] [refund|chargeback]
                                     publish shop/order.refunded to RabbitMQ
  events                             take and print the outbound events (affiliate.withdrawn)
                                     waiting in the local balance stand-in queue
admin commands (as administrator `cli-admin`, token with the market:admin scope):
  admin-token <admin>                print an administrator's bearer token
  policy <user>                      GetUserPolicy
  set-policy <user> <k=v>...         UpdateUserPolicy; k: rate (bps), limit (n|unlimited),
                                     max-codes, enabled (true|false); v=default clears
  config                             GetMarketConfig
  set-config <k=v>...                UpdateMarketConfig; k: any MarketConfig field
                                     (default_trigger_limit: n|unlimited)
  ledger <user>                      ListLedger, every page
  audit <user>|market                ListAuditTrail, every page
  adjust <user> <amount> <key> <reason...>
                                     AdjustBalance (negative = debit; ALLOW_NEGATIVE=1 to allow)
  reverse <user> <order> <key> <reason...>
                                     ReverseReward: void what is left of one reward";

fn load_env() {
    if std::env::var_os("MARKET_RPC_URL").is_some() {
        return;
    }
    let path = std::env::var("MARKET_STACK_ENV").unwrap_or_else(|_| ".local/stacks/dev/env".into());
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("no stack env at {path}: start the stack with `make dev`");
        std::process::exit(2);
    };
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            // SAFETY of intent: single-threaded start-up, before the runtime starts.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

fn show<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> i32 {
    match result {
        Ok(response) => {
            println!("{:#?}", response.into_inner());
            0
        }
        Err(status) => {
            eprintln!("{:?}: {}", status.code(), status.message());
            1
        }
    }
}

fn main() {
    load_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("events") => std::process::exit(events()),
        Some("config" | "set-config") => std::process::exit(admin(&args)),
        Some("admin-token" | "policy" | "set-policy" | "ledger" | "audit" | "adjust" | "reverse") if args.len() > 1 => std::process::exit(admin(&args)),
        _ => {}
    }
    let (Some(cmd), Some(user)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let rpc = match Rpc::from_env() {
        Ok(rpc) => rpc,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let token = rpc.token(user);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let code = runtime.block_on(async {
        let mut client = rpc.client();
        match (cmd.as_str(), args.get(2), args.get(3)) {
            ("token", _, _) => {
                println!("{token}");
                0
            }
            ("stats", _, _) => show(client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await),
            ("codes", _, _) => show(client.list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &token)).await),
            ("create-code", _, _) => show(client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await),
            ("delete-code", Some(code), _) => {
                show(client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.clone() }, &token)).await)
            }
            ("publish-registered", code, _) => {
                let publisher = market_client::amqp::Publisher::connect().await;
                let event_id = format!("cli-{}", nanoid::nanoid!(10));
                publisher.user_registered(&event_id, user, code.map(String::as_str)).await;
                println!("published user.registered {event_id} for {user}");
                0
            }
            ("publish-order", Some(amount), order) => {
                let Ok(amount) = amount.parse() else {
                    eprintln!("amount must be an integer (minor units)");
                    return 2;
                };
                let publisher = market_client::amqp::Publisher::connect().await;
                let event_id = format!("cli-{}", nanoid::nanoid!(10));
                let order = order.cloned().unwrap_or_else(|| format!("order-{}", nanoid::nanoid!(8)));
                publisher.order_paid(&event_id, &order, user, amount).await;
                println!("published order.paid {order} ({amount}) for {user}");
                0
            }
            ("history", _, _) => {
                let mut page_token = String::new();
                loop {
                    let request = ListRewardHistoryRequest { page_size: 100, page_token };
                    match client.list_reward_history(Rpc::authed(request, &token)).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            r.entries.iter().for_each(|e| println!("{e:?}"));
                            if r.next_page_token.is_empty() {
                                return 0;
                            }
                            page_token = r.next_page_token;
                        }
                        Err(s) => return show::<()>(Err(s)),
                    }
                }
            }
            ("publish-refund", Some(order), Some(amount)) => {
                let Ok(amount) = amount.parse() else {
                    eprintln!("amount must be an integer (minor units)");
                    return 2;
                };
                let refund_id = args.get(4).cloned().unwrap_or_else(|| format!("refund-{}", nanoid::nanoid!(8)));
                let reason = args.get(5).map(String::as_str).unwrap_or("refund");
                let publisher = market_client::amqp::Publisher::connect().await;
                let event_id = format!("cli-{}", nanoid::nanoid!(10));
                publisher.order_refunded(&event_id, &refund_id, order, user, amount, reason).await;
                println!("published order.refunded {refund_id} of {order} ({amount}, {reason}) for {user}");
                0
            }
            ("withdraw", Some(amount), key) => {
                let Ok(amount) = amount.parse() else {
                    eprintln!("amount must be an integer (minor units)");
                    return 2;
                };
                let key = key.cloned().unwrap_or_else(|| format!("cli-{}", market_client::rpc::now_secs()));
                show(client.withdraw_affiliate_reward(Rpc::authed(WithdrawAffiliateRewardRequest { amount, idempotency_key: key }, &token)).await)
            }
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    });
    std::process::exit(code);
}

/// Outbound events the local stack routed to its stand-in for the balance owner's queue.
fn events() -> i32 {
    let Ok(name) = std::env::var("OUTBOUND_BIND_QUEUE") else {
        eprintln!("OUTBOUND_BIND_QUEUE is not set: is the local stack up?");
        return 2;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let received = runtime.block_on(market_client::amqp::WithdrawnQueue { name }.drain());
    for r in &received {
        println!("{} {} message_id={} {}", r.exchange, r.routing_key, r.message_id.as_deref().unwrap_or("-"), r.body);
    }
    eprintln!("{} event(s)", received.len());
    0
}

fn rpc_or_exit() -> Rpc {
    Rpc::from_env().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    })
}

fn parse_limit(v: &str) -> Option<market_proto::v1::TriggerLimit> {
    use market_proto::v1::trigger_limit::Limit;
    let limit = match v {
        "unlimited" => Limit::Unlimited(true),
        n => Limit::Count(n.parse().ok()?),
    };
    Some(market_proto::v1::TriggerLimit { limit: Some(limit) })
}

/// `k=v` pairs; an unparsable pair exits with usage.
fn pairs(args: &[String]) -> Vec<(String, String)> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => {
                eprintln!("expected key=value, got {a:?}\n{USAGE}");
                std::process::exit(2)
            }
        })
        .collect()
}

fn admin(args: &[String]) -> i32 {
    let rpc = rpc_or_exit();
    let token = rpc.admin_token("cli-admin");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut admin = rpc.admin();
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match args[0].as_str() {
            "admin-token" => {
                println!("{}", rpc.admin_token(&arg(1)));
                0
            }
            "policy" => show(admin.get_user_policy(Rpc::authed(GetUserPolicyRequest { user_id: arg(1) }, &token)).await),
            "set-policy" => {
                let mut overrides = PolicyOverrides::default();
                let mut update = Vec::new();
                for (k, v) in pairs(&args[2..]) {
                    let clear = v == "default";
                    let field = match k.as_str() {
                        "rate" | "commission_bps" => {
                            overrides.commission_bps = if clear { None } else { v.parse().ok() };
                            "commission_bps"
                        }
                        "limit" | "trigger_limit" => {
                            overrides.trigger_limit = if clear { None } else { parse_limit(&v) };
                            "trigger_limit"
                        }
                        "max-codes" | "max_active_codes" => {
                            overrides.max_active_codes = if clear { None } else { v.parse().ok() };
                            "max_active_codes"
                        }
                        "enabled" | "affiliate_enabled" => {
                            overrides.affiliate_enabled = if clear { None } else { v.parse().ok() };
                            "affiliate_enabled"
                        }
                        other => {
                            eprintln!("unknown policy key {other:?}\n{USAGE}");
                            return 2;
                        }
                    };
                    update.push(field.to_owned());
                }
                let request = UpdateUserPolicyRequest { user_id: arg(1), overrides: Some(overrides), update };
                show(admin.update_user_policy(Rpc::authed(request, &token)).await)
            }
            "adjust" => {
                let Ok(amount) = arg(2).parse() else {
                    eprintln!("amount must be an integer (minor units)\n{USAGE}");
                    return 2;
                };
                let request = AdjustBalanceRequest {
                    user_id: arg(1),
                    amount,
                    idempotency_key: arg(3),
                    reason: args.get(4..).map(|r| r.join(" ")).unwrap_or_default(),
                    allow_negative: std::env::var("ALLOW_NEGATIVE").is_ok_and(|v| v == "1"),
                };
                show(admin.adjust_balance(Rpc::authed(request, &token)).await)
            }
            "reverse" => {
                let request = ReverseRewardRequest {
                    user_id: arg(1),
                    order_id: arg(2),
                    idempotency_key: arg(3),
                    reason: args.get(4..).map(|r| r.join(" ")).unwrap_or_default(),
                };
                show(admin.reverse_reward(Rpc::authed(request, &token)).await)
            }
            "config" => show(admin.get_market_config(Rpc::authed(GetMarketConfigRequest {}, &token)).await),
            "set-config" => {
                let mut config = market_proto::v1::MarketConfig::default();
                let mut update = Vec::new();
                for (k, v) in pairs(&args[1..]) {
                    let ok = match k.as_str() {
                        "enabled" => v.parse().map(|b| config.enabled = b).is_ok(),
                        "default_commission_bps" => v.parse().map(|n| config.default_commission_bps = n).is_ok(),
                        "default_trigger_limit" => parse_limit(&v).map(|l| config.default_trigger_limit = Some(l)).is_some(),
                        "max_active_codes" => v.parse().map(|n| config.max_active_codes = n).is_ok(),
                        "min_withdraw_amount" => v.parse().map(|n| config.min_withdraw_amount = n).is_ok(),
                        "currency" => {
                            config.currency = v.clone();
                            true
                        }
                        "code_expiry_days" => v.parse().map(|n| config.code_expiry_days = n).is_ok(),
                        "code_retention_days" => v.parse().map(|n| config.code_retention_days = n).is_ok(),
                        "holding_period_days" => v.parse().map(|n| config.holding_period_days = n).is_ok(),
                        _ => false,
                    };
                    if !ok {
                        eprintln!("bad config pair {k}={v}\n{USAGE}");
                        return 2;
                    }
                    update.push(k);
                }
                show(admin.update_market_config(Rpc::authed(UpdateMarketConfigRequest { config: Some(config), update }, &token)).await)
            }
            "ledger" | "audit" => {
                let mut page_token = String::new();
                loop {
                    let next = if args[0] == "ledger" {
                        let request = ListLedgerRequest { user_id: arg(1), page_size: 100, page_token };
                        match admin.list_ledger(Rpc::authed(request, &token)).await {
                            Ok(r) => {
                                let r = r.into_inner();
                                r.entries.iter().for_each(|e| println!("{e:?}"));
                                r.next_page_token
                            }
                            Err(s) => return show::<()>(Err(s)),
                        }
                    } else {
                        let market = arg(1) == "market";
                        let user_id = if market { String::new() } else { arg(1) };
                        let request = ListAuditTrailRequest { user_id, page_size: 100, page_token, market_config: market };
                        match admin.list_audit_trail(Rpc::authed(request, &token)).await {
                            Ok(r) => {
                                let r = r.into_inner();
                                for a in &r.records {
                                    let at = a.at.map(|t| t.seconds).unwrap_or_default();
                                    println!("{at} {} {} {} {}", a.action, a.actor, a.request_id, a.details_json);
                                }
                                r.next_page_token
                            }
                            Err(s) => return show::<()>(Err(s)),
                        }
                    };
                    if next.is_empty() {
                        return 0;
                    }
                    page_token = next;
                }
            }
            _ => {
                eprintln!("{USAGE}");
                2
            }
        }
    })
}
