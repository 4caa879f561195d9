//! The gateway through the official OpenAI Python SDK: `tests/sdk/test_openai_sdk.py` run
//! against a whole stack (gateway, mock-llm, Postgres, Redis). A completion, a stream, tool
//! calls, and 401, 402 and 429 raised as the SDK's own exception types.
//!
//! The interpreter is `SB_TEST_PYTHON` (default `python3`) and must import `openai`;
//! `scripts/test` makes a virtualenv with it at `target/sdk-venv`. Without it this test
//! fails: it never passes by skipping.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use crate::support::{KeyOptions, Stack};

fn python() -> String {
    std::env::var("SB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/test_openai_sdk.py")
}

/// The interpreter with nothing from the caller's environment that would change what the SDK
/// sends or where: no `OPENAI_*` settings, no proxy for the loopback gateway.
fn interpreter() -> Command {
    let mut command = Command::new(python());
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("OPENAI_")) {
            command.env_remove(name);
        }
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    command
}

fn require_the_sdk() {
    let python = python();
    let how = "run `bash scripts/test` once (it makes target/sdk-venv with the SDK), then \
               SB_TEST_PYTHON=$PWD/target/sdk-venv/bin/python; or point SB_TEST_PYTHON at any \
               Python 3 with `pip install 'openai>=1.50,<3'`";
    let output = std::process::Command::new(&python)
        .args(["-c", "import openai; print(openai.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the Python interpreter `{python}` (SB_TEST_PYTHON): {e}; {how}")
        });
    assert!(
        output.status.success(),
        "`{python}` (SB_TEST_PYTHON) cannot import the OpenAI SDK (`openai`): {}\n{how}",
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
}

#[tokio::test]
async fn the_official_openai_python_sdk_works_against_the_gateway() {
    require_the_sdk();
    let stack = Stack::new().await;
    let (limited, _) = stack
        .add_key(
            "rate-limited",
            KeyOptions {
                rpm: Some(1),
                ..KeyOptions::default()
            },
        )
        .await;
    let (broke, broke_id) = stack.add_key("broke", KeyOptions::default()).await;
    stack
        .add_budget("api_key", Some(broke_id), "monthly", 0)
        .await;

    let run = interpreter()
        .arg(script())
        .env("GATEWAY_BASE_URL", stack.gateway.url("/v1"))
        .env("SB_KEY", &stack.key)
        .env("SB_KEY_RATE_LIMITED", &limited)
        .env("SB_KEY_BROKE", &broke)
        .env("SB_MODEL", "mock-gpt-4o")
        .output();
    // The gateway serves from this test's runtime while the script runs.
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK script did not finish within 120 s")
        .expect("the SDK script could not be started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the OpenAI SDK script failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    // The summary proves the tests ran: a script that exits 0 having run none would not say so.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SDK tests: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        passed.is_some_and(|n| n > 0),
        "no passing SDK tests reported:\n{stdout}\n{stderr}"
    );
}
