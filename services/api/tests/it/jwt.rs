//! Access tokens that must be refused: each with 401, through the real HTTP stack.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::Api;

fn sign(claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload)
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_refused() {
    let api = Api::new().await;
    let (user, _) = api.owner("eve@example.com", "eve").await;
    let (other, _) = api.owner("bob@example.com", "bob").await;
    let secret = api
        .config
        .secrets
        .jwt_secret
        .expose_secret()
        .as_bytes()
        .to_vec();
    api.get("/api/v1/me", &user.token).await.expect(200);
    let (_, claims) = parts(&user.token);
    let now = chrono::Utc::now().timestamp();

    let mut cases: Vec<(&str, String)> = Vec::new();
    // alg: none, no signature.
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(&claims).unwrap());
    cases.push(("alg none", format!("{none_header}.{payload}.")));
    // A key other than JWT_SECRET.
    cases.push((
        "wrong key",
        sign(
            &claims,
            Algorithm::HS256,
            b"another-secret-another-secret-!!",
        ),
    ));
    // The right key, another algorithm: the algorithm is pinned.
    cases.push(("HS512", sign(&claims, Algorithm::HS512, &secret)));
    // The right key, a password reset token's audience.
    let mut aud = claims.clone();
    aud["aud"] = json!("switchboard-password-reset");
    cases.push(("wrong audience", sign(&aud, Algorithm::HS256, &secret)));
    let mut iss = claims.clone();
    iss["iss"] = json!("someone-else");
    cases.push(("wrong issuer", sign(&iss, Algorithm::HS256, &secret)));
    // Expired a minute ago (past the 5 s leeway).
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 60);
    cases.push(("expired", sign(&expired, Algorithm::HS256, &secret)));
    // The payload changed to another user, the signature kept.
    let mut tampered = claims.clone();
    tampered["sub"] = json!(other.id);
    let sig = user.token.rsplit('.').next().unwrap();
    let head = user.token.split('.').next().unwrap();
    cases.push((
        "tampered payload",
        format!(
            "{head}.{}.{sig}",
            B64.encode(serde_json::to_vec(&tampered).unwrap())
        ),
    ));
    // Without exp.
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp", sign(&no_exp, Algorithm::HS256, &secret)));
    cases.push(("garbage", "not.a.token".to_owned()));

    for (name, token) in &cases {
        let res = api.get("/api/v1/me", token).await;
        assert_eq!(res.status.as_u16(), 401, "{name}: {}", res.body);
        assert_eq!(
            res.headers["content-type"], "application/problem+json",
            "{name}"
        );
    }
    let expired = api.get("/api/v1/me", &cases[5].1).await;
    assert_eq!(expired.code(), "token_expired");

    // No token, and a token in the wrong scheme.
    let none = api
        .call(reqwest::Method::GET, "/api/v1/me", None, None)
        .await;
    assert_eq!(
        (none.status.as_u16(), none.code()),
        (401, "unauthenticated")
    );
    let basic = api
        .http
        .get(api.url("/api/v1/me"))
        .header("authorization", format!("Basic {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);

    // A revoked jti (logout) and a reused refresh token.
    api.post("/api/v1/auth/logout", &user.token, json!({}))
        .await
        .expect(204);
    assert_eq!(
        api.get("/api/v1/me", &user.token).await.status.as_u16(),
        401
    );
    api.public(
        "/api/v1/auth/refresh",
        json!({"refresh_token": other.refresh}),
    )
    .await
    .expect(200);
    let reused = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": other.refresh}),
        )
        .await;
    assert_eq!(
        (reused.status.as_u16(), reused.code()),
        (401, "refresh_token_reused")
    );
    // The reuse ends the session: its access token is refused at once, not when it expires
    // (auth::a_reused_refresh_token_ends_the_familys_access_tokens_at_once).
    let ended = api.get("/api/v1/me", &other.token).await;
    assert_eq!(
        (ended.status.as_u16(), ended.code()),
        (401, "token_revoked")
    );
}
