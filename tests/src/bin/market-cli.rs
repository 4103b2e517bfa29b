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
//!
//! It reads the stack's env file (`.local/stacks/dev/env`, or `MARKET_STACK_ENV`) unless the
//! variables are already set.

use market_proto::v1::*;
use market_tests::rpc::Rpc;

const USAGE: &str = "usage: market-cli token|stats|codes|create-code|delete-code|withdraw <user> [args]
  token <user>                       print a bearer token for the local stack
  stats <user>                       GetAffiliateStats
  codes <user>                       ListInviteCodes
  create-code <user>                 CreateInviteCode
  delete-code <user> <code>          DeleteInviteCode
  withdraw <user> <amount> [key]     WithdrawAffiliateReward (amount in minor units)
  publish-registered <user> [code]   publish auth/user.registered to RabbitMQ
  publish-order <user> <amount> [id] publish shop/order.paid to RabbitMQ (USD minor units)
  events                             take and print the outbound events (affiliate.withdrawn)
                                     waiting in the local balance stand-in queue";

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
    if args.first().map(String::as_str) == Some("events") {
        std::process::exit(events());
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
            ("create-code", _, _) => show(client.create_invite_code(Rpc::authed(CreateInviteCodeRequest {}, &token)).await),
            ("delete-code", Some(code), _) => {
                show(client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.clone() }, &token)).await)
            }
            ("publish-registered", code, _) => {
                let publisher = market_tests::amqp::Publisher::connect().await;
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
                let publisher = market_tests::amqp::Publisher::connect().await;
                let event_id = format!("cli-{}", nanoid::nanoid!(10));
                let order = order.cloned().unwrap_or_else(|| format!("order-{}", nanoid::nanoid!(8)));
                publisher.order_paid(&event_id, &order, user, amount).await;
                println!("published order.paid {order} ({amount}) for {user}");
                0
            }
            ("withdraw", Some(amount), key) => {
                let Ok(amount) = amount.parse() else {
                    eprintln!("amount must be an integer (minor units)");
                    return 2;
                };
                let key = key.cloned().unwrap_or_else(|| format!("cli-{}", market_tests::rpc::now_secs()));
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
    let received = runtime.block_on(market_tests::amqp::WithdrawnQueue { name }.drain());
    for r in &received {
        println!("{} {} message_id={} {}", r.exchange, r.routing_key, r.message_id.as_deref().unwrap_or("-"), r.body);
    }
    eprintln!("{} event(s)", received.len());
    0
}
