//! `/api/v1/tenants/{tenant_id}/usage` through the REST stack: aggregates and CSV.

use serde_json::json;

use crate::support::{Api, record_usage};

#[tokio::test]
async fn usage_aggregates_by_day_and_model_and_exports_csv() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let (_, other) = api.owner("x@example.com", "other").await;
    record_usage(&api, t, "gpt-4o", "2026-11-01T10:00:00Z", 100).await;
    record_usage(&api, t, "gpt-4o", "2026-11-01T23:00:00Z", 200).await;
    record_usage(&api, t, "claude,\"3\"", "2026-11-02T10:00:00Z", 50).await;
    record_usage(&api, other, "gpt-4o", "2026-11-01T10:00:00Z", 100_000).await;
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z";
    let by_day = api
        .get(&format!("/api/v1/tenants/{t}/usage?{range}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(by_day["group_by"], "day");
    let rows = by_day["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["key"].as_str(),
            rows[0]["requests"].as_i64(),
            rows[0]["cost_micros"].as_i64()
        ),
        (Some("2026-11-01"), Some(2), Some(300))
    );
    let by_model = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?{range}&group_by=model"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(by_model["rows"].as_array().unwrap().len(), 2);

    let csv = api
        .http
        .get(api.url(&format!("/api/v1/tenants/{t}/usage?{range}&group_by=model")))
        .bearer_auth(&owner.token)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status().as_u16(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    assert_eq!(
        text,
        "model,requests,input_tokens,cached_input_tokens,output_tokens,cost_micros\r\n\
         \"claude,\"\"3\"\"\",1,10,0,5,50\r\n\
         gpt-4o,2,20,0,10,300\r\n"
    );
    let bad = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?group_by=planet"),
            &owner.token,
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    let backwards = api
        .get(
            &format!("/api/v1/tenants/{t}/usage?from=2026-11-03T00:00:00Z&to=2026-11-01T00:00:00Z"),
            &owner.token,
        )
        .await;
    assert_eq!(backwards.status.as_u16(), 422);
}

#[tokio::test]
async fn any_charge_is_explained_and_calls_are_listed_page_by_page() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let budget = api
        .post(
            &format!("/api/v1/tenants/{t}/budgets"),
            &owner.token,
            json!({"scope": "tenant", "period": "monthly", "limit_micros": 5_000_000}),
        )
        .await
        .expect(201);
    let mut db = api.db.owner().await;
    let at = "2026-11-20T10:00:00Z";
    sqlx::query("SELECT usage_ledger_ensure_partition($1::timestamptz::date)")
        .bind(at)
        .execute(&mut db)
        .await
        .unwrap();
    // A price that changed the day before and one from before that: the call's date picks.
    for (from, input) in [
        ("2026-01-01T00:00:00Z", 1_000_000),
        ("2026-11-19T00:00:00Z", 2_000_000),
    ] {
        sqlx::query(
            "INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok,
                                       cached_input_micros_per_mtok, output_micros_per_mtok)
             VALUES ('openai', 'explained-model', $1::timestamptz, $2, 500000, 8000000)",
        )
        .bind(from)
        .bind(input)
        .execute(&mut db)
        .await
        .unwrap();
    }
    // 1,200 input tokens of which 200 cached, 300 output: 1000 × 2 + 200 × 0.5 + 300 × 8 µ$.
    let event = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO usage_ledger (event_id, tenant_id, provider, model, input_tokens,
                                   cached_input_tokens, output_tokens, cost_micros, status,
                                   occurred_at, request_id, hops, reserved_micros)
         VALUES ($1, $2, 'openai', 'explained-model', 1200, 200, 300, 4500, 'ok',
                 $3::timestamptz, 'req-7',
                 '[{\"provider\":\"openai:flaky\",\"status\":\"http_503\"},{\"provider\":\"openai:main\",\"status\":\"ok\"}]',
                 9000)",
    )
    .bind(event)
    .bind(t)
    .bind(at)
    .execute(&mut db)
    .await
    .unwrap();
    let x = api
        .get(
            &format!("/api/v1/tenants/{t}/usage/events/{event}"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(x["event"]["request_id"], "req-7");
    assert_eq!(x["hops"][0]["status"], "http_503");
    assert_eq!(x["hops"][1]["provider"], "openai:main");
    assert_eq!(x["price"]["effective_from"], "2026-11-19T00:00:00Z");
    assert_eq!(x["arithmetic"]["input"]["tokens"], 1000);
    assert_eq!(x["arithmetic"]["input"]["micros"], 2000);
    assert_eq!(x["arithmetic"]["cached_input"]["micros"], 100);
    assert_eq!(x["arithmetic"]["output"]["micros"], 2400);
    assert_eq!(x["arithmetic"]["total_micros"], 4500);
    assert_eq!(x["arithmetic"]["matches_charge"], true);
    assert_eq!(x["reserved_micros"], 9000);
    assert_eq!(x["settled_micros"], 4500);
    assert_eq!(x["budgets"][0]["id"], budget["id"]);

    // Another tenant's admin sees nothing of it.
    let (other, t2) = api.owner("p@example.com", "other").await;
    api.get(
        &format!("/api/v1/tenants/{t2}/usage/events/{event}"),
        &other.token,
    )
    .await
    .expect(404);

    // The list, newest first, page by page.
    for n in 0..3 {
        record_usage(&api, t, "paged", &format!("2026-11-2{n}T12:00:00Z"), 1).await;
    }
    let range = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let first = api
        .get(
            &format!("/api/v1/tenants/{t}/usage/events?{range}&model=paged&limit=2"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["items"][0]["occurred_at"], "2026-11-22T12:00:00Z");
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = api
        .get(
            &format!(
                "/api/v1/tenants/{t}/usage/events?{range}&model=paged&limit=2&cursor={cursor}"
            ),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["occurred_at"], "2026-11-20T12:00:00Z");
    assert!(rest["next_cursor"].is_null());
    api.get(
        &format!("/api/v1/tenants/{t}/usage/events?cursor=nonsense"),
        &owner.token,
    )
    .await
    .expect(422);
}
