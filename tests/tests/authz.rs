//! The authorization matrix, generated from the proto descriptors (not hand-listed): every
//! method of both services × every kind of token → the expected status; and ids of another
//! user (code, page token) look like missing ones.

use base64::Engine;
use market_proto::v1::{CreateInviteCodeRequest, DeleteInviteCodeRequest, ListLedgerRequest, ListRewardHistoryRequest};
use market_tests::rpc::{frame, now_secs, unframe, Rpc};
use prost::Message;
use serde_json::json;
use tonic::Code;

/// `/<package.Service>/<Method>` of every method the descriptors declare.
fn methods() -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(market_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut out = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "helium.market.v1") {
        for service in &file.service {
            for method in &service.method {
                out.push((service.name().to_owned(), format!("/{}.{}/{}", file.package(), service.name(), method.name())));
            }
        }
    }
    out
}

async fn status(rpc: &Rpc, path: &str, authorization: Option<&str>) -> Code {
    let mut headers = vec![("content-type", "application/grpc-web+proto")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let (http_status, h, body) = rpc.raw_path(http::Method::POST, path, &headers, frame(&[])).await.expect("http");
    assert!(http_status.is_success(), "{path}: HTTP {http_status}");
    let code = h.get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| {
        let (_, trailers) = unframe(&body);
        trailers.lines().find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_owned()))
    });
    Code::from(code.and_then(|c| c.parse::<i32>().ok()).unwrap_or(0))
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn every_method_answers_every_kind_of_token_as_it_must() {
    let rpc = Rpc::from_env().unwrap();
    let methods = methods();
    let services: std::collections::BTreeSet<_> = methods.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(services.into_iter().collect::<Vec<_>>(), ["MarketAdminService", "MarketService", "PublicService"]);
    assert!(methods.len() >= 14, "{methods:?}");
    let now = now_secs();
    let user = format!("authz-{}", nanoid::nanoid!(8));
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"sub": user, "exp": now + 600, "iat": now});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    };
    let secret = rpc.secret().to_owned();
    let valid = rpc.token(&user);
    let payload = valid.split('.').nth(1).unwrap().to_owned();
    let signature = valid.split('.').nth(2).unwrap().to_owned();
    // Every way a token can be wrong: each must be UNAUTHENTICATED on every method.
    let rejected: Vec<(&str, String)> = vec![
        ("no token", String::new()),
        ("not a JWT", "Bearer not-a-jwt".into()),
        ("not Bearer", format!("Basic {valid}")),
        ("bad signature", format!("Bearer {}", rpc.token_claims("another-secret", claims(json!({}))))),
        ("expired", format!("Bearer {}", rpc.token_claims(&secret, claims(json!({"exp": now - 3600}))))),
        ("not yet valid", format!("Bearer {}", rpc.token_claims(&secret, claims(json!({"nbf": now + 3600}))))),
        ("wrong issuer", format!("Bearer {}", rpc.token_claims(&secret, claims(json!({"iss": "https://evil.example/"}))))),
        ("wrong audience", format!("Bearer {}", rpc.token_claims(&secret, claims(json!({"aud": "another-app"}))))),
        ("no subject", format!("Bearer {}", rpc.token_claims(&secret, json!({"exp": now + 600})))),
        ("alg none", format!("Bearer {}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})))),
        ("HS/RS confusion", format!("Bearer {}.{payload}.{signature}", b64(&json!({"alg": "RS256", "typ": "JWT"})))),
    ];
    let user_token = format!("Bearer {valid}");
    let admin_token = format!("Bearer {}", rpc.admin_token(&format!("{user}-admin")));
    // One task per method (the functions serve several requests at once).
    let checks = methods.iter().map(|(service, path)| {
        let (rpc, rejected, user_token, admin_token) = (&rpc, &rejected, &user_token, &admin_token);
        async move {
            let mut checked = 0;
            if service == "PublicService" {
                // No token needed, none looked at: every call is answered, or limited for
                // this address (RESOURCE_EXHAUSTED) — never refused for its token.
                for (what, authorization) in rejected.iter().map(|(w, a)| (*w, a.as_str())).chain([("user", user_token.as_str()), ("admin", admin_token.as_str())]) {
                    let auth = (!authorization.is_empty()).then_some(authorization);
                    let got = status(rpc, path, auth).await;
                    assert!(matches!(got, Code::Ok | Code::ResourceExhausted), "{path} with {what}: {got:?}");
                    checked += 1;
                }
                return checked;
            }
            for (what, authorization) in rejected {
                let auth = (!authorization.is_empty()).then_some(authorization.as_str());
                assert_eq!(status(rpc, path, auth).await, Code::Unauthenticated, "{path} with {what}");
                checked += 1;
            }
            let as_user = status(rpc, path, Some(user_token)).await;
            let as_admin = status(rpc, path, Some(admin_token)).await;
            if service == "MarketAdminService" {
                assert_eq!(as_user, Code::PermissionDenied, "{path}: a user token on an admin method");
            } else {
                assert!(!matches!(as_user, Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented | Code::Internal), "{path} as user: {as_user:?}");
            }
            assert!(!matches!(as_admin, Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented | Code::Internal), "{path} as admin: {as_admin:?}");
            checked + 2
        }
    });
    let checked: usize = futures::future::join_all(checks).await.into_iter().sum();
    println!("{checked} calls over {} methods", methods.len());
}

#[tokio::test]
async fn another_users_ids_look_like_missing_ones() {
    let rpc = Rpc::from_env().unwrap();
    let (a, b) = (format!("own-a-{}", nanoid::nanoid!(6)), format!("own-b-{}", nanoid::nanoid!(6)));
    let (ta, tb) = (rpc.token(&a), rpc.token(&b));
    let mut client = rpc.client();
    // A's code, deleted by B, answers exactly like a code that does not exist.
    let code = client.create_invite_code(Rpc::authed(CreateInviteCodeRequest::default(), &ta)).await.unwrap().into_inner().code.unwrap().code;
    let foreign = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: code.clone() }, &tb)).await.unwrap_err();
    let missing = client.delete_invite_code(Rpc::authed(DeleteInviteCodeRequest { code: "ZZZZZZZZ".into() }, &tb)).await.unwrap_err();
    assert_eq!((foreign.code(), foreign.message()), (missing.code(), missing.message()));
    assert_eq!(foreign.code(), Code::NotFound);
    // A page token of A's history (crafted as the service makes them) is refused to B.
    let token_of = |user: &str| {
        let t = json!({"s": user, "k": {"user_id": user, "entry_key": "withdrawal#wd_x", "at_key": "0000000000001#withdrawal#wd_x"}});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t.to_string())
    };
    let stolen = ListRewardHistoryRequest { page_size: 5, page_token: token_of(&a) };
    assert_eq!(client.list_reward_history(Rpc::authed(stolen, &tb)).await.unwrap_err().code(), Code::InvalidArgument);
    let own = ListRewardHistoryRequest { page_size: 5, page_token: token_of(&b) };
    assert!(client.list_reward_history(Rpc::authed(own, &tb)).await.is_ok(), "the same shape of token, B's own, is followed");
    // The admin's ledger listing binds its tokens to the listed user the same way.
    let admin = rpc.admin_token("authz-admin");
    let request = ListLedgerRequest { user_id: b.clone(), page_size: 5, page_token: token_of(&a) };
    assert_eq!(rpc.admin().list_ledger(Rpc::authed(request, &admin)).await.unwrap_err().code(), Code::InvalidArgument);
}
