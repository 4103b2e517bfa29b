//! The five RPCs end to end: gRPC-Web requests to the functions served by
//! `cargo lambda watch` against the local stack (started by `make test`).

use std::sync::Arc;

use base64::Engine;
use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_proto::v1::*;
use market_tests::rpc::{frame, unframe, Rpc};
use prost::Message;
use tonic::Code;

/// The functions run with MARKET_CONFIG_JSON from scripts/test.sh: max 5 codes, minimum
/// withdrawal 10.
const MAX_CODES: usize = 5;

fn rpc() -> Rpc {
    Rpc::from_env().expect("run inside `make test`")
}

fn user(prefix: &str) -> String {
    market_tests::user(prefix).to_string()
}

/// Funds `user` through the real reward path (referral + reward transaction); the
/// referral uses one invite code of `user`.
async fn fund(user: &str, amount: i64) {
    let d = market_tests::deps(MarketConfig::default()).await;
    market_tests::fund(&d, &market_domain::ids::UserId::parse(user).unwrap(), amount).await;
}

fn withdraw(amount: i64, key: &str) -> WithdrawAffiliateRewardRequest {
    WithdrawAffiliateRewardRequest { amount, idempotency_key: key.into() }
}

#[tokio::test]
async fn every_rpc_success_path() {
    let rpc = rpc();
    let mut client = rpc.client();
    let me = user("alice");
    let token = rpc.token(&me);

    let created = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await.unwrap().into_inner();
    let code = created.code.unwrap();
    assert_eq!(code.code.len(), 8);
    assert!(code.created_at.is_some());

    let listed = client.list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &token)).await.unwrap().into_inner();
    assert_eq!(listed.codes.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), [code.code.as_str()]);

    let stats = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap().into_inner();
    let policy = stats.policy.unwrap();
    assert_eq!(policy.max_active_codes as usize, MAX_CODES);
    assert!(policy.affiliate_enabled);
    assert_eq!(stats.codes.len(), 1);
    let s = stats.stats.unwrap();
    assert_eq!((s.active_codes, s.available, s.currency.as_str()), (1, 0, "USD"));

    // Case-insensitive delete; a retry is idempotent.
    let deleted = client
        .delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.code.to_lowercase() }, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.already_inactive);
    let again = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.code.clone() }, &token)).await.unwrap();
    assert!(again.into_inner().already_inactive);
    assert!(client.list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &token)).await.unwrap().into_inner().codes.is_empty());

    fund(&me, 500).await;
    let first = client.withdraw_affiliate_reward(Rpc::authed(withdraw(200, "w-1"), &token)).await.unwrap().into_inner();
    assert_eq!((first.amount, first.available_after, first.replayed), (200, 300, false));
    assert!(first.withdrawal_id.starts_with("wd_"));
    let retry = client.withdraw_affiliate_reward(Rpc::authed(withdraw(200, "w-1"), &token)).await.unwrap().into_inner();
    assert!(retry.replayed);
    assert_eq!((retry.withdrawal_id.as_str(), retry.available_after), (first.withdrawal_id.as_str(), 300));
    let s = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap().into_inner().stats.unwrap();
    assert_eq!((s.total_earned, s.available, s.withdrawn_total), (500, 300, 200));
}

#[tokio::test]
async fn withdrawal_and_code_errors_map_to_the_spec_codes() {
    let rpc = rpc();
    let mut client = rpc.client();
    let me = user("bob");
    let token = rpc.token(&me);
    fund(&me, 100).await;
    let code = |r: Result<tonic::Response<WithdrawAffiliateRewardResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(code(client.withdraw_affiliate_reward(Rpc::authed(withdraw(9, "a"), &token)).await), Code::FailedPrecondition);
    assert_eq!(code(client.withdraw_affiliate_reward(Rpc::authed(withdraw(101, "b"), &token)).await), Code::FailedPrecondition);
    assert_eq!(code(client.withdraw_affiliate_reward(Rpc::authed(withdraw(-5, "c"), &token)).await), Code::InvalidArgument);
    assert_eq!(code(client.withdraw_affiliate_reward(Rpc::authed(withdraw(10, ""), &token)).await), Code::InvalidArgument);
    client.withdraw_affiliate_reward(Rpc::authed(withdraw(10, "d"), &token)).await.unwrap();
    assert_eq!(code(client.withdraw_affiliate_reward(Rpc::authed(withdraw(20, "d"), &token)).await), Code::AlreadyExists);

    for _ in 1..MAX_CODES {
        // (one slot is taken by the code `fund` referred through)
        client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await.unwrap();
    }
    let err = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "active invite code limit reached");
    let err = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: "ZZZZZZZZ".into() }, &token)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: "nope".into() }, &token)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

