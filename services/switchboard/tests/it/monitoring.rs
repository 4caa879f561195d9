//! The monitoring configuration (`infra/monitoring`) queries only metrics the services
//! export: every metric named in the alert rules and in the Grafana dashboards must show up on
//! the `/metrics` of the running services, so a renamed or removed metric fails here instead of
//! leaving an alert that can never fire or an empty panel.
//!
//! The metrics recorder only exports a metric once it is first touched, so the test makes the
//! platform do what an operator's dashboard watches: a model call through the gateway, for a
//! tenant with a budget, which the ledger then records and the reconciler reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sb_kernel::TenantId;
use sb_runtime::Infra;
use sb_testkit::{RunningApp, TestDb, TestRedis, spawn, tenant, test_config};
use serde_json::Value;
use uuid::Uuid;

/// Metrics the code exports only after an event this test does not cause. Each is named here
/// with the source file that records it; the test checks the name is still in that file, so a
/// rename still fails. Keep this list short.
const LAZY: &[(&str, &str)] = &[
    // Counted only when a call finds Redis unreachable.
    (
        "gateway_policy_fallback_total",
        "services/gateway/src/core/policy/mod.rs",
    ),
    // Counted only when a charged cost disagrees with the price book, or a model has no price.
    (
        "ledger_price_mismatch_total",
        "services/ledger/src/metrics.rs",
    ),
    // Recorded only when an agent run ends or calls a model, and this test starts no run.
    // (agent_sandbox_mode is set when the worker is built and approval_queue_depth by the
    // sweeper's first pass at start, so both are scraped, not listed here.)
    (
        "agent_executions_total",
        "services/agent-worker/src/core/metrics.rs",
    ),
    (
        "agent_duration_seconds_bucket",
        "services/agent-worker/src/core/metrics.rs",
    ),
    (
        "agent_duration_seconds_sum",
        "services/agent-worker/src/core/metrics.rs",
    ),
    (
        "agent_duration_seconds_count",
        "services/agent-worker/src/core/metrics.rs",
    ),
    (
        "agent_api_requests_total",
        "services/agent-worker/src/core/metrics.rs",
    ),
    (
        "agent_step_overhead_seconds_bucket",
        "services/agent-worker/src/core/metrics.rs",
    ),
    // Counted only when the gateway answers an agent's model call with 429.
    (
        "agent_api_rate_limit_hits",
        "services/agent-worker/src/core/metrics.rs",
    ),
    // Counted only when a socket.io client is sent something, or refused at its handshake.
    (
        "websocket_messages_sent_total",
        "services/api/src/realtime/events.rs",
    ),
    (
        "websocket_connect_refused_total",
        "services/api/src/realtime/events.rs",
    ),
    // Counted only when a webhook attempt is made, and this test registers no webhook.
    (
        "webhook_deliveries_total",
        "services/api/src/core/webhooks/deliver.rs",
    ),
];

/// Series Prometheus records itself for every scrape target.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Series of cAdvisor, which the kubelet serves for every container, not of the services: the
/// memory and CPU rules compare the service containers' use with their limits.
const CADVISOR_SERIES: &[&str] = &[
    "container_memory_working_set_bytes",
    "container_spec_memory_limit_bytes",
    "container_cpu_usage_seconds_total",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
];

/// PromQL's keywords, operators and aggregations that read like identifiers. Functions are
/// told apart by the `(` that follows them; aggregations may be followed by `by (…)` instead.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names, not of expressions.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn monitoring() -> PathBuf {
    repo_root().join("infra/monitoring")
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression selects: identifiers outside label matchers (`{…}`),
/// range and subquery durations (`[…]`), strings, label lists (`by (…)`) and Grafana variables
/// (`$service`), that are not followed by `(` (a function) and are not keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, end: char| {
        let mut j = i + 1;
        while j < chars.len() && chars[j] != end {
            // Strings inside matchers may hold the closing character.
            if chars[j] == '"' || chars[j] == '\'' || chars[j] == '`' {
                let quote = chars[j];
                j += 1;
                while j < chars.len() && chars[j] != quote {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '{' || chars[i] == '}')
                {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers, durations (5m) and exponents (1e6).
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by_paren = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) && followed_by_paren {
                    i = skip_to(next, ')');
                } else if !followed_by_paren && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every `expr` of a Prometheus rule file, inline or a block scalar (`expr: |`). Written for
/// the shape of our rule files; the count is checked against the number of rules.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let mut block = Vec::new();
            while i < lines.len() {
                let next = lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push(next.trim());
                i += 1;
            }
            exprs.push(block.join("\n"));
        } else {
            let unquoted = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                .unwrap_or(rest);
            exprs.push(unquoted.to_owned());
        }
    }
    let rules = lines
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("- alert:") || t.starts_with("- record:")
        })
        .count();
    assert_eq!(
        exprs.len(),
        rules,
        "one expr per rule read from the rule file"
    );
    exprs
}

