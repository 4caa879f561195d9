//! Accounts and sessions: signup, e-mail verification, login, refresh rotation, logout, TOTP,
//! password reset, and the account rate limits shared through Redis.

use reqwest::Method;
use serde_json::json;
use totp_rs::{Builder, Secret};

use crate::support::{Api, PASSWORD};

#[tokio::test]
async fn signup_verify_login_refresh_and_logout() {
    let api = Api::new().await;
    let created = api
        .public(
            "/api/v1/auth/signup",
            json!({"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada",
                   "tenant": {"name": "Analytical Engines", "slug": "engines", "time_zone": "Europe/London"}}),
        )
        .await
        .expect(201);
    assert_eq!(created["user"]["email"], "Ada@Example.com");
    assert_eq!(created["user"]["email_verified"], false);
    assert_eq!(created["tenant"]["slug"], "engines");
    assert_eq!(created["tenant"]["time_zone"], "Europe/London");

    // The verification e-mail went out over SMTP; its link verifies the address.
    let mail = api.smtp.wait_for("Ada@Example.com", 1).await;
    assert!(mail.subject().contains("Confirm"), "{}", mail.subject());
    api.public("/api/v1/auth/email/verify", json!({"token": mail.token()}))
        .await
        .expect(204);
    let bad = api
        .public("/api/v1/auth/email/verify", json!({"token": "nope"}))
        .await;
    assert_eq!((bad.status.as_u16(), bad.code()), (400, "invalid_link"));

    // Wrong password and unknown address look the same.
    let wrong = api.login("ada@example.com", "not the password").await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (401, "invalid_credentials")
    );
    let unknown = api.login("nobody@example.com", PASSWORD).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.code()),
        (401, "invalid_credentials")
    );

    let user = api.sign_in("ada@example.com").await;
    let me = api.get("/api/v1/me", &user.token).await.expect(200);
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["memberships"][0]["role"], "owner");
    assert_eq!(me["memberships"][0]["tenant_slug"], "engines");

    // Refresh rotates; presenting the old token again ends the whole family.
    let rotated = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": user.refresh}),
        )
        .await
        .expect(200);
    let next = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(next, user.refresh);
    api.get("/api/v1/me", rotated["access_token"].as_str().unwrap())
        .await
        .expect(200);
    let reused = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": user.refresh}),
        )
        .await;
    assert_eq!(
        (reused.status.as_u16(), reused.code()),
        (401, "refresh_token_reused")
    );
    let after = api
        .public("/api/v1/auth/refresh", json!({"refresh_token": next}))
        .await;
    assert_eq!(after.status.as_u16(), 401, "the family is revoked");

    // Logout: the access token is refused from then on.
    let session = api.sign_in("ada@example.com").await;
    api.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&session.token),
        Some(json!({"refresh_token": session.refresh})),
    )
    .await
    .expect(204);
    let gone = api.get("/api/v1/me", &session.token).await;
    assert_eq!((gone.status.as_u16(), gone.code()), (401, "token_revoked"));
    let refresh = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": session.refresh}),
        )
        .await;
    assert_eq!(refresh.status.as_u16(), 401);

    // The signup and the logins are in the audit log.
    assert_eq!(
        api.count("SELECT count(*) FROM audit_log WHERE action = 'tenant.create'")
            .await,
        1
    );
    assert!(
        api.count(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND tenant_id IS NULL"
        )
        .await
            >= 2
    );
}

