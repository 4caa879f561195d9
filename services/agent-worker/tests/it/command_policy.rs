//! The bash tool's allow-list and argument rules, as the attacks they stop. These refusals come
//! before anything runs; what a command could do past them is in `sandbox_escapes`.

use sb_agent_worker::sandbox::SandboxMode;
use sb_agent_worker::tools::{CommandPolicy, ToolErrorCode, openai_tools, tool_spec};

use crate::support::{Fixture, code, output};

fn fixture() -> Fixture {
    Fixture::new(SandboxMode::Bubblewrap)
}

async fn refused(f: &Fixture, command: &str) -> ToolErrorCode {
    code(&f.bash(command).await)
}

#[tokio::test]
async fn commands_outside_the_allow_list_are_refused() {
    let f = fixture();
    for command in [
        "rm -rf .",
        "sh -c id",
        "bash -c 'cat /etc/shadow'",
        "env",
        "xargs cat",
        "python3 -c 'print(1)'",
        "awk 'BEGIN{system(\"id\")}'",
        "sed -n 1e/bin/id x",
        "/bin/ls",
        "./ls",
        "curl http://example.com",
        "FOO=bar ls",
    ] {
        assert_eq!(
            refused(&f, command).await,
            ToolErrorCode::CommandNotAllowed,
            "{command}"
        );
    }
}

#[tokio::test]
async fn shell_syntax_is_refused_not_interpreted() {
    let f = fixture();
    for command in [
        "ls; cat /etc/shadow",
        "cat notes | sh",
        "echo $(id)",
        "echo `id`",
        "ls && rm x",
        "head -c 1000000000 /dev/zero > big",
        "cat < /dev/tcp/127.0.0.1/80",
        "ls\nid",
        "echo \"$HOME\"",
    ] {
        assert_eq!(
            refused(&f, command).await,
            ToolErrorCode::ShellSyntaxNotAllowed,
            "{command}"
        );
    }
    // Quoted, the same characters are plain arguments.
    assert_eq!(output(&f.bash("echo 'a|b; $HOME'").await), "a|b; $HOME\n");
}

#[tokio::test]
async fn paths_outside_the_workspace_in_arguments_are_refused() {
    let f = fixture();
    for command in [
        "cat /etc/shadow",
        "cat /proc/1/environ",
        "cat /proc/self/environ",
        "cat ../outside/secret.txt",
        "cat src/../../outside/secret.txt",
        "grep -r root /",
        "ls /",
        "wc --files0-from=/etc/passwd",
        "grep -f/etc/passwd x",
        "diff /work/../etc/passwd x",
        "git log --output=../x",
        "git -C /etc status",
    ] {
        assert_eq!(
            refused(&f, command).await,
            ToolErrorCode::PathOutsideWorkspace,
            "{command}"
        );
    }
    // The workspace's own mount point and the harmless devices are fine.
    assert_eq!(output(&f.bash("ls /work").await), "");
    assert_eq!(output(&f.bash("head -c 3 /dev/zero").await), "\0\0\0");
}

#[tokio::test]
async fn find_cannot_run_delete_or_write() {
    let f = fixture();
    for command in [
        "find . -exec cat {} +",
        "find . -exec sh -c id \\;",
        "find . -execdir id ;",
        "find . -ok id ;",
        "find . -okdir id ;",
        "find . -delete",
        "find . -fprint out",
        "find . -fprintf out %p",
        "find . -fls out",
    ] {
        let code = refused(&f, command).await;
        assert!(
            matches!(
                code,
                ToolErrorCode::ArgumentNotAllowed | ToolErrorCode::ShellSyntaxNotAllowed
            ),
            "{command}: {code:?}"
        );
    }
    assert_eq!(
        refused(&f, "find . -exec id \\;").await,
        ToolErrorCode::ArgumentNotAllowed
    );
    assert_eq!(output(&f.bash("find . -name '*.rs'").await), "");
}

#[tokio::test]
async fn git_cannot_be_made_to_run_programs() {
    let f = fixture();
    for command in [
        "git -c core.pager=id log",
        "git -c alias.x=!id x",
        "git --config-env=core.pager=PATH log",
        "git --exec-path=. status",
        "git -C sub status",
        "git --git-dir=.git status",
        "git --work-tree=. status",
        "git x",
        "git config alias.x '!id'",
        "git submodule update",
        "git clone https://example.com/r",
        "git grep -Oid pattern",
        "git grep --open-files-in-pager=id pattern",
        "git diff --ext-diff",
        "git init --template=tpl",
        "git fetch --upload-pack=id origin",
        "git rebase -x id HEAD",
    ] {
        assert_eq!(
            refused(&f, command).await,
            ToolErrorCode::ArgumentNotAllowed,
            "{command}"
        );
    }
}

#[tokio::test]
async fn writers_cannot_reach_git_config_or_run_compressors() {
    let f = fixture();
    for command in [
        "sort -o .git/config notes",
        "uniq notes .git/hooks/pre-commit",
        "sort --compress-program=id notes",
    ] {
        assert_eq!(
            refused(&f, command).await,
            ToolErrorCode::ArgumentNotAllowed,
            "{command}"
        );
    }
}

#[tokio::test]
async fn git_works_for_local_history() {
    let f = fixture();
    std::fs::write(f.workspace.join("a.txt"), "one\n").unwrap();
    for command in ["git init -q", "git add a.txt", "git commit -q -m first"] {
        let outcome = f.bash(command).await;
        assert_eq!(outcome.error_code(), None, "{command}: {outcome:?}");
    }
    let log = output(&f.bash("git log --format=%s%x20%an").await);
    assert_eq!(log, "first Switchboard agent\n");
}

#[tokio::test]
async fn without_a_sandbox_commands_are_refused_and_files_still_work() {
    let f = Fixture::new(SandboxMode::Unavailable);
    assert_eq!(refused(&f, "ls").await, ToolErrorCode::SandboxUnavailable);
    let wrote = f
        .call(
            "write_file",
            serde_json::json!({"path": "a", "content": "x"}),
        )
        .await;
    assert_eq!(wrote.error_code(), None);
}

#[test]
fn shells_can_never_be_allowed_by_configuration() {
    for name in ["sh", "bash", "env", "xargs", "awk", "sed", "python3"] {
        assert!(
            CommandPolicy::from_list(&format!("ls,{name}")).is_err(),
            "{name}"
        );
    }
}

#[test]
fn the_registry_speaks_the_openai_tools_format() {
    let tools = openai_tools(&CommandPolicy::default(), true);
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_files",
            "read_file",
            "write_file",
            "append_file",
            "delete_file",
            "bash"
        ]
    );
    for tool in &tools {
        assert_eq!(tool["type"], "function");
        assert_eq!(tool["function"]["parameters"]["type"], "object");
    }
    let bash = &tools[5]["function"]["description"];
    assert!(
        bash.as_str()
            .unwrap()
            .contains("Allowed commands: cat, diff, echo"),
        "{bash}"
    );
    assert_eq!(openai_tools(&CommandPolicy::default(), false).len(), 5);
    let idempotent: Vec<bool> = names
        .iter()
        .map(|n| tool_spec(n).unwrap().idempotent)
        .collect();
    assert_eq!(idempotent, [true, true, false, false, false, false]);
}
