//! Measuring a workspace against its quota (`MAX_WORKSPACE_SIZE_GB`).
//!
//! The size is the sum of the apparent sizes (`st_size`) of the regular files beneath the
//! workspace, each inode counted once; directories and symlinks count nothing. The walk never
//! follows symlinks, holds at most two descriptors per level, and gives up (as over quota, so
//! writes are refused rather than let through unmeasured) past [`MAX_ENTRIES`] entries or
//! [`MAX_DEPTH`] levels.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::paths::WorkspaceDir;
use super::{ToolErrorCode, ToolFailure};

pub(crate) const MAX_ENTRIES: u64 = 1_000_000;
pub(crate) const MAX_DEPTH: usize = 64;

struct Walk {
    total: u64,
    entries: u64,
    seen: HashSet<(u64, u64)>,
}

/// The workspace's size in bytes.
pub(crate) fn usage(root: &WorkspaceDir) -> Result<u64, ToolFailure> {
    let mut walk = Walk {
        total: 0,
        entries: 0,
        seen: HashSet::new(),
    };
    visit(root.fd(), 0, &mut walk)?;
    Ok(walk.total)
}

/// [`usage`] off the async threads.
pub(crate) async fn usage_of(workspace: PathBuf) -> Result<u64, ToolFailure> {
    tokio::task::spawn_blocking(move || usage(&WorkspaceDir::open(&workspace)?))
        .await
        .map_err(|e| ToolFailure::new(ToolErrorCode::Io, format!("measuring the workspace: {e}")))?
}

fn visit(dir: BorrowedFd<'_>, depth: usize, walk: &mut Walk) -> Result<(), ToolFailure> {
    let io =
        |e: Errno| ToolFailure::new(ToolErrorCode::Io, format!("measuring the workspace: {e}"));
    for entry in Dir::read_from(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        walk.entries += 1;
        if walk.entries > MAX_ENTRIES {
            return Err(unmeasurable(&format!("more than {MAX_ENTRIES} entries")));
        }
        let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed while we walk: it no longer counts.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(io(e)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile if walk.seen.insert((stat.st_dev, stat.st_ino)) => {
                walk.total = walk
                    .total
                    .saturating_add(u64::try_from(stat.st_size).unwrap_or(0));
            }
            FileType::Directory => {
                if depth + 1 > MAX_DEPTH {
                    return Err(unmeasurable(&format!(
                        "deeper than {MAX_DEPTH} directories"
                    )));
                }
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                match rustix::fs::openat(dir, name, flags, Mode::empty()) {
                    Ok(sub) => visit(sub.as_fd(), depth + 1, walk)?,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(io(e)),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn unmeasurable(why: &str) -> ToolFailure {
    ToolFailure::new(
        ToolErrorCode::QuotaExceeded,
        format!("the workspace cannot be measured ({why}); writes are refused until it shrinks"),
    )
}

/// The failure for a workspace of `size` bytes against `quota`.
pub(crate) fn exceeded(size: u64, quota: u64, what_now: &str) -> ToolFailure {
    ToolFailure::new(
        ToolErrorCode::QuotaExceeded,
        format!("{size} bytes in the workspace is over its quota of {quota} bytes; {what_now}"),
    )
}