#[tokio::test]
async fn login_attempts_are_limited_across_instances() {
    let api = Api::new().await;
    api.owner("grace@example.com", "cobol").await;
    for _ in 0..10 {
        let a = api.login("grace@example.com", "wrong password!").await;
        assert_eq!(a.status.as_u16(), 401);
    }
    // After 10 failures (the signup's login, a success, does not count), the next attempt
    // from this client, on another instance sharing Redis, is refused with a retry time, even
    // with the right password.
    let other = api.second().await;
    let res = api
        .http
        .post(other.url("/api/v1/auth/login"))
        .json(&json!({"email": "GRACE@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another address is not affected.
    api.owner("linus@example.com", "kernel").await;
}

#[tokio::test]
async fn totp_enrolment_then_login_needs_a_fresh_code() {
    let api = Api::new().await;
    let (user, _) = api.owner("alan@example.com", "bletchley").await;
    // A stolen access token alone cannot enrol a second factor.
    let no_password = api
        .post(
            "/api/v1/auth/totp/enroll",
            &user.token,
            json!({"password": "guess"}),
        )
        .await;
    assert_eq!(
        (no_password.status.as_u16(), no_password.code()),
        (401, "invalid_credentials")
    );
    let enrolled = api
        .post(
            "/api/v1/auth/totp/enroll",
            &user.token,
            json!({"password": PASSWORD}),
        )
        .await
        .expect(200);
    let secret = enrolled["secret"].as_str().unwrap();
    assert!(
        enrolled["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Switchboard:alan%40example.com?secret=")
    );
    let totp = Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // Until verified, login needs no code.
    api.sign_in("alan@example.com").await;
    let wrong = api
        .post(
            "/api/v1/auth/totp/verify",
            &user.token,
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 401);
    api.post(
        "/api/v1/auth/totp/verify",
        &user.token,
        json!({"code": totp.generate(now).to_string()}),
    )
    .await
    .expect(204);
    // Enrolling again is refused; the secret stays.
    let again = api
        .post(
            "/api/v1/auth/totp/enroll",
            &user.token,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "totp_already_enabled")
    );

    let no_code = api.login("alan@example.com", PASSWORD).await;
    assert_eq!(
        (no_code.status.as_u16(), no_code.code()),
        (401, "totp_required")
    );
    let next = totp.generate(now + 30).to_string();
    let login = |code: String| {
        api.public(
            "/api/v1/auth/login",
            json!({"email": "alan@example.com", "password": PASSWORD, "totp_code": code}),
        )
    };
    // A code works once, even for two logins racing with it.
    let (a, b) = tokio::join!(login(next.clone()), login(next.clone()));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} {}", a.body, b.body);
    let replay = login(next).await;
    assert_eq!(
        (replay.status.as_u16(), replay.code()),
        (401, "totp_invalid")
    );
    // The secret is stored sealed, with its key id.
    assert_eq!(
        api.count("SELECT count(*) FROM users WHERE totp_key_id LIKE 'k1:%' AND octet_length(totp_secret_ciphertext) > 20")
            .await,
        1
    );
}

#[tokio::test]
async fn a_second_factor_is_limited_to_five_tries() {
    let api = Api::new().await;
    let (user, _) = api.owner("mary@example.com", "mary").await;
    api.post(
        "/api/v1/auth/totp/enroll",
        &user.token,
        json!({"password": PASSWORD}),
    )
    .await
    .expect(200);
    for _ in 0..5 {
        let a = api
            .post(
                "/api/v1/auth/totp/verify",
                &user.token,
                json!({"code": "000000"}),
            )
            .await;
        assert_eq!(a.status.as_u16(), 401);
    }
    let limited = api
        .post(
            "/api/v1/auth/totp/verify",
            &user.token,
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(limited.status.as_u16(), 429);
}

#[tokio::test]
async fn password_reset_by_mail_ends_every_session_and_works_once() {
    let api = Api::new().await;
    let (user, _) = api.owner("edsger@example.com", "dijkstra").await;

    // Unknown addresses get the same answer and no mail.
    api.public(
        "/api/v1/auth/password/forgot",
        json!({"email": "nobody@example.com"}),
    )
    .await
    .expect(202);
    api.public(
        "/api/v1/auth/password/forgot",
        json!({"email": "edsger@example.com"}),
    )
    .await
    .expect(202);
    // The signup's verification mail came first.
    let mail = api.smtp.wait_for("edsger@example.com", 2).await;
    assert!(mail.subject().contains("Reset"), "{}", mail.subject());
    let token = mail.token();

    let short = api
        .public(
            "/api/v1/auth/password/reset",
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(short.status.as_u16(), 422);
    assert_eq!(short.body["errors"][0]["field"], "password");

    let new_password = "an entirely new passphrase";
    api.public(
        "/api/v1/auth/password/reset",
        json!({"token": token, "password": new_password}),
    )
    .await
    .expect(204);
    // The link worked once; old sessions and the old password are gone.
    let reuse = api
        .public(
            "/api/v1/auth/password/reset",
            json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!((reuse.status.as_u16(), reuse.code()), (400, "invalid_link"));
    let old = api.get("/api/v1/me", &user.token).await;
    assert_eq!((old.status.as_u16(), old.code()), (401, "token_revoked"));
    let refresh = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": user.refresh}),
        )
        .await;
    assert_eq!(refresh.status.as_u16(), 401);
    assert_eq!(
        api.login("edsger@example.com", PASSWORD)
            .await
            .status
            .as_u16(),
        401
    );
    let fresh = api
        .login("edsger@example.com", new_password)
        .await
        .expect(200);
    api.get("/api/v1/me", fresh["access_token"].as_str().unwrap())
        .await
        .expect(200);

    // Three requests an hour per address.
    api.public(
        "/api/v1/auth/password/forgot",
        json!({"email": "edsger@example.com"}),
    )
    .await
    .expect(202);
    api.public(
        "/api/v1/auth/password/forgot",
        json!({"email": "edsger@example.com"}),
    )
    .await
    .expect(202);
    let limited = api
        .public(
            "/api/v1/auth/password/forgot",
            json!({"email": "edsger@example.com"}),
        )
        .await;
    assert_eq!(limited.status.as_u16(), 429);
}

#[tokio::test]
async fn verification_mail_can_be_resent_three_times_in_five_minutes() {
    let api = Api::new().await;
    let (user, _) = api.owner("barbara@example.com", "liskov").await;
    for n in 0..3 {
        api.post("/api/v1/auth/email/resend", &user.token, json!({}))
            .await
            .expect(202);
        api.smtp.wait_for("barbara@example.com", n + 2).await;
    }
    let limited = api
        .post("/api/v1/auth/email/resend", &user.token, json!({}))
        .await;
    assert_eq!(limited.status.as_u16(), 429);
    assert!(limited.headers.contains_key("retry-after"));

    // Once verified, resending is pointless and says so.
    let api2 = Api::new().await;
    let (u2, _) = api2.owner("ken@example.com", "unix").await;
    let mail = api2.smtp.wait_for("ken@example.com", 1).await;
    api2.public("/api/v1/auth/email/verify", json!({"token": mail.token()}))
        .await
        .expect(204);
    let done = api2
        .post("/api/v1/auth/email/resend", &u2.token, json!({}))
        .await;
    assert_eq!(
        (done.status.as_u16(), done.code()),
        (409, "already_verified")
    );
}

#[tokio::test]
async fn without_redis_login_limits_fall_back_to_memory() {
    // Redis unreachable (nothing listens on port 1): the limiter keeps counting in memory.
    let api = Api::with(|c| {
        c.redis.url = secrecy::SecretString::from("redis://127.0.0.1:1".to_owned());
    })
    .await;
    let created = api
        .public(
            "/api/v1/auth/signup",
            json!({"email": "solo@example.com", "password": PASSWORD}),
        )
        .await
        .expect(201);
    assert!(created["tenant"].is_null());
    for _ in 0..10 {
        let a = api.login("solo@example.com", "wrong password!").await;
        assert_eq!(a.status.as_u16(), 401);
    }
    let limited = api.login("solo@example.com", PASSWORD).await;
    assert_eq!(limited.status.as_u16(), 429, "{}", limited.body);
    // Authenticated calls need Redis for the revocation check: they fail closed, with 503.
    api.public(
        "/api/v1/auth/signup",
        json!({"email": "two@example.com", "password": PASSWORD}),
    )
    .await
    .expect(201);
    let session = api.login("two@example.com", PASSWORD).await.expect(200);
    let me = api
        .get("/api/v1/me", session["access_token"].as_str().unwrap())
        .await;
    assert_eq!((me.status.as_u16(), me.code()), (503, "unavailable"));
}

/// The shape of a JSON value: its keys, and the kind of each leaf.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Signup must not tell a stranger which addresses have accounts (issue #20): a taken address
/// is answered like a new one, nothing is created, and the address's owner is told by e-mail.
#[tokio::test]
async fn signup_with_a_taken_address_answers_like_a_new_one_and_tells_the_owner() {
    let api = Api::new().await;
    let signup = |email: &str, slug: &str| {
        json!({"email": email, "password": "another passphrase here", "display_name": "X",
               "tenant": {"name": slug, "slug": slug}})
    };
    let first = api
        .public(
            "/api/v1/auth/signup",
            json!({"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada",
                   "tenant": {"name": "Engines", "slug": "engines"}}),
        )
        .await
        .expect(201);
    let fresh = api
        .public("/api/v1/auth/signup", signup("fresh@example.com", "fresh"))
        .await
        .expect(201);

    let again = api
        .public("/api/v1/auth/signup", signup("ada@EXAMPLE.com", "other"))
        .await
        .expect(201);
    assert_eq!(shape(&again), shape(&fresh));
    assert_eq!(again["user"]["email"], "ada@EXAMPLE.com");
    assert_eq!(again["user"]["email_verified"], false);
    assert_eq!(again["tenant"]["slug"], "other");
    assert_ne!(again["user"]["id"], first["user"]["id"]);
    // Nothing was made: no account, no tenant; Ada's password is unchanged.
    assert_eq!(api.count("SELECT count(*) FROM users").await, 2);
    assert_eq!(api.count("SELECT count(*) FROM tenants").await, 2);
    api.login("ada@example.com", PASSWORD).await.expect(200);
    assert_eq!(
        api.login("ada@example.com", "another passphrase here")
            .await
            .status
            .as_u16(),
        401
    );
    // The tenant is checked as for a new account: a taken slug is refused all the same.
    let slug = api
        .public("/api/v1/auth/signup", signup("ada@example.com", "engines"))
        .await;
    assert_eq!((slug.status.as_u16(), slug.code()), (409, "slug_taken"));

    // Ada got her verification e-mail and one notice of the attempt, with no link in it.
    api.smtp.wait_for("Ada@Example.com", 2).await;
    let subjects: Vec<String> = api
        .smtp
        .to("Ada@Example.com")
        .iter()
        .map(|m| m.subject())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s.contains("Confirm")),
        "{subjects:?}"
    );
    let notice = api
        .smtp
        .to("Ada@Example.com")
        .into_iter()
        .find(|m| m.subject().contains("tried to sign up"))
        .expect("a notice of the attempt");
    assert!(!notice.text().contains("token="), "{}", notice.text());
    // The stranger's address (in another case) is Ada's: nothing went anywhere else.
    api.smtp.wait_for("fresh@example.com", 1).await;
    assert_eq!(
        api.smtp.all().len(),
        3,
        "Ada's two and the fresh account's one"
    );
}

/// A thief copies the victim's refresh token; the victim refreshes; the thief presents the old
/// token. The reuse ends the family, and every access token minted from it (the victim's new
/// one and the first) stops working at once, not when it expires. Other logins live on.
#[tokio::test]
async fn a_reused_refresh_token_ends_the_familys_access_tokens_at_once() {
    let api = Api::new().await;
    api.owner("victim@example.com", "victim").await;
    let victim = api.sign_in("victim@example.com").await;
    let elsewhere = api.sign_in("victim@example.com").await;
    let stolen = victim.refresh.clone();

    let rotated = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": victim.refresh}),
        )
        .await
        .expect(200);
    let minted = rotated["access_token"].as_str().unwrap();
    api.get("/api/v1/me", minted).await.expect(200);

    let reused = api
        .public("/api/v1/auth/refresh", json!({"refresh_token": stolen}))
        .await;
    assert_eq!(
        (reused.status.as_u16(), reused.code()),
        (401, "refresh_token_reused")
    );
    for token in [minted, victim.token.as_str()] {
        let refused = api.get("/api/v1/me", token).await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (401, "token_revoked"),
            "an access token of the reused family still works"
        );
    }
    let next = rotated["refresh_token"].as_str().unwrap();
    let after = api
        .public("/api/v1/auth/refresh", json!({"refresh_token": next}))
        .await;
    assert_eq!(after.status.as_u16(), 401);
    api.get("/api/v1/me", &elsewhere.token).await.expect(200);
}

/// Logout without a body (the dashboard's tab closing, a client that forgot the token) still
/// ends the refresh token: someone who copied it cannot go on refreshing.
#[tokio::test]
async fn logout_without_a_body_revokes_the_refresh_token() {
    let api = Api::new().await;
    api.owner("leaver@example.com", "leaver").await;
    let session = api.sign_in("leaver@example.com").await;
    let elsewhere = api.sign_in("leaver@example.com").await;
    api.call(
        Method::POST,
        "/api/v1/auth/logout",
        Some(&session.token),
        None,
    )
    .await
    .expect(204);
    let refresh = api
        .public(
            "/api/v1/auth/refresh",
            json!({"refresh_token": session.refresh}),
        )
        .await;
    assert_eq!(refresh.status.as_u16(), 401, "{:?}", refresh.body);
    let gone = api.get("/api/v1/me", &session.token).await;
    assert_eq!((gone.status.as_u16(), gone.code()), (401, "token_revoked"));
    api.get("/api/v1/me", &elsewhere.token).await.expect(200);
    api.public(
        "/api/v1/auth/refresh",
        json!({"refresh_token": elsewhere.refresh}),
    )
    .await
    .expect(200);
}
