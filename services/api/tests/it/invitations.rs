//! Invitations, written as the attacks of issue #20 ("an unverified address can be handed a
//! tenant"): someone signs up with `new.hire@victim.example` before the real person is invited.
//! Inviting attaches nobody; only a signed-in account whose address is verified and is the
//! invited one can accept, once, before the link expires.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Api, PASSWORD, User};

const SQUATTED: &str = "new.hire@victim.example";

/// Signs up `email` (no tenant) and signs in; the address is not verified.
async fn sign_up(api: &Api, email: &str, display_name: &str) -> User {
    api.public(
        "/api/v1/auth/signup",
        json!({"email": email, "password": PASSWORD, "display_name": display_name}),
    )
    .await
    .expect(201);
    api.sign_in(email).await
}

/// Follows the verification e-mail sent to `email` (waiting for it: mail goes out in the
/// background).
async fn verify(api: &Api, email: &str) {
    let mut mail = None;
    for _ in 0..200 {
        mail = api
            .smtp
            .to(email)
            .into_iter()
            .find(|m| m.subject().contains("Confirm"));
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mail = mail.expect("a verification e-mail within 10 s");
    api.public("/api/v1/auth/email/verify", json!({"token": mail.token()}))
        .await
        .expect(204);
}

/// Once `email` has received `count` messages, the last whose subject contains `subject`
/// (messages go out in the background, so two sent close together may arrive in either order).
async fn mail_to(api: &Api, email: &str, count: usize, subject: &str) -> sb_testkit::Mail {
    api.smtp.wait_for(email, count).await;
    api.smtp
        .to(email)
        .into_iter()
        .rev()
        .find(|m| m.subject().contains(subject))
        .unwrap_or_else(|| panic!("no e-mail to {email} about {subject:?}"))
}

/// The token of the last invitation to `email`, once it has received `count` messages.
async fn invitation_token(api: &Api, email: &str, count: usize) -> String {
    mail_to(api, email, count, "invited").await.token()
}

async fn invite(api: &Api, tenant: Uuid, by: &User, email: &str, role: &str) -> Value {
    api.post(
        &format!("/api/v1/tenants/{tenant}/invitations"),
        &by.token,
        json!({"email": email, "role": role}),
    )
    .await
    .expect(201)
}

async fn accept(api: &Api, user: &User, token: &str) -> crate::support::Answer {
    api.post(
        "/api/v1/invitations/accept",
        &user.token,
        json!({"token": token}),
    )
    .await
}

/// What `user` can see of `tenant`: their memberships, and whether a tenant route answers.
async fn assert_not_member(api: &Api, user: &User, tenant: Uuid) {
    let me = api.get("/api/v1/me", &user.token).await.expect(200);
    assert_eq!(me["memberships"], json!([]), "became a member: {me}");
    let seen = api
        .get(&format!("/api/v1/tenants/{tenant}/workspaces"), &user.token)
        .await;
    assert_eq!(seen.status.as_u16(), 404, "{}", seen.body);
    let rows = api
        .count(&format!(
            "SELECT count(*) FROM memberships WHERE tenant_id = '{tenant}' AND user_id = '{}'",
            user.id
        ))
        .await;
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_squatter_who_signed_up_first_is_not_attached_by_an_invitation() {
    let api = Api::new().await;
    let (owner, t) = api.owner("owner@victim.example", "victim").await;
    // The attacker signs up with the address the victim is about to invite.
    let squatter = sign_up(&api, SQUATTED, "Mallory").await;

    let invited = invite(&api, t, &owner, SQUATTED, "member").await;
    assert_eq!(invited["email"], SQUATTED);
    assert_not_member(&api, &squatter, t).await;

    // Even holding the link (say it leaked), an unverified account cannot accept it.
    let token = invitation_token(&api, SQUATTED, 2).await;
    let refused = accept(&api, &squatter, &token).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (403, "email_unverified")
    );
    assert_not_member(&api, &squatter, t).await;

    // The real person proves the mailbox by resetting the password (which ends the squatter's
    // sessions and verifies the address), then accepts.
    api.public("/api/v1/auth/password/forgot", json!({"email": SQUATTED}))
        .await
        .expect(202);
    let reset = mail_to(&api, SQUATTED, 3, "Reset").await;
    api.public(
        "/api/v1/auth/password/reset",
        json!({"token": reset.token(), "password": "the real new hire's passphrase"}),
    )
    .await
    .expect(204);
    let session = api
        .login(SQUATTED, "the real new hire's passphrase")
        .await
        .expect(200);
    let hire = User {
        id: squatter.id,
        token: session["access_token"].as_str().unwrap().to_owned(),
        refresh: String::new(),
    };
    let joined = accept(&api, &hire, &token).await.expect(200);
    assert_eq!(joined["tenant_id"], t.to_string());
    assert_eq!(joined["role"], "member");
    api.get(&format!("/api/v1/tenants/{t}/workspaces"), &hire.token)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_platform_tenants_owner_is_invited_not_attached() {
    let api = Api::new().await;
    let (operator, _) = api.owner("ops@example.com", "ops").await;
    api.make_platform_admin(operator.id).await;
    let squatter = sign_up(&api, "boss@globex.example", "Mallory").await;

    let created = api
        .post(
            "/api/v1/admin/tenants",
            &operator.token,
            json!({"name": "Globex", "slug": "globex", "owner_email": "boss@globex.example"}),
        )
        .await
        .expect(201);
    let globex = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    assert_not_member(&api, &squatter, globex).await;
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM memberships WHERE tenant_id = '{globex}'"
        ))
        .await,
        0,
        "the new tenant has no member until its owner accepts"
    );
    let token = invitation_token(&api, "boss@globex.example", 2).await;
    let refused = accept(&api, &squatter, &token).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (403, "email_unverified")
    );
    assert_not_member(&api, &squatter, globex).await;

    // Once the address is verified, the owner invitation makes an owner.
    verify(&api, "boss@globex.example").await;
    let joined = accept(&api, &squatter, &token).await.expect(200);
    assert_eq!(joined["role"], "owner");
}