fn maybe_authed<T>(message: T, token: &Option<String>) -> tonic::Request<T> {
    match token {
        Some(t) => Rpc::authed(message, t),
        None => tonic::Request::new(message),
    }
}

#[tokio::test]
async fn missing_invalid_expired_and_forged_tokens_are_unauthenticated() {
    let rpc = rpc();
    let mut client = rpc.client();
    let me = user("mallory");
    let expired = rpc.token_with(&me, &std::env::var("AUTH_HS256_SECRET").unwrap(), market_tests::rpc::now_secs() - 3600);
    let forged = rpc.token_with(&me, "not-the-key", market_tests::rpc::now_secs() + 600);
    for token in [None, Some("garbage".to_owned()), Some(expired), Some(forged)] {
        let errs = [
            client.get_affiliate_stats(maybe_authed(GetAffiliateStatsRequest {}, &token)).await.unwrap_err(),
            client.create_invite_code(maybe_authed(CreateInviteCodeRequest::default(), &token)).await.unwrap_err(),
        ];
        for err in errs {
            assert_eq!(err.code(), Code::Unauthenticated, "{token:?}");
            assert_eq!(err.message(), "missing or invalid credentials");
        }
    }
    // A user id in a header is not an identity.
    let mut request = tonic::Request::new(ListInviteCodesRequest {});
    request.metadata_mut().insert("x-user-id", me.parse().unwrap());
    assert_eq!(client.list_invite_codes(request).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_user_cannot_see_delete_or_withdraw_anything_of_another() {
    let rpc = rpc();
    let mut client = rpc.client();
    let (a, b) = (user("a"), user("b"));
    let (ta, tb) = (rpc.token(&a), rpc.token(&b));
    let code = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &ta)).await.unwrap().into_inner().code.unwrap();
    fund(&a, 100).await;

    assert!(client.list_invite_codes(Rpc::authed(ListInviteCodesRequest {}, &tb)).await.unwrap().into_inner().codes.is_empty());
    let b_stats = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &tb)).await.unwrap().into_inner();
    assert!(b_stats.codes.is_empty());
    assert_eq!(b_stats.stats.unwrap().available, 0);
    let err = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.code.clone() }, &tb)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another user's code looks missing");
    let err = client.withdraw_affiliate_reward(Rpc::authed(withdraw(50, "steal"), &tb)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    let a_stats = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &ta)).await.unwrap().into_inner();
    assert_eq!(a_stats.codes.len(), 2, "the created code and the one `fund` used");
    assert_eq!(a_stats.stats.unwrap().available, 100);
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_invalid_argument() {
    let rpc = rpc();
    let token = format!("Bearer {}", rpc.token(&user("fuzz")));
    let headers = [("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1"), ("authorization", token.as_str())];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage message", frame(&[0xff, 0xff, 0xff, 0xff, 0x0f])),
        ("truncated frame", vec![0, 0, 0, 0, 9, 1, 2]),
        ("oversized", frame(&vec![0u8; 64 * 1024])),
    ];
    for (name, body) in cases {
        let (status, headers, _) = rpc.raw(http::Method::POST, "WithdrawAffiliateReward", &headers, body).await.unwrap();
        assert_eq!(status, 200, "{name}");
        assert_eq!(headers.get("grpc-status").map(|v| v.to_str().unwrap()), Some("3"), "{name}: {headers:?}");
    }
}

