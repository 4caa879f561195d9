//! `/api/v1/tenants/{tenant_id}/usage/summary`: the overview's requests, failures, refusals,
//! spend and p95 latency, over the range asked and the tenant's rows only.

use uuid::Uuid;

use crate::support::Api;

async fn call_row(api: &Api, tenant: Uuid, status: &str, latency: i32, cost: i64, at: &str) {
    let mut owner = api.db.owner().await;
    sqlx::query("SELECT usage_ledger_ensure_partition($1::timestamptz::date)")
        .bind(at)
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage_ledger (event_id, tenant_id, provider, model, cost_micros, status,
                                   latency_ms, occurred_at)
         VALUES ($1, $2, 'openai', 'gpt-4o', $3, $4, $5, $6::timestamptz)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(cost)
    .bind(status)
    .bind(latency)
    .bind(at)
    .execute(&mut owner)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_summary_counts_failures_and_the_p95_of_calls_that_reached_a_provider() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let (_, other) = api.owner("x@example.com", "other").await;
    let at = "2026-11-01T10:00:00Z";
    // 20 calls that reached a provider, 10 ms to 200 ms; p95 is the 19th, 190 ms.
    for i in 1..=18 {
        call_row(&api, t, "ok", i * 10, 100, at).await;
    }
    call_row(&api, t, "upstream_error", 190, 0, at).await;
    call_row(&api, t, "interrupted", 200, 50, at).await;
    // Refused before any provider: counted, but not in the latency.
    call_row(&api, t, "refused", 1, 0, at).await;
    // Outside the range, and another tenant's.
    call_row(&api, t, "ok", 5000, 1_000, "2026-11-02T10:00:00Z").await;
    call_row(&api, other, "ok", 9000, 1_000, at).await;

    let base = format!("/api/v1/tenants/{t}/usage/summary");
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z";
    let s = api
        .get(&format!("{base}?{range}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(
        (
            s["requests"].as_i64(),
            s["errors"].as_i64(),
            s["refused"].as_i64(),
            s["cost_micros"].as_i64(),
            s["p95_latency_ms"].as_i64()
        ),
        (Some(21), Some(2), Some(1), Some(1_850), Some(190)),
        "{s}"
    );
    // An empty range has no latency to speak of.
    let empty = api
        .get(
            &format!("{base}?from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(empty["requests"], 0);
    assert!(empty["p95_latency_ms"].is_null());
    let backwards = api
        .get(
            &format!("{base}?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z"),
            &owner.token,
        )
        .await;
    assert_eq!(backwards.status.as_u16(), 422);
    assert_eq!(backwards.body["errors"][0]["field"], "from");
}