/// Every query of a Grafana dashboard: panel targets' `expr` (rows' nested panels included)
/// and the metric of `label_values(metric, label)` variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                for v in map.values() {
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    walk(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = match &variable["query"] {
            Value::String(q) => q.as_str(),
            Value::Object(o) => o.get("query").and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        if let Some(args) = query.strip_prefix("label_values(")
            && let Some((metric, _label)) = args.rsplit_once(',')
        {
            queries.push(metric.to_owned());
        } else if let Some(inner) = query
            .strip_prefix("query_result(")
            .and_then(|q| q.strip_suffix(')'))
        {
            queries.push(inner.to_owned());
        }
    }
    queries
}

/// Where each metric name is used: "alerts.yml" or the dashboard's file name.
fn referenced_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let alerts = std::fs::read_to_string(monitoring().join("prometheus/alerts.yml")).unwrap();
    let exprs = rule_exprs(&alerts);
    assert!(exprs.len() >= 10, "the alert rules were read: {exprs:?}");
    for expr in exprs {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "no metric found in alert expr {expr}");
        for name in names {
            used.entry(name).or_default().insert("alerts.yml".into());
        }
    }
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(monitoring().join("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    dashboards.sort();
    assert!(dashboards.len() >= 5, "the dashboards: {dashboards:?}");
    for path in dashboards {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let queries = dashboard_queries(&dashboard);
        assert!(!queries.is_empty(), "{file} has no queries");
        for query in queries {
            let names = metric_names(&query);
            assert!(!names.is_empty(), "{file}: no metric found in {query}");
            for name in names {
                used.entry(name).or_default().insert(file.clone());
            }
        }
    }
    used
}

/// Metric names in Prometheus text: each family of a `# TYPE` line, with the series a
/// histogram or summary is exported as.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

async fn scrape(apps: &[(&str, &RunningApp)]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (service, app) in apps {
        let response = reqwest::get(app.url("/metrics")).await.unwrap();
        assert_eq!(response.status(), 200, "{service} /metrics");
        names.extend(exported_names(&response.text().await.unwrap()));
    }
    names
}

/// A tenant with an API key, a provider entry for `mock` and a monthly budget; returns the
/// key's secret.
async fn seed(db: &TestDb, mock: &RunningApp) -> String {
    let tenant = tenant(db, "monitoring", "UTC").await;
    let key = sb_auth::api_key::generate();
    let models: Vec<String> = sb_mock_llm::MODELS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let pool = db.app_pool().await;
    let mut tx = pool
        .begin(TenantId::from_uuid(tenant.id.as_uuid()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, workspace_id, name, prefix, key_hash)
         VALUES ($1, $2, $3, 'monitoring', $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id.as_uuid())
    .bind(tenant.workspace.as_uuid())
    .bind(key.prefix.clone())
    .bind(key.hash.to_vec())
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO provider_credentials (id, tenant_id, name, provider, base_url, models, priority)
         VALUES ($1, $2, 'mock', 'openai', $3, $4, 0)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id.as_uuid())
    .bind(mock.url("/v1"))
    .bind(models)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO budgets (id, tenant_id, scope, scope_id, period, limit_micros)
         VALUES ($1, $2, 'tenant', NULL, 'monthly', 100000000)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id.as_uuid())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    key.secret.clone()
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{route!~"/health.*|/metrics", service=~"$service"}[$__rate_interval]))) > 1"#
        ),
        ["http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            "max by (stream, group) (event_bus_consumer_lag) > 0\nunless on (stream, group)\nsum by (stream, group) (rate(event_bus_throughput_total[5m])) > 0"
        ),
        ["event_bus_consumer_lag", "event_bus_throughput_total"]
    );
    assert_eq!(
        names(
            r#"db_pool_connections{state="active"} / ignoring (state) db_pool_connections{state="max"} > 0.95"#
        ),
        ["db_pool_connections"]
    );
    assert_eq!(
        names(
            r#"clamp_min(sum by (tenant) (delta(budget_spend_micros{tenant=~"a}b"}[1h])), 0) / 1e6 offset 5m"#
        ),
        ["budget_spend_micros"]
    );
    assert_eq!(names(r#"up{job=~"gateway|api"} == 0"#), ["up"]);
}

#[tokio::test]
async fn alerts_and_dashboards_use_only_exported_metrics() {
    let used = referenced_metrics();

    // Lazily exported metrics must still be recorded by the code, and be worth listing.
    for (name, file) in LAZY {
        let source = std::fs::read_to_string(repo_root().join(file)).unwrap();
        // A histogram is recorded under its family's name and exported as _bucket/_sum/_count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(*name);
        assert!(
            source.contains(&format!("\"{name}\"")) || source.contains(&format!("\"{family}\"")),
            "{name} is allowed as lazily exported, but {file} no longer records it"
        );
        assert!(
            used.contains_key(*name),
            "{name} is on the lazy list but no alert or dashboard uses it: remove it from LAZY"
        );
    }

    for name in CADVISOR_SERIES {
        assert!(
            used.contains_key(*name),
            "{name} is on the cAdvisor list but no alert or dashboard uses it: remove it"
        );
    }

    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = test_config(&db, &redis);
    config.gateway.buffer_dir =
        std::env::temp_dir().join(format!("sb-monitoring-{}", Uuid::now_v7()));
    // Report tenant spend within a second of the ledger recording the call.
    config.ledger.reconcile_interval = Duration::from_secs(1);
    let infra = Infra::connect_lazy(&config).unwrap();
    let addr = || "127.0.0.1:0".parse().unwrap();
    let mock = spawn(sb_mock_llm::build(addr()).await.unwrap());
    let key = seed(&db, &mock).await;

    let gateway = spawn(sb_gateway::build(&infra, &config, addr()).await.unwrap());
    let api = spawn(sb_api::build(&infra, &config, addr()).await.unwrap());
    let agent_worker = spawn(
        sb_agent_worker::build(&infra, &config, addr())
            .await
            .unwrap(),
    );
    // A call before the ledger starts: the budget's Redis counter is missing, so the gateway
    // rebuilds it (gateway_budget_rebuilds_total); the ledger then reads the usage event
    // from the stream's beginning.
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "model": "mock-gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let ledger = spawn(sb_ledger::build(&infra, &config, addr()).await.unwrap());
    let apps = [
        ("gateway", &gateway),
        ("api", &api),
        ("agent-worker", &agent_worker),
        ("ledger", &ledger),
        ("mock-llm", &mock),
    ];

    let allowed: BTreeSet<&str> = LAZY
        .iter()
        .map(|(name, _)| *name)
        .chain(PROMETHEUS_SERIES.iter().copied())
        .chain(CADVISOR_SERIES.iter().copied())
        .collect();
    let missing = |exported: &BTreeSet<String>| -> Vec<String> {
        used.iter()
            .filter(|(name, _)| !exported.contains(*name) && !allowed.contains(name.as_str()))
            .map(|(name, files)| format!("{name} (used in {files:?})"))
            .collect()
    };
    // The ledger records the event and the reconciler reports within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exported = scrape(&apps).await;
    while !missing(&exported).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        exported = scrape(&apps).await;
    }
    let missing = missing(&exported);
    assert!(
        missing.is_empty(),
        "infra/monitoring queries metrics the services do not export:\n  {}\nexported: {exported:?}",
        missing.join("\n  ")
    );
}
