//! The OpenAPI 3.1 document, generated from the handlers' annotations and completed here with
//! what every operation shares (so it is written once): the bearer security scheme, the
//! `{…}` path parameters, the error responses, and the health and metrics routes that the
//! shared HTTP crate serves. `/docs` is Swagger UI from the crate's vendored files: it works
//! offline.

use serde_json::{Value, json};
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{FieldError, Problem};

/// Operations anyone may call; everything else needs a bearer token.
const PUBLIC: &[&str] = &[
    "/openapi.json",
    "/docs",
    "/api/v1/auth/signup",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/password/forgot",
    "/api/v1/auth/password/reset",
    "/api/v1/auth/email/verify",
    "/health",
    "/health/ready",
    "/health/detailed",
    "/metrics",
];

/// Operations under an account rate limit.
const LIMITED: &[&str] = &[
    "/api/v1/auth/login",
    "/api/v1/auth/totp/verify",
    "/api/v1/auth/password/forgot",
    "/api/v1/auth/email/resend",
];

pub fn swagger(doc: Value) -> axum::Router<crate::state::ApiState> {
    SwaggerUi::new("/docs")
        .external_url_unchecked("/openapi.json", doc)
        // No badge from validator.swagger.io: the page must not reach outside (and the CSP
        // would block it anyway).
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none"))
        .into()
}

/// Completes the generated document.
pub fn complete(api: OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    doc["info"] = json!({
        "title": "Switchboard API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Accounts, tenants, keys, provider credentials, budgets, usage and audit. \
            Errors are application/problem+json with a stable `code`. Sign in at \
            /api/v1/auth/login and send the access token as `Authorization: Bearer <token>`.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    let schemas = &mut doc["components"]["schemas"];
    if !schemas.is_object() {
        *schemas = json!({});
    }
    schemas["Problem"] = schema_of::<Problem>();
    schemas["FieldError"] = schema_of::<FieldError>();
    // Referenced from query parameters, which do not register their schemas.
    schemas["GroupBy"] = schema_of::<crate::core::usage::GroupBy>();
    doc["components"]["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    });
    add_health(&mut doc);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    complete_operation(path, method, op);
                }
            }
        }
    }
    doc
}

fn schema_of<T: utoipa::PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_default()
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn complete_operation(path: &str, method: &str, op: &mut Value) {
    // Handlers are named for what they do within their module (`list`, `create`); the tag
    // makes the operation id unique (`budgets_list`).
    if let (Some(tag), Some(id)) = (op["tags"][0].as_str(), op["operationId"].as_str()) {
        op["operationId"] = json!(format!("{}_{id}", tag.replace('-', "_")));
    }
    let public = PUBLIC.contains(&path);
    if !public {
        op["security"] = json!([{"bearer": []}]);
    }
    // Declare every path parameter the template names.
    let mut params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
    for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
        let declared = params
            .iter()
            .any(|p| p["name"] == name && p["in"] == "path");
        if !declared {
            params.push(json!({
                "name": name, "in": "path", "required": true,
                "schema": {"type": "string", "format": "uuid"}
            }));
        }
    }
    let has_query = params.iter().any(|p| p["in"] == "query");
    // Text in the path (not an id) is checked like a query (a NUL is a 422: `crate::nul`).
    let has_text_path = params
        .iter()
        .any(|p| p["in"] == "path" && p["schema"]["format"] != "uuid");
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    let has_body = op.get("requestBody").is_some();
    let responses = &mut op["responses"];
    // A response the handler described by its body only gets its status's reason phrase.
    if let Some(all) = responses.as_object_mut() {
        for (status, response) in all.iter_mut() {
            if response.get("description").is_none_or(|d| d == "") {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Response");
                response["description"] = json!(reason);
            }
        }
    }
    let mut add = |status: &str, description: &str| {
        if responses.get(status).is_none() {
            responses[status] = problem(description);
        }
    };
    if has_body {
        add("400", "`malformed_json`: the body is not JSON");
        add("413", "`body_too_large`");
        add(
            "415",
            "`unsupported_media_type`: send `Content-Type: application/json`",
        );
    }
    if has_body || has_query || has_text_path || method != "get" {
        add(
            "422",
            "`validation_failed`: `errors` names each offending field",
        );
    }
    if !public {
        add(
            "401",
            "`unauthenticated`, `invalid_token`, `token_expired` or `token_revoked`",
        );
        add(
            "403",
            "`forbidden`: the role is too low (or `tenant_suspended` on a change)",
        );
    }
    if path.contains('{') || !public {
        add(
            "404",
            "`not_found`: no such resource, or it belongs to another tenant",
        );
    }
    if LIMITED.contains(&path) {
        add(
            "429",
            "`rate_limited`: `Retry-After` says when to try again",
        );
    }
    add(
        "500",
        "`internal_error`: the request id identifies it in the logs",
    );
}

/// The routes that are not utoipa handlers, documented here: the shared health and metrics
/// routes, this document and its page, and GraphQL.
fn add_health(doc: &mut Value) {
    let text = |description: &str, content: &str| json!({"description": description, "content": {content: {"schema": {"type": "string"}}}});
    let object = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}});
    let op = |summary: &str, responses: Value| json!({"get": {"tags": ["health"], "summary": summary, "responses": responses}});
    let paths = &mut doc["paths"];
    paths["/health"] = op(
        "Liveness: the process answers (no I/O)",
        json!({"200": object("alive")}),
    );
    paths["/health/ready"] = op(
        "Readiness: 503 while shutting down or when Postgres or Redis is unreachable",
        json!({"200": object("ready"), "503": object("not ready")}),
    );
    paths["/health/detailed"] = op(
        "Postgres and Redis status with latency, pool use, version and uptime",
        json!({"200": object("all dependencies up"), "503": object("a dependency is down")}),
    );
    paths["/metrics"] = op(
        "Prometheus metrics",
        json!({"200": text("metrics in the Prometheus text format", "text/plain")}),
    );
    paths["/openapi.json"] = op(
        "This document",
        json!({"200": object("the OpenAPI 3.1 document")}),
    );
    paths["/docs"] = op(
        "Interactive documentation of this document (Swagger UI, served locally)",
        json!({"200": text("an HTML page", "text/html")}),
    );
    paths["/graphql"] = json!({"post": {
        "tags": ["graphql"],
        "summary": "GraphQL: the dashboard's reads (me, tenants and their workspaces, members, keys, credentials, budgets, usage, agents, runs, approvals, audit log)",
        "security": [{"bearer": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["query"],
            "properties": {"query": {"type": "string"}, "variables": {"type": "object"}, "operationName": {"type": "string"}}
        }}}},
        "responses": {
            "200": object("a GraphQL response: `data`, and `errors` whose `extensions.code` is NOT_FOUND, FORBIDDEN, UNAUTHENTICATED, …"),
            "401": problem("the bearer token is present but not valid"),
        }
    }});
}