#[tokio::test]
async fn text_mode_and_browser_preflight_work() {
    let rpc = rpc();
    let me = user("browser");
    let token = format!("Bearer {}", rpc.token(&me));
    let body = base64::engine::general_purpose::STANDARD.encode(frame(&CreateInviteCodeRequest::default().encode_to_vec()));
    let headers = [
        ("content-type", "application/grpc-web-text"),
        ("accept", "application/grpc-web-text"),
        ("x-grpc-web", "1"),
        ("origin", "http://localhost:3000"),
        ("authorization", token.as_str()),
    ];
    let (status, h, body) = rpc.raw(http::Method::POST, "CreateInviteCode", &headers, body.into_bytes()).await.unwrap();
    assert_eq!(status, 200);
    assert!(h["content-type"].to_str().unwrap().starts_with("application/grpc-web-text"));
    assert!(h["access-control-expose-headers"].to_str().unwrap().contains("grpc-status"));
    // Each frame is base64-encoded on its own: decode chunk by chunk.
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut decoded = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let end = rest.find('=').map(|i| rest[i..].find(|c| c != '=').map_or(rest.len(), |j| i + j)).unwrap_or(rest.len());
        decoded.extend(base64::engine::general_purpose::STANDARD.decode(&rest[..end]).unwrap());
        rest = &rest[end..];
    }
    let (messages, trailers) = unframe(&decoded);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let created = CreateInviteCodeResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(created.code.unwrap().code.len(), 8);

    // The web console's origin (the stack's stand-in for CloudFront's) is allowed; others not.
    let console = format!("http://127.0.0.1:{}", std::env::var("CONSOLE_PORT").expect("CONSOLE_PORT in the stack env"));
    let preflight = |origin: &str| {
        [
            ("origin", origin.to_owned()),
            ("access-control-request-method", "POST".into()),
            ("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent".into()),
        ]
    };
    let headers = preflight(&console);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, h, _) = rpc.raw(http::Method::OPTIONS, "CreateInviteCode", &headers, vec![]).await.unwrap();
    assert!(status.is_success(), "{status}");
    assert_eq!(h["access-control-allow-origin"].to_str().unwrap(), console);
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("x-grpc-web"), "{allowed}");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let foreign = preflight("https://elsewhere.example");
    let foreign: Vec<(&str, &str)> = foreign.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, h, _) = rpc.raw(http::Method::OPTIONS, "CreateInviteCode", &foreign, vec![]).await.unwrap();
    assert!(!h.contains_key("access-control-allow-origin"), "a foreign origin is not allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_code_creations_through_the_rpc() {
    let rpc = Arc::new(rpc());
    let me = user("racer");
    let token = rpc.token(&me);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (rpc, token) = (rpc.clone(), token.clone());
            tokio::spawn(async move { rpc.client().create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &token)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}"),
        }
    }
    assert_eq!(ok, MAX_CODES);
    let store = market_tests::store().await;
    let me = market_domain::ids::UserId::parse(me).unwrap();
    assert_eq!(store.list_active_codes(&me).await.unwrap().len(), MAX_CODES);
    assert_eq!(store.get_stats(&me).await.unwrap().active_codes as usize, MAX_CODES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_withdrawals_through_the_rpc() {
    let rpc = Arc::new(rpc());
    let me = user("spender");
    fund(&me, 100).await;
    let token = rpc.token(&me);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (rpc, token) = (rpc.clone(), token.clone());
            tokio::spawn(async move { rpc.client().withdraw_affiliate_reward(Rpc::authed(withdraw(10, &format!("k{i}")), &token)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}"),
        }
    }
    assert_eq!(ok, 10);
    let store = market_tests::store().await;
    let stats = market_tests::assert_money_invariants(&store, &market_domain::ids::UserId::parse(me).unwrap()).await;
    assert_eq!((stats.available.minor(), stats.withdrawn_total.minor()), (0, 100));
}

/// A burst deeper than `cargo lambda watch`'s per-function queue (100; the 101st queued
/// invocation wedges the emulator) is answered in full: the local gateway bounds what is in
/// flight per function, and the functions still answer afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_deeper_than_the_emulator_queue_is_answered() {
    let rpc = Arc::new(rpc());
    let token = rpc.token(&user("burst"));
    let call = |rpc: Arc<Rpc>, token: String| async move {
        let mut client = rpc.client();
        let reply = client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token));
        tokio::time::timeout(std::time::Duration::from_secs(60), reply).await
    };
    let tasks: Vec<_> = (0..150).map(|_| tokio::spawn(call(rpc.clone(), token.clone()))).collect();
    let mut answered = 0;
    for t in tasks {
        let reply = t.await.unwrap().expect("answered within 60 s");
        reply.expect("OK");
        answered += 1;
    }
    assert_eq!(answered, 150);
    call(rpc, token).await.expect("still answered").expect("OK");
}

/// local-aws's meter bills a function's own calls as AWS would (issue 25's cost figures):
/// a statistics read is a strongly consistent `BatchGetItem` of the main item, its 8 shards
/// and the policy (one unit per key, found or not) and a consistent `Query` of the due
/// commissions (one unit even when it finds none); nothing written. Other tests may read at
/// the same time, so the figures are lower bounds.
#[tokio::test]
async fn the_meter_bills_a_statistics_read_as_aws_does() {
    let rpc = rpc();
    let mut client = rpc.client();
    let token = rpc.token(&user("metered"));
    let reading = || async { market_tests::local_aws::meter().await.expect("local-aws's meter") };
    let before = reading().await;
    client.get_affiliate_stats(Rpc::authed(GetAffiliateStatsRequest {}, &token)).await.unwrap();
    let after = reading().await;
    let delta = |k: &str| after["get-affiliate-stats"][k].as_f64().unwrap_or(0.0) - before["get-affiliate-stats"][k].as_f64().unwrap_or(0.0);
    assert!(delta("dynamodb_requests") >= 2.0, "{after}");
    assert!(delta("read_units") >= 11.0, "9 stats items + policy + the due commissions' query: {after}");
    assert_eq!(delta("write_units"), 0.0);
    assert_eq!(after["get-affiliate-stats"]["unmetered"], 0, "every data call reported its capacity");
}