#[tokio::test]
async fn only_the_invited_verified_account_accepts_and_only_once() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let ada = sign_up(&api, "ada@example.com", "Ada").await;
    verify(&api, "ada@example.com").await;
    let bob = sign_up(&api, "bob@example.com", "Bob").await;
    verify(&api, "bob@example.com").await;

    let invited = invite(&api, t, &owner, "ADA@example.com", "admin").await;
    let token = invitation_token(&api, "ada@example.com", 2).await;

    // Another verified account holding the link is refused.
    let wrong = accept(&api, &bob, &token).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.code()),
        (403, "wrong_account")
    );
    assert_not_member(&api, &bob, t).await;
    // A made-up token, or one naming no tenant, is just invalid.
    for bad in [
        "nope".to_owned(),
        format!("{}.{}", t.simple(), "A".repeat(43)),
    ] {
        let res = accept(&api, &ada, &bad).await;
        assert_eq!((res.status.as_u16(), res.code()), (400, "invalid_link"));
    }

    let joined = accept(&api, &ada, &token).await.expect(200);
    assert_eq!(joined["role"], "admin");
    assert_eq!(joined["tenant_slug"], "acme");
    // The link works once.
    let reuse = accept(&api, &ada, &token).await;
    assert_eq!((reuse.status.as_u16(), reuse.code()), (400, "invalid_link"));
    let again = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "ada@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "already_member")
    );
    let pending = api
        .get(&format!("/api/v1/tenants/{t}/invitations"), &owner.token)
        .await
        .expect(200);
    assert_eq!(pending, json!([]));

    let log = api
        .get(&format!("/api/v1/tenants/{t}/audit-log"), &owner.token)
        .await
        .expect(200);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"invitation.create"), "{actions:?}");
    assert!(actions.contains(&"invitation.accept"), "{actions:?}");
    let accepted = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "invitation.accept")
        .unwrap();
    assert_eq!(accepted["actor_user_id"], ada.id.to_string());
    assert_eq!(accepted["target_id"], invited["id"]);
}

#[tokio::test]
async fn expired_replaced_and_withdrawn_links_are_refused() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    let carol = sign_up(&api, "carol@example.com", "Carol").await;
    verify(&api, "carol@example.com").await;
    let base = format!("/api/v1/tenants/{t}/invitations");

    invite(&api, t, &owner, "carol@example.com", "member").await;
    let first = invitation_token(&api, "carol@example.com", 2).await;
    let mut db = api.db.owner().await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second'")
        .execute(&mut db)
        .await
        .unwrap();
    let expired = accept(&api, &carol, &first).await;
    assert_eq!(
        (expired.status.as_u16(), expired.code()),
        (400, "link_expired")
    );

    // Inviting again sends a new link; the old one is dead.
    let second = invite(&api, t, &owner, "carol@example.com", "viewer").await;
    let fresh = invitation_token(&api, "carol@example.com", 3).await;
    assert_ne!(first, fresh);
    let old = accept(&api, &carol, &first).await;
    assert_eq!((old.status.as_u16(), old.code()), (400, "invalid_link"));
    let listed = api.get(&base, &owner.token).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["role"], "viewer");

    // Admins invite and withdraw, but not owners.
    let admin = api
        .member(t, sb_kernel::Role::Admin, "admin@example.com")
        .await;
    let owner_invite = api
        .post(
            &base,
            &admin.token,
            json!({"email": "boss@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(owner_invite.status.as_u16(), 403);

    api.delete(
        &format!("{base}/{}", second["id"].as_str().unwrap()),
        &admin.token,
    )
    .await
    .expect(204);
    let withdrawn = accept(&api, &carol, &fresh).await;
    assert_eq!(
        (withdrawn.status.as_u16(), withdrawn.code()),
        (400, "invalid_link")
    );
    assert_not_member(&api, &carol, t).await;
    assert_eq!(api.get(&base, &owner.token).await.expect(200), json!([]));
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM audit_log WHERE tenant_id = '{t}' AND action = 'invitation.revoke'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn the_invite_answer_is_the_same_for_an_existing_and_an_unknown_address() {
    let api = Api::new().await;
    let (owner, t) = api.owner("o@example.com", "acme").await;
    sign_up(&api, "known@example.com", "Known Person").await;
    let users_before = api.count("SELECT count(*) FROM users").await;

    let known = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "known@example.com", "role": "member"}),
        )
        .await;
    let unknown = api
        .post(
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "unknown@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(known.status, unknown.status);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&known.body), keys(&unknown.body));
    assert_eq!(known.body["invited_by"], unknown.body["invited_by"]);
    assert!(
        !known.body.to_string().contains("Known Person"),
        "the display name leaked: {}",
        known.body
    );
    // Inviting makes no account either.
    assert_eq!(api.count("SELECT count(*) FROM users").await, users_before);

    // Both get the same e-mail, but for the address and the link.
    let to_known = mail_to(&api, "known@example.com", 2, "invited").await;
    let to_unknown = api.smtp.wait_for("unknown@example.com", 1).await;
    assert_eq!(to_known.subject(), to_unknown.subject());
    let strip = |mail: &sb_testkit::Mail, address: &str| {
        mail.text()
            .replace(&mail.token(), "TOKEN")
            .replace(address, "ADDRESS")
    };
    assert_eq!(
        strip(&to_known, "known@example.com"),
        strip(&to_unknown, "unknown@example.com")
    );
}
