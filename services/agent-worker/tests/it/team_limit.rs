//! The per-team limit on model calls, against the real Redis.

use std::time::{SystemTime, UNIX_EPOCH};

use sb_agent_worker::core::team_limit;
use sb_kernel::TenantId;
use sb_testkit::TestRedis;

fn minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[tokio::test]
async fn a_team_over_its_calls_per_minute_waits_for_the_next_minute_and_others_do_not() {
    let redis = TestRedis::new();
    let mut conn = redis.connection().await;
    let prefix = redis.config().key_prefix;
    let tenant = TenantId::new();
    // A minute boundary between the calls would start a new window: try again in the next.
    for _ in 0..2 {
        let start = minute();
        let first = team_limit::wait(&mut conn, &prefix, tenant, "ops", 2).await;
        let second = team_limit::wait(&mut conn, &prefix, tenant, "ops", 2).await;
        let third = team_limit::wait(&mut conn, &prefix, tenant, "ops", 2).await;
        let other_team = team_limit::wait(&mut conn, &prefix, tenant, "research", 2).await;
        let other_tenant = team_limit::wait(&mut conn, &prefix, TenantId::new(), "ops", 2).await;
        if minute() != start {
            continue;
        }
        assert!(first.is_zero() && second.is_zero(), "two calls fit");
        assert!(
            !third.is_zero() && third.as_secs() <= 60,
            "the third waits: {third:?}"
        );
        assert!(
            other_team.is_zero() && other_tenant.is_zero(),
            "windows are per team and tenant"
        );
        assert!(
            team_limit::wait(&mut conn, &prefix, tenant, "ops", 0)
                .await
                .is_zero(),
            "0: no limit"
        );
        return;
    }
    panic!("two minute boundaries in a row");
}
