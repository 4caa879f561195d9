//! `/api/v1/tenants/{tenant_id}/budgets` through the REST stack: spend, period ends and validation.

use serde_json::json;

use crate::support::{Api, id};

#[tokio::test]
async fn budgets_carry_their_spend_and_period_end() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let base = format!("/api/v1/tenants/{t}/budgets");
    let daily = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "daily", "limit_micros": 5_000_000}),
        )
        .await
        .expect(201);
    assert_eq!(daily["spent_micros"], 0);
    assert_eq!(daily["thresholds"], json!([50, 80, 100]));
    assert!(daily["period_end"].is_string());
    // Spend the ledger recorded today appears.
    let mut owner_db = api.db.owner().await;
    sqlx::query(
        "INSERT INTO spend_rollups (tenant_id, scope, scope_id, granularity, period_start, spent_micros, request_count)
         VALUES ($1, 'tenant', $1, 'day', (now() AT TIME ZONE 'UTC')::date, 1234, 3),
                ($1, 'tenant', $1, 'month', date_trunc('month', now() AT TIME ZONE 'UTC')::date, 5555, 5),
                ($1, 'tenant', $1, 'total', DATE '1970-01-01', 9999, 9)",
    )
    .bind(t)
    .execute(&mut owner_db)
    .await
    .unwrap();
    let got = api
        .get(&format!("{base}/{}", id(&daily)), &owner.token)
        .await
        .expect(200);
    assert_eq!(got["spent_micros"], 1234);
    let total = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "total", "limit_micros": 1, "action": "alert"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (
            total["spent_micros"].as_i64(),
            total["period_end"].is_null()
        ),
        (Some(9999), true)
    );
    let monthly = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "monthly", "limit_micros": 1}),
        )
        .await
        .expect(201);
    assert_eq!(monthly["spent_micros"], 5555);

    let dup = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "tenant", "period": "daily", "limit_micros": 1}),
        )
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "budget_exists"));
    let bad = api
        .post(
            &base,
            &owner.token,
            json!({"scope": "workspace", "period": "weekly", "limit_micros": -1}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert_eq!(bad.body["errors"].as_array().unwrap().len(), 3);
    let updated = api
        .patch(
            &format!("{base}/{}", id(&daily)),
            &owner.token,
            json!({"limit_micros": 7_000_000, "thresholds": [90]}),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            updated["limit_micros"].as_i64(),
            updated["thresholds"].clone()
        ),
        (Some(7_000_000), json!([90]))
    );
    api.delete(&format!("{base}/{}", id(&daily)), &owner.token)
        .await
        .expect(204);
    assert_eq!(
        api.get(&base, &owner.token)
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A tenant made by signup or by a platform admin starts with `DEFAULT_BUDGET_USD` for each
/// period of `BUDGET_PERIODS`; with `0`, with none.
#[tokio::test]
async fn new_tenants_start_with_the_default_budgets() {
    let api = Api::with(|c| {
        c.budgets.default_budget_usd = 25;
        c.budgets.periods = vec!["daily".into(), "monthly".into()];
    })
    .await;
    let budgets_of = |tenant: uuid::Uuid, token: String| {
        let api = &api;
        async move {
            let list = api
                .get(&format!("/api/v1/tenants/{tenant}/budgets"), &token)
                .await
                .expect(200);
            let mut seen: Vec<(String, String, i64)> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["scope"].as_str().unwrap().to_owned(),
                        b["period"].as_str().unwrap().to_owned(),
                        b["limit_micros"].as_i64().unwrap(),
                    )
                })
                .collect();
            seen.sort();
            seen
        }
    };
    let expected = vec![
        ("tenant".to_owned(), "daily".to_owned(), 25_000_000),
        ("tenant".to_owned(), "monthly".to_owned(), 25_000_000),
    ];
    let (owner, signed_up) = api.owner("o@example.com", "acme").await;
    assert_eq!(budgets_of(signed_up, owner.token.clone()).await, expected);

    api.make_platform_admin(owner.id).await;
    let operator = api.sign_in("o@example.com").await;
    let created = api
        .post(
            "/api/v1/admin/tenants",
            &operator.token,
            json!({"name": "Globex", "slug": "globex", "owner_email": "o@example.com"}),
        )
        .await
        .expect(201);
    let globex = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    // The owner of a platform-made tenant is invited; a verified account accepts.
    api.smtp.wait_for("o@example.com", 2).await;
    let token = |subject: &str| {
        api.smtp
            .to("o@example.com")
            .into_iter()
            .find(|m| m.subject().contains(subject))
            .unwrap()
            .token()
    };
    let (verification, invitation) = (token("Confirm"), token("invited"));
    api.public("/api/v1/auth/email/verify", json!({"token": verification}))
        .await
        .expect(204);
    api.post(
        "/api/v1/invitations/accept",
        &operator.token,
        json!({"token": invitation}),
    )
    .await
    .expect(200);
    assert_eq!(budgets_of(globex, operator.token.clone()).await, expected);

    let none = Api::new().await;
    let (owner, tenant) = none.owner("p@example.com", "plain").await;
    let list = none
        .get(&format!("/api/v1/tenants/{tenant}/budgets"), &owner.token)
        .await
        .expect(200);
    assert_eq!(list, json!([]), "DEFAULT_BUDGET_USD=0 makes no budget");
}
