//! `/api/v1/auth/*`: signup, login, refresh, logout, TOTP, password reset, e-mail verification.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::{
    self, ConfirmPassword, EmailRequest, LoginRequest, LogoutRequest, RefreshRequest, ResetRequest,
    SignupRequest, SignupResponse, TokenRequest, TotpCode, TotpEnrollment,
};
use crate::core::audit::{Actor, RequestMeta};
use crate::core::sessions;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Session};
use crate::state::ApiState;

type Created<T> = (StatusCode, axum::Json<T>);

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(totp_enroll))
        .routes(routes!(totp_verify))
        .routes(routes!(password_forgot))
        .routes(routes!(password_reset))
        .routes(routes!(email_verify))
        .routes(routes!(email_resend))
}

/// Creates an account and, optionally, its first tenant with the new user as its owner. A
/// verification e-mail goes out. An address that already has an account gets the same answer
/// (nothing is created) and its owner an e-mail saying someone tried.
#[utoipa::path(post, path = "/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = SignupResponse),
              (status = 409, description = "`slug_taken`: another tenant has this slug", body = Problem),
              (status = 429, description = "Too many signups for this address, from this client or in all; `Retry-After` says when to try again", body = Problem)))]
async fn signup(
    State(state): State<ApiState>,
    meta: RequestMeta,
    Json(req): Json<SignupRequest>,
) -> ApiResult<Created<SignupResponse>> {
    state.limiter.signup(&req.email, &meta).await?;
    let created = accounts::signup(&state, Actor::anonymous(&meta), req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Signs in with e-mail and password (and `totp_code` when two-factor authentication is on).
/// Failed attempts are limited: 10 per 15 minutes per address from one client, 30 per client
/// across addresses (docs/security.md, "Account limits").
#[utoipa::path(post, path = "/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = sessions::Session),
              (status = 401, description = "`invalid_credentials`, `totp_required` or `totp_invalid`", body = Problem),
              (status = 429, description = "Too many attempts; `Retry-After` says when to try again", body = Problem)))]
async fn login(
    State(state): State<ApiState>,
    meta: RequestMeta,
    Json(req): Json<LoginRequest>,
) -> ApiResult<axum::Json<sessions::Session>> {
    Ok(axum::Json(
        accounts::login(&state, Actor::anonymous(&meta), req).await?,
    ))
}

/// Exchanges a refresh token for a new access token and a new refresh token. A refresh token
/// works once: presenting it again ends every session of that login.
#[utoipa::path(post, path = "/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = sessions::Session),
              (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = Problem)))]
async fn refresh(
    State(state): State<ApiState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<axum::Json<sessions::Session>> {
    Ok(axum::Json(
        accounts::refresh(&state, &req.refresh_token).await?,
    ))
}

/// Ends the session, with or without a body: its refresh token is revoked and its access
/// tokens are refused from now on. A refresh token in the body has its login revoked too.
#[utoipa::path(post, path = "/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    responses((status = 204, description = "Signed out")))]
async fn logout(
    State(state): State<ApiState>,
    session: Session,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let req: LogoutRequest = if body.is_empty() {
        LogoutRequest::default()
    } else {
        crate::extract::decode(&body)?
    };
    accounts::logout(
        &state,
        session.actor(),
        &session.claims,
        req.refresh_token.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts two-factor enrolment (the password is asked again): returns a new TOTP secret. It takes effect once a code from it
/// is confirmed at `/totp/verify`.
#[utoipa::path(post, path = "/totp/enroll", tag = "auth", request_body = ConfirmPassword,
    responses((status = 200, body = TotpEnrollment),
              (status = 401, description = "`invalid_credentials`: the password is wrong", body = Problem),
              (status = 409, description = "Two-factor authentication is already on", body = Problem)))]
async fn totp_enroll(
    State(state): State<ApiState>,
    session: Session,
    Json(req): Json<ConfirmPassword>,
) -> ApiResult<axum::Json<TotpEnrollment>> {
    Ok(axum::Json(
        accounts::totp_enroll(&state, session.actor(), session.user, req.password).await?,
    ))
}

/// Confirms enrolment with a current code; from then on login asks for one. Limited to 5
/// attempts per 15 minutes.
#[utoipa::path(post, path = "/totp/verify", tag = "auth", request_body = TotpCode,
    responses((status = 204, description = "Two-factor authentication is on"),
              (status = 401, description = "`totp_invalid`", body = Problem),
              (status = 429, description = "Too many attempts", body = Problem)))]
async fn totp_verify(
    State(state): State<ApiState>,
    session: Session,
    Json(req): Json<TotpCode>,
) -> ApiResult<StatusCode> {
    accounts::totp_verify(&state, session.actor(), session.user, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a password reset link if the address has an account. The answer is the same either
/// way. Limited to 3 per hour per address.
#[utoipa::path(post, path = "/password/forgot", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "If the address has an account, a link is on its way"),
              (status = 429, description = "Too many requests", body = Problem)))]
async fn password_forgot(
    State(state): State<ApiState>,
    meta: RequestMeta,
    Json(req): Json<EmailRequest>,
) -> ApiResult<StatusCode> {
    accounts::forgot_password(&state, &meta, &req.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with the token from a reset link; every session of the account ends.
#[utoipa::path(post, path = "/password/reset", tag = "auth", request_body = ResetRequest,
    responses((status = 204, description = "The password is changed"),
              (status = 400, description = "`invalid_link` or `link_expired`", body = Problem)))]
async fn password_reset(
    State(state): State<ApiState>,
    meta: RequestMeta,
    Json(req): Json<ResetRequest>,
) -> ApiResult<StatusCode> {
    accounts::reset_password(&state, Actor::anonymous(&meta), req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the e-mail address with the token from the verification e-mail.
#[utoipa::path(post, path = "/email/verify", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "The address is verified"),
              (status = 400, description = "`invalid_link` or `link_expired`", body = Problem)))]
async fn email_verify(
    State(state): State<ApiState>,
    meta: RequestMeta,
    Json(req): Json<TokenRequest>,
) -> ApiResult<StatusCode> {
    accounts::verify_email(&state, Actor::anonymous(&meta), &req.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the verification e-mail again. Limited to 3 per 5 minutes.
#[utoipa::path(post, path = "/email/resend", tag = "auth",
    responses((status = 202, description = "The e-mail is on its way"),
              (status = 409, description = "`already_verified`", body = Problem),
              (status = 429, description = "Too many requests", body = Problem)))]
async fn email_resend(State(state): State<ApiState>, session: Session) -> ApiResult<StatusCode> {
    accounts::resend_verification(&state, &session.meta, session.user).await?;
    Ok(StatusCode::ACCEPTED)
}
