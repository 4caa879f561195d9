//! Webhooks kept in shape: secret rotation with a grace period (both signatures checked by the
//! `standardwebhooks` package), the delivery log's retention, and the GraphQL read of a
//! tenant's webhooks with their latest deliveries.

use std::time::Duration;

use sb_api::core::webhooks::retention;
use sb_db::SystemPool;
use sb_kernel::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::isolation::graphql;
use crate::support::Api;
use crate::webhooks::{Receiver, api, create, header, publish_alert, verify_with_standardwebhooks};

async fn sql(api: &Api, statement: &str) {
    let mut owner = api.db.owner().await;
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut owner)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_period_ends() {
    let api = api(5).await;
    let (owner, t) = api.owner("rotate-owner@example.com", "hook-rotate").await;
    let viewer = api
        .member(t, Role::Viewer, "rotate-viewer@example.com")
        .await;
    let (receiver, url) = Receiver::start(0).await;
    let created = create(&api, &owner, t, &url, &["budget.threshold_crossed"]).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tenants/{t}/webhooks/{webhook}/rotate-secret");

    api.post(&path, &viewer.token, json!({})).await.expect(403);
    api.post(
        &format!(
            "/api/v1/tenants/{t}/webhooks/{}/rotate-secret",
            Uuid::now_v7()
        ),
        &owner.token,
        json!({}),
    )
    .await
    .expect(404);
    let rotated = api.post(&path, &owner.token, json!({})).await.expect(200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert_eq!(rotated["webhook"]["id"], webhook.as_str());
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(rotated["previous_secret_expires_at"].clone()).unwrap();
    let grace = until - chrono::Utc::now();
    assert!(
        grace > chrono::Duration::hours(23) && grace <= chrono::Duration::hours(24),
        "{grace}"
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'webhook.rotate_secret' AND target_id = '{webhook}'"
        ))
        .await,
        1
    );
    // Neither secret is ever read back.
    let read = api
        .get(
            &format!("/api/v1/tenants/{t}/webhooks/{webhook}"),
            &owner.token,
        )
        .await
        .expect(200);
    assert!(!read.to_string().contains(&new[6..]), "{read}");

    // During the grace period: two signatures, each secret verifies on its own.
    publish_alert(&api, t, 50).await;
    let first = receiver.wait_for(1).await[0].clone();
    assert_eq!(header(&first, "webhook-signature").split(' ').count(), 2);
    verify_with_standardwebhooks(&new, &first)
        .await
        .unwrap_or_else(|e| panic!("the new secret does not verify: {e}"));
    verify_with_standardwebhooks(&old, &first)
        .await
        .unwrap_or_else(|e| panic!("the previous secret does not verify: {e}"));

    // After it: the new secret only.
    sql(
        &api,
        &format!(
            "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = '{webhook}'"
        ),
    )
    .await;
    publish_alert(&api, t, 80).await;
    let second = receiver.wait_for(2).await[1].clone();
    assert_eq!(header(&second, "webhook-signature").split(' ').count(), 1);
    verify_with_standardwebhooks(&new, &second).await.unwrap();
    assert!(verify_with_standardwebhooks(&old, &second).await.is_err());
}

#[tokio::test]
async fn finished_deliveries_leave_the_log_after_the_retention_and_pending_ones_stay() {
    let api = api(5).await;
    let (owner, t) = api.owner("retain-owner@example.com", "hook-retain").await;
    let created = create(
        &api,
        &owner,
        t,
        "https://93.184.216.34/hook",
        &["run.finished"],
    )
    .await;
    let webhook = created["webhook"]["id"].as_str().unwrap().to_owned();
    // (status, age in days): only the first two are finished and older than 30 days.
    let rows = [
        ("succeeded", 40),
        ("failed", 31),
        ("pending", 40),
        ("retrying", 45),
        ("succeeded", 29),
        ("failed", 1),
    ];
    let mut ids = Vec::new();
    for (status, days) in rows {
        let id = Uuid::now_v7();
        ids.push(id);
        let ticket = match status {
            "pending" | "retrying" | "failed" => format!("'{}'", Uuid::now_v7()),
            _ => "NULL".to_owned(),
        };
        sql(
            &api,
            &format!(
                "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type,
                                                 body, status, ticket, created_at, updated_at)
                 VALUES ('{id}', '{t}', '{webhook}', '{}', 'run.finished', '{{}}', '{status}',
                         {ticket}, now() - interval '{days} days', now() - interval '{days} days')",
                Uuid::now_v7()
            ),
        )
        .await;
    }
    let system = SystemPool::connect(&api.config.database).await.unwrap();
    let deleted = retention::sweep(&system, Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM webhook_deliveries ORDER BY id")
        .fetch_all(&mut api.db.owner().await)
        .await
        .unwrap();
    assert_eq!(left, ids[2..].to_vec());
    // The system role cannot touch a delivery still being attempted, whatever it asks.
    let forced = sqlx::query("DELETE FROM webhook_deliveries")
        .execute(system.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(
        forced, 2,
        "only the two finished ones left are visible to it"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&mut api.db.owner().await)
        .await
        .unwrap();
    assert_eq!(left, 2);
    assert_eq!(
        api.config.webhooks.delivery_retention.as_secs(),
        30 * 86_400
    );
}

#[tokio::test]
async fn graphql_reads_a_tenants_webhooks_with_their_latest_deliveries() {
    let api = api(5).await;
    let (owner, t) = api.owner("gql-hooks@example.com", "gql-hooks").await;
    let viewer = api.member(t, Role::Viewer, "gql-viewer@example.com").await;
    let (receiver, url) = Receiver::start(0).await;
    let created = create(&api, &owner, t, &url, &["budget.threshold_crossed"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    for threshold in [50, 80, 100] {
        publish_alert(&api, t, threshold).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.wait_for(3).await;
    let query = format!(
        r#"{{ tenant(id: "{t}") {{ webhooks(deliveries: 2) {{
              id url events enabled
              recentDeliveries {{ id status eventType attempts responseStatus }} }} }} }}"#
    );
    let mut hooks = Value::Null;
    for _ in 0..100 {
        let res = graphql(&api, &viewer.token, &query).await;
        assert!(res["errors"].is_null(), "{res}");
        hooks = res["data"]["tenant"]["webhooks"].clone();
        let deliveries = hooks[0]["recentDeliveries"].as_array().unwrap();
        if deliveries.len() == 2 && deliveries.iter().all(|d| d["status"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks[0]["id"], created["webhook"]["id"]);
    assert_eq!(hooks[0]["url"], url.as_str());
    let deliveries = hooks[0]["recentDeliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{hooks}");
    assert!(
        deliveries[0]["id"].as_str() > deliveries[1]["id"].as_str(),
        "newest first"
    );
    assert_eq!(deliveries[0]["responseStatus"], 200);
    assert!(!hooks.to_string().contains(&secret[6..]));
    // Bounded like every list: 0 or 51 deliveries is refused, naming the argument.
    let res = api
        .post(
            "/graphql",
            &viewer.token,
            json!({"query": query.replace("deliveries: 2", "deliveries: 51")}),
        )
        .await
        .expect(200);
    assert!(res.to_string().contains("deliveries"), "{res}");
    assert!(
        res["data"].is_null() || res["data"]["tenant"].is_null(),
        "{res}"
    );
}
