use secrecy::ExposeSecret;

use super::*;

fn source(pairs: &[(&str, &str)]) -> Source {
    Source::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

const LONG: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn defaults_work_on_a_developer_machine() {
    let config = Config::from_source(
        &source(&[("JWT_SECRET", LONG), ("ENCRYPTION_MASTER_KEY", LONG)]),
        false,
    )
    .unwrap();
    assert_eq!(
        config.database.app_url.expose_secret(),
        "postgres://switchboard_app@127.0.0.1:5432/switchboard"
    );
    assert_eq!(config.redis.url.expose_secret(), "redis://127.0.0.1:6379");
    assert_eq!(config.listen.gateway_port, 8080);
    assert_eq!(config.listen.mock_llm_port, 8090);
    assert_eq!(config.listen.port, None);
    assert_eq!(config.telemetry.log.format, LogFormat::Pretty);
    assert!(config.secrets.generated.is_empty());
    // Unsafe outside a demo, so off unless asked for.
    assert!(!config.api.graphql_introspection);
    assert!(!config.gateway.provider_allow_private);
}

/// A service that reads no secret starts without any (so a deployment need not give it
/// them); one that reads a secret still refuses to start without it.
#[test]
fn a_process_needs_only_its_own_secrets() {
    let none = Config::for_process(&source(&[]), false, SecretNeeds::NONE).unwrap();
    assert!(none.secrets.generated.is_empty());
    // A secret it does not need is never read, not even to be checked.
    let ignored = Config::for_process(
        &source(&[
            ("JWT_SECRET", "short"),
            ("ENCRYPTION_PREVIOUS_KEYS", "short"),
        ]),
        false,
        SecretNeeds::NONE,
    )
    .unwrap();
    assert!(ignored.secrets.previous_master_keys.is_empty());
    assert_ne!(ignored.secrets.jwt_secret.expose_secret(), "short");
    let gateway = SecretNeeds {
        jwt: false,
        encryption: true,
    };
    let err = Config::for_process(&source(&[("JWT_SECRET", LONG)]), false, gateway).unwrap_err();
    assert_eq!(err.variable, "ENCRYPTION_MASTER_KEY");
    let config =
        Config::for_process(&source(&[("ENCRYPTION_MASTER_KEY", LONG)]), false, gateway).unwrap();
    assert_eq!(config.secrets.encryption_master_key.expose_secret(), LONG);
    // Everything (`serve all`, `keys rotate`, doctor) still needs both.
    let err = Config::for_process(
        &source(&[("ENCRYPTION_MASTER_KEY", LONG)]),
        false,
        SecretNeeds::ALL,
    )
    .unwrap_err();
    assert_eq!(err.variable, "JWT_SECRET");
}

#[test]
fn the_demo_answers_graphql_introspection_and_reaches_local_providers() {
    let config = Config::from_source(&source(&[]), true).unwrap();
    assert!(config.api.graphql_introspection);
    assert!(config.gateway.provider_allow_private);
}

#[test]
fn missing_secrets_are_refused_outside_demo() {
    let err = Config::from_source(&source(&[("ENCRYPTION_MASTER_KEY", LONG)]), false).unwrap_err();
    assert_eq!(err.variable, "JWT_SECRET");
    assert!(
        err.to_string()
            .starts_with("JWT_SECRET is not set: set JWT_SECRET to at least 32"),
        "{err}"
    );
}

#[test]
fn short_secrets_are_refused_with_their_length_but_not_their_value() {
    let err = Config::from_source(
        &source(&[("JWT_SECRET", LONG), ("ENCRYPTION_MASTER_KEY", "hunter2")]),
        false,
    )
    .unwrap_err();
    assert_eq!(err.variable, "ENCRYPTION_MASTER_KEY");
    let line = err.to_string();
    assert!(line.contains("too short (7 characters"), "{line}");
    assert!(
        !line.contains("hunter2"),
        "the secret must not be echoed: {line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
}

#[test]
fn demo_generates_throwaway_secrets_and_says_which() {
    let config = Config::from_source(&source(&[("JWT_SECRET", "short")]), true).unwrap();
    assert_eq!(
        config.secrets.generated,
        vec!["JWT_SECRET", "ENCRYPTION_MASTER_KEY"]
    );
    assert!(config.secrets.jwt_secret.expose_secret().len() >= MIN_SECRET_LEN);
    assert_ne!(
        config.secrets.jwt_secret.expose_secret(),
        config.secrets.encryption_master_key.expose_secret()
    );
    // A good secret is kept even in a demo.
    let config = Config::from_source(&source(&[("JWT_SECRET", LONG)]), true).unwrap();
    assert_eq!(config.secrets.generated, vec!["ENCRYPTION_MASTER_KEY"]);
    assert_eq!(config.secrets.jwt_secret.expose_secret(), LONG);
}

#[test]
fn bad_values_name_the_variable_and_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "DATABASE_URL",
            "mysql://x",
            "DATABASE_URL is not a URL starting with postgres:// or postgresql://",
        ),
        (
            "REDIS_URL",
            "127.0.0.1:6379",
            "REDIS_URL is not a URL starting with redis:// or rediss://",
        ),
        (
            "GATEWAY_PORT",
            "80800",
            "GATEWAY_PORT is \"80800\", not a whole number from 0 to 65535",
        ),
        (
            "DATABASE_MAX_CONNECTIONS",
            "0",
            "DATABASE_MAX_CONNECTIONS is 0, out of range: set it to a whole number from 1 to 1000",
        ),
        (
            "LOG_FORMAT",
            "xml",
            "LOG_FORMAT \"xml\" is not a log format: set it to `json` or `pretty`",
        ),
        (
            "HOST",
            "localhost:1",
            "HOST is \"localhost:1\", not an IP address",
        ),
        (
            "CORS_ORIGINS",
            "example.com",
            "CORS_ORIGINS \"example.com\" is not an origin",
        ),
        (
            "BUDGET_PERIODS",
            "weekly",
            "BUDGET_PERIODS \"weekly\" is not a budget period",
        ),
        (
            "MOCK_LLM_URL",
            "ftp://x",
            "MOCK_LLM_URL is not a URL starting with http:// or https://",
        ),
    ];
    for (name, value, expected) in cases {
        let err = Config::from_source(
            &source(&[
                (name, value),
                ("JWT_SECRET", LONG),
                ("ENCRYPTION_MASTER_KEY", LONG),
            ]),
            false,
        )
        .unwrap_err();
        assert_eq!(&err.variable, name);
        assert!(
            err.to_string().starts_with(expected),
            "{name}={value}: got {err}"
        );
    }
}

