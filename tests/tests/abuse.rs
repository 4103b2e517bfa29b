//! Abuse controls on DynamoDB Local, through the processors the functions run: code churn
//! (`codes_created_per_day`) fires exactly at its threshold under concurrent creations,
//! deleting does not give creations back, and each refusal is audited with its retry time.

use market_domain::audit::AuditAction;
use market_domain::config::MarketConfig;
use market_domain::ports::prelude::*;
use market_domain::processors::*;
use market_domain::time::Timestamp;
use market_domain::MarketError;
use market_tests::{user, ManualClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn code_churn_is_limited_per_user_and_utc_day() {
    // 2030-01-01T23:00:00Z: one hour before the next UTC day.
    let clock = ManualClock::at(1_893_538_800_000);
    let config = MarketConfig { codes_created_per_day: 3, max_active_codes: 50, ..MarketConfig::default() };
    let d = market_tests::deps(config).await.with_clock(clock.clone());
    let (churner, neighbour) = (user("churn"), user("calm"));
    let create = CreateInviteCode::new(d.clone());

    // Six at once: exactly three are created, the others are told when to retry.
    let results = futures::future::join_all((0..6).map(|_| create.process(churner.clone().into()))).await;
    let created: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(created.len(), 3, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        let MarketError::RateLimited { retry_after } = r else { panic!("{r:?}") };
        assert_eq!(retry_after.as_secs(), 3600, "until the next UTC day");
    }
    // Deleting does not give a creation back; another user is not affected.
    DeleteInviteCode(d.clone()).process(DeleteInviteCodeRequest { caller: churner.clone(), code: created[0].code.as_str().into() }).await.unwrap();
    assert!(matches!(create.process(churner.clone().into()).await, Err(MarketError::RateLimited { .. })));
    assert!(create.process(neighbour.clone().into()).await.is_ok());
    assert_eq!(d.store.get_stats(&churner).await.unwrap().active_codes, 2, "refusals changed nothing");

    // Each refusal is on the user's trail.
    let trail = d.store.list_audit(churner.as_str(), None, 50).await.unwrap().items;
    let refusals: Vec<_> = trail.iter().filter(|r| r.action == AuditAction::LimitReached).collect();
    assert_eq!(refusals.len(), 4);
    assert_eq!((refusals[0].details["rule"].as_str(), refusals[0].details["limit"].as_u64()), (Some("codes_created_per_day"), Some(3)));

    // The next UTC day starts a new count.
    clock.set(Timestamp::from_millis(1_893_538_800_000).next_utc_day().millis());
    assert!(create.process(churner.clone().into()).await.is_ok());
}
