//! HTTP hardening: security headers on every answer, CORS only for the configured origins and
//! never with credentials, problem+json for unknown routes and methods; and the attacks on
//! the account limits, the client address and the request id.

use serde_json::json;

use crate::support::{Api, PASSWORD};

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let api = Api::new().await;
    for path in [
        "/api/v1/me",
        "/openapi.json",
        "/docs/",
        "/health",
        "/nowhere",
    ] {
        let res = api.http.get(api.url(path)).send().await.unwrap();
        let h = res.headers();
        for name in [
            "strict-transport-security",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "permissions-policy",
            "content-security-policy",
        ] {
            assert!(h.contains_key(name), "{path} lacks {name}");
        }
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
    let unknown = api.http.get(api.url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    let wrong = api.http.put(api.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 405);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn cors_admits_the_configured_origins_only() {
    let api = Api::with(|c| c.cors_origins = vec!["https://dash.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        api.http
            .request(reqwest::Method::OPTIONS, api.url("/api/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        !allowed
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn graphql_bodies_are_json_and_limited_like_rest() {
    let api = Api::with(|c| c.api.max_body_bytes = 4096).await;
    let (owner, _) = api.owner("o@example.com", "acme").await;
    let huge =
        serde_json::json!({"query": format!("{{ me {{ email }} }} #{}", "x".repeat(10_000))});
    let res = api.post("/graphql", &owner.token, huge).await;
    assert_eq!((res.status.as_u16(), res.code()), (413, "body_too_large"));
    let multipart = api
        .http
        .post(api.url("/graphql"))
        .bearer_auth(&owner.token)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status().as_u16(), 415);
}

/// A client that sends headers and then trickles (or never finishes) its body must not hold a
/// database connection: with a pool of two, five stalled uploads leave the api answering.
#[tokio::test]
async fn stalled_uploads_hold_no_database_connection() {
    use tokio::io::AsyncWriteExt;
    let api = Api::with(|c| {
        c.database.max_connections = 2;
        c.database.acquire_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let mut stalled = Vec::new();
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(api.app.addr).await.unwrap();
        let head = format!(
            "POST /api/v1/tenants/{t}/workspaces HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\":",
            owner.token
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        stalled.push(tcp);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // With the connections held, this would wait out the pool's 2 s and answer 503.
    api.get(&format!("/api/v1/tenants/{t}/workspaces"), &owner.token)
        .await
        .expect(200);
    drop(stalled);
}

/// The attack: a burst of anonymous logins, each an Argon2id hash of 19 MiB and tens of
/// milliseconds. Past `PASSWORD_HASH_CONCURRENCY` hashes at once the api answers 503 with
/// `Retry-After` instead of taking more memory and CPU; the rest are answered as usual.
#[tokio::test]
async fn password_hashing_past_its_bound_is_answered_503_with_retry_after() {
    let api = Api::with(|c| c.api.password_hash_concurrency = 1).await;
    let attempts = (0..30).map(|i| {
        api.http
            .post(api.url("/api/v1/auth/login"))
            .json(&serde_json::json!({
                "email": format!("nobody{i}@example.test"),
                "password": "not the password at all",
            }))
            .send()
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut refused = 0;
    let mut busy = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            401 => refused += 1,
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let problem: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(problem["code"], "busy", "{problem}");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 1, "some logins were checked");
    assert!(busy >= 1, "30 logins at once never met the bound of 1");
}

/// An api behind a trusted proxy on 127.0.0.1, so that a test can speak as many clients
/// (each request's `X-Forwarded-For`).
async fn behind_a_proxy() -> Api {
    Api::with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await
}

/// A login as `email` from the client `ip` (through the trusted proxy).
async fn login_from(api: &Api, ip: &str, email: &str, password: &str) -> reqwest::Response {
    api.http
        .post(api.url("/api/v1/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// The attack: someone types wrong passwords for a victim until the limit stops them. It
/// stops *them*: the victim, from another address, still signs in.
#[tokio::test]
async fn guessing_a_victims_password_does_not_lock_the_victim_out() {
    let api = behind_a_proxy().await;
    api.owner("victim@example.com", "victim").await;
    let mut refused = 0;
    for _ in 0..15 {
        let res = login_from(&api, "203.0.113.7", "victim@example.com", "guess").await;
        match res.status().as_u16() {
            401 => refused += 1,
            429 => {
                assert!(res.headers().contains_key("retry-after"));
                assert_eq!(res.headers()["content-type"], "application/problem+json");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 10, "10 failures per address and client, then 429");
    // The guesser is stopped even with the right password...
    let guesser = login_from(&api, "203.0.113.7", "victim@example.com", PASSWORD).await;
    assert_eq!(guesser.status().as_u16(), 429);
    // ...and the victim is not.
    let victim = login_from(&api, "198.51.100.9", "victim@example.com", PASSWORD).await;
    assert_eq!(victim.status().as_u16(), 200);
}

/// The attack: one wrong password tried on each of 50 accounts from one address. The
/// per-address limits never trigger; the per-client one does. Someone who has signed in from
/// that address before (an office behind one NAT) still gets in.
#[tokio::test]
async fn password_spraying_across_50_accounts_from_one_address_is_cut_off() {
    let api = Api::new().await;
    api.owner("colleague@example.com", "office").await;
    let hash = sb_auth::password::hash(PASSWORD).unwrap();
    let mut owner = api.db.owner().await;
    for n in 0..50 {
        sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)")
            .bind(uuid::Uuid::now_v7())
            .bind(format!("user{n}@example.com"))
            .bind(&hash)
            .execute(&mut owner)
            .await
            .unwrap();
    }
    let mut statuses = Vec::new();
    for n in 0..50 {
        let res = api
            .login(&format!("user{n}@example.com"), "Summer2026!")
            .await;
        statuses.push(res.status.as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((refused, limited), (30, 20), "{statuses:?}");
    // The sprayer's address is stopped before any password is checked, right or wrong.
    assert_eq!(
        api.login("user49@example.com", PASSWORD)
            .await
            .status
            .as_u16(),
        429
    );
    // A person who signed in from this address before is not.
    api.login("colleague@example.com", PASSWORD)
        .await
        .expect(200);
}

/// The attack: a client without a proxy in front writes its own `X-Forwarded-For`, a new
/// address each time, to escape the limit and to put someone else's address in the audit log.
#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let api = Api::new().await;
    api.owner("target@example.com", "target").await;
    for n in 0..10 {
        let res = login_from(&api, &format!("192.0.2.{n}"), "target@example.com", "guess").await;
        assert_eq!(res.status().as_u16(), 401);
    }
    let res = login_from(&api, "192.0.2.99", "target@example.com", "guess").await;
    assert_eq!(
        res.status().as_u16(),
        429,
        "a forged address escaped the limit"
    );
    api.owner("spoof@example.com", "spoof").await;
    login_from(&api, "192.0.2.200", "spoof@example.com", PASSWORD).await;
    assert_eq!(
        audit_ips(&api, "spoof@example.com").await,
        vec!["127.0.0.1".to_owned(), "127.0.0.1".to_owned()]
    );
}

/// From a trusted proxy, the client is the rightmost address that is not a proxy: what the
/// client itself wrote to the left of it is ignored.
#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_names_the_client() {
    let api = behind_a_proxy().await;
    api.owner("behind@example.com", "behind").await;
    let res = login_from(
        &api,
        "6.6.6.6, 203.0.113.50",
        "behind@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        audit_ips(&api, "behind@example.com").await,
        vec!["127.0.0.1".to_owned(), "203.0.113.50".to_owned()]
    );
}

/// The `ip` of the `auth.login` audit entries of `email`, oldest first.
async fn audit_ips(api: &Api, email: &str) -> Vec<String> {
    let mut owner = api.db.owner().await;
    sqlx::query_scalar(
        "SELECT host(a.ip) FROM audit_log a JOIN users u ON u.id::text = a.target_id
          WHERE a.action = 'auth.login' AND u.email = $1 ORDER BY a.created_at, a.id",
    )
    .bind(email)
    .fetch_all(&mut owner)
    .await
    .unwrap()
}

/// The attack: a request id of a kilobyte, or one that forges a log line, goes into every log
/// line and the audit log. Only short, plain ids are kept.
#[tokio::test]
async fn a_long_or_odd_request_id_is_replaced() {
    let api = Api::new().await;
    let echo = |id: String| {
        let api = &api;
        async move {
            let res = api
                .http
                .get(api.url("/health"))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            res.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(echo("req-42.a_B".into()).await, "req-42.a_B");
    let plain64 = "a".repeat(64);
    assert_eq!(echo(plain64.clone()).await, plain64);
    for odd in [
        "a".repeat(65),
        "x".repeat(4000),
        "abc\" level=error msg=forged".to_owned(),
        "a b".to_owned(),
        "ünïcode".to_owned(),
    ] {
        let answered = echo(odd.clone()).await;
        assert_ne!(answered, odd);
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{answered}");
    }
}

/// The attack on the api's own key check (socket.io, SSE): random keys from one client make
/// at most a bounded number of queries, then 429 without one.
#[tokio::test]
async fn a_flood_of_random_api_keys_is_cut_off() {
    use sb_auth::unknown_keys::FAILURES_PER_IP;
    let api = Api::new().await;
    let (_, tenant) = api.owner("keys@example.com", "keys").await;
    let run = uuid::Uuid::now_v7();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let key = sb_auth::api_key::generate().secret;
        let res = api
            .http
            .get(api.url(&format!("/api/v1/tenants/{tenant}/runs/{run}/events")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    let unknown = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (unknown, limited),
        (FAILURES_PER_IP as usize, 100 - FAILURES_PER_IP as usize),
        "{statuses:?}"
    );
}

/// Signup, password reset and invitations are limited per client too, not only per address.
#[tokio::test]
async fn signup_reset_and_invitations_are_limited_per_client() {
    let api = behind_a_proxy().await;
    let signup = |n: u32| {
        api.http
            .post(api.url("/api/v1/auth/signup"))
            .header("x-forwarded-for", "203.0.113.20")
            .json(&json!({"email": format!("new{n}@example.com"), "password": PASSWORD}))
            .send()
    };
    for n in 0..10 {
        assert_ne!(signup(n).await.unwrap().status().as_u16(), 429);
    }
    let limited = signup(10).await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let forgot = |n: u32| {
        api.http
            .post(api.url("/api/v1/auth/password/forgot"))
            .header("x-forwarded-for", "203.0.113.21")
            .json(&json!({"email": format!("someone{n}@example.com")}))
            .send()
    };
    for n in 0..10 {
        assert_eq!(forgot(n).await.unwrap().status().as_u16(), 202);
    }
    assert_eq!(forgot(10).await.unwrap().status().as_u16(), 429);
    // Invitations: five an hour to one address, whoever sends them.
    let (admin, tenant) = api.owner("inviter@example.com", "inviter").await;
    for _ in 0..5 {
        let res = api
            .post(
                &format!("/api/v1/tenants/{tenant}/invitations"),
                &admin.token,
                json!({"email": "invitee@example.com", "role": "member"}),
            )
            .await;
        assert_ne!(res.status.as_u16(), 429, "{}", res.body);
    }
    let res = api
        .post(
            &format!("/api/v1/tenants/{tenant}/invitations"),
            &admin.token,
            json!({"email": "invitee@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 429, "{}", res.body);
}