#[test]
fn url_errors_never_echo_the_url() {
    let err = Config::from_source(&source(&[("DATABASE_URL", "mysql://root:s3cret@db")]), true)
        .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn empty_values_mean_unset() {
    let config = Config::from_source(&source(&[("PORT", ""), ("LOG_LEVEL", "  ")]), true).unwrap();
    assert_eq!(config.listen.port, None);
    assert_eq!(config.telemetry.log.level, "info,sqlx=warn");
}

#[test]
fn port_overrides_and_lists_parse() {
    let config = Config::from_source(
        &source(&[("PORT", "9000"), ("ALLOWED_BASH_COMMANDS", "ls, cat,,wc")]),
        true,
    )
    .unwrap();
    assert_eq!(config.listen.port, Some(9000));
    assert_eq!(config.agent.allowed_bash_commands, vec!["ls", "cat", "wc"]);
}

/// `.env.example` must list every variable with its default, and nothing we do not read.
#[test]
fn env_example_lists_every_variable_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../.env.example");
    let text = std::fs::read_to_string(path).unwrap();
    let mut listed = std::collections::HashMap::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some((name, value)) = line.split_once('=')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            listed.insert(name.to_string(), value.to_string());
        }
    }
    for var in vars::VARIABLES {
        let value = listed
            .get(var.name)
            .unwrap_or_else(|| panic!(".env.example does not list {}", var.name));
        assert_eq!(
            value.as_str(),
            var.default.unwrap_or(""),
            "{} in .env.example differs from its default",
            var.name
        );
    }
    for name in listed.keys() {
        assert!(
            vars::lookup(name).is_some(),
            ".env.example lists {name}, which Switchboard does not read"
        );
    }
}

/// The README's configuration table names every variable too.
#[test]
fn readme_lists_every_variable() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../README.md");
    let text = std::fs::read_to_string(path).unwrap();
    for var in vars::VARIABLES {
        let default = var
            .default
            .map_or_else(|| "—".to_owned(), |d| format!("`{d}`"));
        let row = format!("| `{}` | {default} |", var.name);
        assert!(text.contains(&row), "README.md lacks the row {row}");
    }
}

#[test]
fn shutdown_drain_must_be_shorter_than_the_timeout() {
    let config = Config::from_source(&source(&[]), true).unwrap();
    assert_eq!(config.shutdown.drain, Duration::ZERO);
    assert_eq!(config.shutdown.timeout, Duration::from_secs(30));
    let err = Config::from_source(
        &source(&[
            ("SHUTDOWN_DRAIN_SECONDS", "10"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "10"),
        ]),
        true,
    )
    .unwrap_err();
    assert_eq!(err.variable, "SHUTDOWN_DRAIN_SECONDS");
}
