//! The public code check end to end (its own test binary: it stops Redis): through the
//! local gateway without a token, usable and unusable codes, nothing about the owner, the
//! per-address limit under concurrent requests (each loopback alias is another address),
//! and a Redis outage (the limit fails open, logged; the check keeps answering).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use market_proto::v1::{CreateInviteCodeRequest, DeleteInviteCodeRequest, GetMarketConfigRequest, ResolveInviteCodeRequest, UpdateMarketConfigRequest};
use market_tests::rpc::Rpc;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

/// An address no earlier run on this stack used (buckets live an hour in Redis).
fn address() -> IpAddr {
    let b: [u8; 3] = rand::random();
    IpAddr::V4(Ipv4Addr::new(127, b[0].max(1), b[1], b[2].max(2)))
}

async fn resolve(rpc: &Rpc, from: IpAddr, code: &str) -> Result<bool, tonic::Status> {
    rpc.public(Some(from)).resolve_invite_code(ResolveInviteCodeRequest { code: code.into() }).await.map(|r| r.into_inner().usable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_public_code_check_answers_only_usability_and_is_limited_per_address() {
    let rpc = Rpc::from_env().unwrap();
    let owner = rpc.token(market_tests::user("owner").as_str());
    let mut client = rpc.client();
    let code = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &owner)).await.unwrap().into_inner().code.unwrap().code;
    let deleted = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &owner)).await.unwrap().into_inner().code.unwrap().code;
    client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: deleted.clone() }, &owner)).await.unwrap();

    // Usable or not, and nothing else: the answer is one bool (2 bytes on the wire).
    let from = address();
    assert!(resolve(&rpc, from, &code).await.unwrap());
    assert!(resolve(&rpc, from, &code.to_lowercase()).await.unwrap(), "case-insensitive");
    for unusable in [deleted.as_str(), "ZZZZZZZZ", "not a code", ""] {
        assert!(!resolve(&rpc, from, unusable).await.unwrap(), "{unusable:?}");
    }
    let answer = rpc.public(Some(from)).resolve_invite_code(ResolveInviteCodeRequest { code: code.clone() }).await.unwrap().into_inner();
    assert_eq!(answer.encode_to_vec(), [8, 1], "only `usable`");

    // One address: a burst of 10 of 60 per hour (7 used above), then RESOURCE_EXHAUSTED
    // with when to retry; 20 concurrent requests get exactly the 3 tokens left.
    let results = futures::future::join_all((0..20).map(|_| resolve(&rpc, from, &code))).await;
    let allowed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(allowed, 3, "{:?}", results.iter().map(|r| r.as_ref().map_err(|s| s.code())).collect::<Vec<_>>());
    let limited = results.into_iter().find_map(Result::err).unwrap();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let retry = limited.get_details_retry_info().and_then(|r| r.retry_delay).expect("a RetryInfo detail");
    assert!(retry > Duration::from_secs(30) && retry <= Duration::from_secs(60), "one token per minute: {retry:?}");
    // Another address is not affected.
    let other = address();
    assert!(resolve(&rpc, other, &code).await.unwrap());
    // The address is the one that connected (the request context's `sourceIp`), never what
    // `X-Forwarded-For` claims: a limited caller naming other addresses stays limited.
    for forged in ["198.51.100.1", "198.51.100.2, 198.51.100.3"] {
        let mut request = tonic::Request::new(ResolveInviteCodeRequest { code: code.clone() });
        request.metadata_mut().insert("x-forwarded-for", forged.parse().unwrap());
        let refused = rpc.public(Some(from)).resolve_invite_code(request).await.expect_err("still limited");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{forged}");
    }

    // Redis down: the check keeps answering, unlimited (API Gateway's route throttling
    // remains), and says so in the log.
    let admin = rpc.admin_token("root");
    let original = rpc.admin().get_market_config(Rpc::authed(GetMarketConfigRequest {}, &admin)).await.unwrap().into_inner();
    market_tests::stack("redis", &["stop"]);
    for _ in 0..3 {
        assert!(resolve(&rpc, from, &code).await.unwrap(), "fails open");
    }
    let log = std::fs::read_to_string(format!("{}/logs/functions.log", std::env::var("MARKET_STACK_DIR").unwrap())).unwrap_or_default();
    assert!(log.contains("rate limiter unreachable"), "the open limit is logged");
    market_tests::stack("redis", &["start"]);

    // Redis is back, empty: the configuration document as it was, and the limit holds again
    // (a fresh bucket: 10 at once).
    let restore = UpdateMarketConfigRequest { config: Some(original.clone()), update: vec!["resolve_per_hour".into(), "default_commission_bps".into()] };
    let mut attempt = 0;
    while let Err(s) = rpc.admin().update_market_config(Rpc::authed(restore.clone(), &admin)).await {
        assert!(s.code() == Code::Unavailable && attempt < 20, "{s:?}");
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Redis answers again from here on; a container that failed to reach it (the calls during
    // the outage, all before this point) fails open for SKIP_AFTER_FAILURE after that.
    let back = Instant::now();
    tokio::time::sleep_until((back + market_config::SKIP_AFTER_FAILURE + Duration::from_millis(300)).into()).await;
    let results = futures::future::join_all((0..12).map(|_| resolve(&rpc, from, &code))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10, "{:?}", results.iter().map(|r| r.as_ref().map_err(|s| s.code())).collect::<Vec<_>>());
}
