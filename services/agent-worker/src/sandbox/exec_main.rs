//! `agent-sandbox-exec`: the sandbox trampoline (see `sb_agent_worker::sandbox::trampoline`).
//! It sets rlimits, Landlock and seccomp on itself, then `exec`s the command after `--`.

fn main() -> std::process::ExitCode {
    sb_agent_worker::sandbox::trampoline::run(std::env::args_os().skip(1))
}
