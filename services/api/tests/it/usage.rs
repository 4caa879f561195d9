//! `/api/v1/tenants/{tenant_id}/usage` through the REST stack: aggregates and CSV.

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
