//! The restrictions the trampoline applies to itself before `exec`: rlimits, Landlock and a
//! seccomp filter. All three are inherited across `exec` and by every child, and none can be
//! lifted by the command (hard rlimits only go down; Landlock and seccomp are one-way, with
//! `no_new_privs` set by both).

use std::collections::BTreeMap;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, path_beneath_rules,
};
use rustix::process::{Resource, Rlimit, setrlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::ProcessLimits;
use super::trampoline::LandlockPaths;

/// The Landlock ABI whose rights we ask for; on an older kernel the crate's best-effort mode
/// keeps what that kernel can enforce (the machine this was written on has ABI 7).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Sets the hard and soft limits (the CPU hard limit one second above the soft one, so the
/// command gets SIGXCPU first and SIGKILL after). No core dumps.
pub(crate) fn set_rlimits(limits: &ProcessLimits) -> Result<(), String> {
    let both = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    for (resource, limit) in [
        (
            Resource::Cpu,
            Rlimit {
                current: Some(limits.cpu_seconds),
                maximum: Some(limits.cpu_seconds.saturating_add(1)),
            },
        ),
        (Resource::As, both(limits.memory_bytes)),
        (Resource::Fsize, both(limits.file_size_bytes)),
        (Resource::Nofile, both(limits.open_files)),
        (Resource::Nproc, both(limits.processes)),
        (Resource::Core, both(0)),
    ] {
        setrlimit(resource, limit).map_err(|e| format!("setrlimit {resource:?}: {e}"))?;
    }
    Ok(())
}

/// What the Landlock mode lets a command reach: the system's programs and libraries read-only,
/// the workspace and a per-run tmp read-write, and the harmless devices.
pub(crate) fn landlock_paths(workspace: &Path, tmp: &Path) -> LandlockPaths {
    let ro = [
        "/usr",
        "/bin",
        "/lib",
        "/lib64",
        "/lib32",
        "/sbin",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/dev/zero",
        "/dev/random",
        "/dev/urandom",
    ];
    LandlockPaths {
        read_only: ro.iter().map(Into::into).collect(),
        read_write: vec![
            workspace.to_path_buf(),
            tmp.to_path_buf(),
            "/dev/null".into(),
        ],
    }
}

/// Restricts this process (and so the command) to `paths`, denies TCP bind/connect, and scopes
/// signals and abstract UNIX sockets to the sandbox. Fails unless the kernel enforces it.
pub(crate) fn apply_landlock(paths: &LandlockPaths) -> Result<(), String> {
    let err = |e: landlock::RulesetError| format!("landlock: {e}");
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .map_err(err)?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))
        .map_err(err)?
        .scope(Scope::from_all(LANDLOCK_ABI))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(
            &paths.read_only,
            AccessFs::from_read(LANDLOCK_ABI),
        ))
        .map_err(err)?
        .add_rules(path_beneath_rules(
            &paths.read_write,
            AccessFs::from_all(LANDLOCK_ABI),
        ))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    if status.ruleset == RulesetStatus::NotEnforced || !status.no_new_privs {
        return Err(format!("landlock not enforced by this kernel: {status:?}"));
    }
    Ok(())
}

/// A denylist filter (EPERM): sockets other than AF_UNIX, `connect` (so neither the network nor
/// a host UNIX socket such as a container runtime's), io_uring (which would bypass the filter),
/// leaving the process group (so a kill of the group reaches every process), tracing other
/// processes, namespaces and mounts, and kernel interfaces a command has no use for.
pub(crate) fn apply_seccomp() -> Result<(), String> {
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(err)?;
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(err)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![not_unix]).map_err(err)?],
    );
    for syscall in [
        libc::SYS_connect,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
    ] {
        // No conditions: the syscall always matches.
        rules.insert(syscall, Vec::new());
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let program: BpfProgram = filter.try_into().map_err(err)?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}
