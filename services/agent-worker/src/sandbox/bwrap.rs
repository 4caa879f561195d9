//! The bubblewrap command line: a new root holding only read-only `/usr` (with Debian's merged-usr
//! `/bin`, `/lib*`, `/sbin` links), the loader cache, a fresh `/proc` of the sandbox's own pid
//! namespace, a minimal `/dev`, a size-capped `/tmp`, the workspace read-write at `/work` and the
//! trampoline read-only at [`TRAMPOLINE_MOUNT`]. No `/etc` (so no `/etc/shadow`, passwd or
//! resolv.conf), no `/home`, no `/root`, no `/sys`, no host `/proc`, no network (an empty network
//! namespace with only `lo`), no capabilities, no nested user namespaces.

use std::ffi::OsString;
use std::path::Path;

use super::trampoline::{Confinement, encode_args};
use super::{ExecRequest, SANDBOX_PATH, Trampoline, WORKSPACE_MOUNT};

/// Where the trampoline is bound inside the sandbox.
pub const TRAMPOLINE_MOUNT: &str = "/.sandbox-exec";

/// The top-level directories that Debian's merged-usr layout makes links into `/usr`.
const USR_LINKS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];

/// `bwrap` arguments to run `req.argv` through `trampoline` (rlimits and seccomp inside).
pub(crate) fn arguments(req: &ExecRequest<'_>, trampoline: &Trampoline) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    push(
        &mut a,
        &[
            "--unshare-all",
            // Explicit, as root would otherwise skip it; required by --disable-userns.
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--setenv",
            "PATH",
            SANDBOX_PATH,
            "--setenv",
            "HOME",
            WORKSPACE_MOUNT,
            "--setenv",
            "LANG",
            "C.UTF-8",
        ],
    );
    for (key, value) in req.env {
        push(&mut a, &["--setenv", key, value]);
    }
    push(&mut a, &["--ro-bind", "/usr", "/usr"]);
    for dir in USR_LINKS {
        let path = Path::new(dir);
        match std::fs::read_link(path) {
            Ok(target) => {
                a.push("--symlink".into());
                a.push(target.into());
                a.push(dir.into());
            }
            // A real directory (a system without merged /usr): bind it read-only.
            Err(_) if path.is_dir() => push(&mut a, &["--ro-bind", dir, dir]),
            Err(_) => {}
        }
    }
    let tmp_bytes = req.limits.tmp_bytes.max(4096).to_string();
    push(
        &mut a,
        &[
            "--ro-bind-try",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            &tmp_bytes,
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
        ],
    );
    a.push("--bind".into());
    a.push(req.workspace.into());
    push(&mut a, &[WORKSPACE_MOUNT, "--chdir", WORKSPACE_MOUNT]);
    a.push("--ro-bind".into());
    a.push(trampoline.program.clone().into());
    push(&mut a, &[TRAMPOLINE_MOUNT, "--", TRAMPOLINE_MOUNT]);
    a.extend(trampoline.args.iter().cloned());
    let confinement = Confinement {
        seccomp: true,
        landlock: None,
    };
    a.extend(encode_args(req.limits, &confinement, req.argv));
    a
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}
