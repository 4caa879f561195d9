//! The price book for platform admins: list and add prices over REST, read them over GraphQL;
//! append-only and never dated in the past, each add audited.

use serde_json::json;

use crate::isolation::graphql;
use crate::support::{Api, invalid_fields};

fn price(model: &str, from: Option<&str>) -> serde_json::Value {
    let mut body = json!({"provider": "openai", "model": model, "input_micros_per_mtok": 2_000_000,
                          "output_micros_per_mtok": 8_000_000});
    if let Some(from) = from {
        body["effective_from"] = json!(from);
    }
    body
}

#[tokio::test]
async fn platform_admins_list_and_add_prices() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    let (tenant_owner, _) = api.owner("o@example.com", "acme").await;
    for answer in [
        api.get("/api/v1/admin/prices", &tenant_owner.token).await,
        api.post(
            "/api/v1/admin/prices",
            &tenant_owner.token,
            price("m", None),
        )
        .await,
    ] {
        assert_eq!((answer.status.as_u16(), answer.code()), (403, "forbidden"));
    }
    api.make_platform_admin(operator.id).await;

    // The migrations' prices are there, the current one marked.
    let book = api
        .get(
            "/api/v1/admin/prices?provider=openai&model=gpt-4o",
            &operator.token,
        )
        .await
        .expect(200);
    assert_eq!(book[0]["input_micros_per_mtok"], 2_500_000, "{book}");
    assert_eq!(book[0]["status"], "current");

    // Now (no date), then a scheduled change; the cached price defaults to the input price.
    let now = api
        .post(
            "/api/v1/admin/prices",
            &operator.token,
            price("gpt-5-test", None),
        )
        .await
        .expect(201);
    assert_eq!(now["status"], "current");
    assert_eq!(now["cached_input_micros_per_mtok"], 2_000_000);
    let later = json!({"provider": "openai", "model": "gpt-5-test",
                       "effective_from": "2099-01-01T00:00:00Z", "input_micros_per_mtok": 1_000_000,
                       "cached_input_micros_per_mtok": 100_000, "output_micros_per_mtok": 4_000_000,
                       "currency": "USD"});
    let scheduled = api
        .post("/api/v1/admin/prices", &operator.token, later.clone())
        .await
        .expect(201);
    assert_eq!(scheduled["status"], "scheduled");
    let listed = api
        .get("/api/v1/admin/prices?model=gpt-5-test", &operator.token)
        .await
        .expect(200);
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["scheduled", "current"], "{listed}");

    // The same provider, model and date again: a price is never changed.
    let again = api
        .post("/api/v1/admin/prices", &operator.token, later)
        .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "price_exists"));

    // Each add is audited, as a platform action by the operator.
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE tenant_id IS NULL AND action = 'price.add'
                AND target_type = 'model_price' AND actor_user_id = '{}'",
            operator.id
        ))
        .await,
        2
    );
}

#[tokio::test]
async fn bad_prices_are_refused_naming_the_field() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    api.make_platform_admin(operator.id).await;
    let before = api.count("SELECT count(*) FROM model_prices").await;
    let cases = [
        (
            json!({"provider": "openai", "model": "m", "input_micros_per_mtok": -1,
                   "output_micros_per_mtok": 1}),
            "input_micros_per_mtok",
        ),
        (
            json!({"provider": "acme-ai", "model": "m", "input_micros_per_mtok": 1,
                   "output_micros_per_mtok": 1}),
            "provider",
        ),
        (
            json!({"provider": "openai", "model": "m", "input_micros_per_mtok": 1,
                   "output_micros_per_mtok": 1, "currency": "EUR"}),
            "currency",
        ),
        (
            json!({"provider": "openai", "model": "m", "input_micros_per_mtok": 1,
                   "output_micros_per_mtok": 1, "unit": "per_1k_tokens"}),
            "unit",
        ),
        (
            json!({"provider": "openai", "model": "m", "input_micros_per_mtok": 1,
                   "output_micros_per_mtok": 1, "effective_from": "2020-01-01T00:00:00Z"}),
            "effective_from",
        ),
        (
            json!({"provider": "openai", "model": "m", "input_micros_per_mtok": 1,
                   "output_micros_per_mtok": 1, "effective_from": "next tuesday"}),
            "effective_from",
        ),
    ];
    for (body, field) in cases {
        let refused = api
            .post("/api/v1/admin/prices", &operator.token, body.clone())
            .await;
        assert_eq!(refused.status.as_u16(), 422, "{body}: {}", refused.body);
        assert_eq!(
            refused.headers["content-type"], "application/problem+json",
            "{body}"
        );
        assert_eq!(invalid_fields(&refused.body), [field], "{}", refused.body);
    }
    assert_eq!(api.count("SELECT count(*) FROM model_prices").await, before);
}

/// Whatever the caller, the application role cannot date a price in the past: the table's
/// policy refuses it, so no code path can reprice calls already made.
#[tokio::test]
async fn the_application_role_cannot_backdate_a_price() {
    let api = Api::new().await;
    let app = api.db.app_pool().await;
    let mut tx = app.begin_global().await.unwrap();
    let backdated = sqlx::query(
        "INSERT INTO model_prices (provider, model, effective_from, input_micros_per_mtok,
                                   cached_input_micros_per_mtok, output_micros_per_mtok)
         VALUES ('openai', 'gpt-4o', now() - interval '1 day', 1, 1, 1)",
    )
    .execute(&mut *tx)
    .await;
    let refused = backdated.unwrap_err().to_string();
    assert!(refused.contains("row-level security"), "{refused}");
    drop(tx);
    // Neither can it change or remove a price.
    let mut tx = app.begin_global().await.unwrap();
    let changed = sqlx::query("UPDATE model_prices SET input_micros_per_mtok = 0")
        .execute(&mut *tx)
        .await;
    assert!(changed.is_err());
    drop(tx);
    let mut tx = app.begin_global().await.unwrap();
    let removed = sqlx::query("DELETE FROM model_prices")
        .execute(&mut *tx)
        .await;
    assert!(removed.is_err());
}

#[tokio::test]
async fn graphql_reads_the_price_book_for_platform_admins_only() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    let query = r#"{ prices(provider: "anthropic") { provider model effectiveFrom
                     inputMicrosPerMtok cachedInputMicrosPerMtok outputMicrosPerMtok status } }"#;
    let refused = graphql(&api, &operator.token, query).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    api.make_platform_admin(operator.id).await;
    let read = graphql(&api, &operator.token, query).await;
    let prices = read["data"]["prices"].as_array().unwrap();
    assert!(
        prices
            .iter()
            .any(|p| p["model"] == "claude-sonnet-4" && p["outputMicrosPerMtok"] == 15_000_000),
        "{read}"
    );
    assert!(
        prices.iter().all(|p| p["provider"] == "anthropic"),
        "{read}"
    );
}
