//! Resolving the model's paths beneath the workspace, safely against symlinks and races.
//!
//! A path is first checked lexically ([`RelPath::parse`]: relative, no `..`), then opened with
//! one `openat2(root_fd, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` call. The kernel resolves
//! every component, symlinks included, and fails with `EXDEV` if any step would leave the
//! directory `root_fd` refers to; this is atomic, so there is no check-then-use window for a
//! concurrently swapped symlink. Writes add `RESOLVE_NO_SYMLINKS` ([`Links::Refuse`]). Operations
//! on a name (delete, mkdir) resolve the parent that way and then act with `*at(parent_fd, name)`
//! without following the final component. Where
//! `openat2` is missing (Linux before 5.6), each component is opened with `O_NOFOLLOW` from the
//! previous one, refusing every symlink.
//!
//! What this does not cover: a directory of the workspace being *moved out of it* by someone
//! with host access while we hold a descriptor into it (a sandboxed command cannot: it sees only
//! the workspace).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{ToolErrorCode, ToolFailure};

/// A path relative to the workspace root, made of plain components only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// Refuses absolute paths, `..` and NUL; drops `.` and empty components (`""`/`.`: the root).
    pub(crate) fn parse(input: &str) -> Result<Self, ToolFailure> {
        if input.contains('\0') {
            return Err(ToolFailure::new(
                ToolErrorCode::InvalidArguments,
                "path contains a NUL byte",
            ));
        }
        if input.len() > 4096 {
            return Err(ToolFailure::new(
                ToolErrorCode::InvalidArguments,
                "path longer than 4096 bytes",
            ));
        }
        if input.starts_with('/') {
            return Err(outside(
                input,
                "absolute paths are refused; give a path relative to the workspace root",
            ));
        }
        let mut parts = Vec::new();
        for part in input.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(outside(input, "`..` is refused")),
                part => parts.push(part.to_string()),
            }
        }
        Ok(Self { parts })
    }

    pub(crate) fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The path as given to `openat2` (`.` for the root).
    pub(crate) fn as_str_path(&self) -> String {
        if self.parts.is_empty() {
            ".".to_string()
        } else {
            self.parts.join("/")
        }
    }

    /// The parent and the last component (`None` for the root).
    pub(crate) fn split_last(&self) -> Option<(RelPath, &str)> {
        let (last, parent) = self.parts.split_last()?;
        Some((
            RelPath {
                parts: parent.to_vec(),
            },
            last,
        ))
    }

    /// The first `n` components.
    pub(crate) fn prefix(&self, n: usize) -> RelPath {
        RelPath {
            parts: self.parts[..n.min(self.parts.len())].to_vec(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.parts.len()
    }

    /// True if a component is `.git` (any case): the repository's own files, which only git
    /// itself may change (its config and hooks could otherwise be made to run programs).
    pub(crate) fn in_git_dir(&self) -> bool {
        self.parts.iter().any(|p| p.eq_ignore_ascii_case(".git"))
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str_path())
    }
}

fn outside(path: &str, why: &str) -> ToolFailure {
    ToolFailure::new(
        ToolErrorCode::PathOutsideWorkspace,
        format!("{path:?}: {why}"),
    )
}

/// Whether a resolution may go through symlinks that stay inside the workspace. Reads may;
/// writes, creations and deletions may not, so a link made inside the workspace (say, by a
/// checkout) cannot route a write to a place refused by name, such as `.git/config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Links {
    FollowInside,
    Refuse,
}

/// An open descriptor of the workspace directory: the anchor of every resolution.
pub(crate) struct WorkspaceDir {
    root: OwnedFd,
}

impl WorkspaceDir {
    pub(crate) fn open(path: &Path) -> Result<Self, ToolFailure> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            ToolFailure::new(
                ToolErrorCode::Io,
                format!("the workspace cannot be opened: {e}"),
            )
        })?;
        Ok(Self { root })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens `rel` beneath the workspace with `flags` (`O_CLOEXEC` is added).
    pub(crate) fn open_beneath(
        &self,
        rel: &RelPath,
        flags: OFlags,
        mode: Mode,
        links: Links,
    ) -> Result<OwnedFd, ToolFailure> {
        let flags = flags | OFlags::CLOEXEC;
        let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        if links == Links::Refuse {
            resolve |= ResolveFlags::NO_SYMLINKS;
        }
        let path = rel.as_str_path();
        // EAGAIN: a rename or mount raced with the lookup; the kernel asks to try again.
        for _ in 0..8 {
            match rustix::fs::openat2(&self.root, path.as_str(), flags, mode, resolve) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => return self.open_walking(rel, flags, mode),
                other => return other.map_err(|e| errno_failure(e, rel)),
            }
        }
        Err(errno_failure(Errno::AGAIN, rel))
    }

    /// The pre-5.6 fallback: component by component, no symlinks at all.
    fn open_walking(
        &self,
        rel: &RelPath,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, ToolFailure> {
        let fail = |e| errno_failure(e, rel);
        let Some((parent, last)) = rel.split_last() else {
            return rustix::fs::openat(&self.root, ".", flags, mode).map_err(fail);
        };
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut dir =
            rustix::fs::openat(&self.root, ".", dir_flags, Mode::empty()).map_err(fail)?;
        for part in &parent.parts {
            dir =
                rustix::fs::openat(&dir, part.as_str(), dir_flags, Mode::empty()).map_err(fail)?;
        }
        rustix::fs::openat(&dir, last, flags | OFlags::NOFOLLOW, mode).map_err(fail)
    }

    /// The parent directory of `rel` (opened beneath the workspace without following any
    /// symlink, as for every write) and its last component.
    pub(crate) fn parent_of<'a>(
        &self,
        rel: &'a RelPath,
    ) -> Result<(OwnedFd, &'a str), ToolFailure> {
        let Some((parent, name)) = rel.split_last() else {
            return Err(ToolFailure::new(
                ToolErrorCode::InvalidArguments,
                "the workspace root itself cannot be the target",
            ));
        };
        let fd = self.open_beneath(
            &parent,
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
            Links::Refuse,
        )?;
        Ok((fd, name))
    }

    /// `mkdir -p` of the directories above `rel`.
    pub(crate) fn create_parents(&self, rel: &RelPath) -> Result<(), ToolFailure> {
        for n in 1..rel.len() {
            let dir = rel.prefix(n);
            let flags = OFlags::PATH | OFlags::DIRECTORY;
            match self.open_beneath(&dir, flags, Mode::empty(), Links::Refuse) {
                Ok(_) => continue,
                Err(f) if f.code == ToolErrorCode::NotFound => {}
                Err(f) => return Err(f),
            }
            let (parent, name) = self.parent_of(&dir)?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno_failure(e, &dir)),
            }
        }
        Ok(())
    }
}

/// The tool failure for a system error on `rel`.
pub(crate) fn errno_failure(e: Errno, rel: &RelPath) -> ToolFailure {
    let (code, why) = match e {
        Errno::XDEV => (
            ToolErrorCode::PathOutsideWorkspace,
            "resolves outside the workspace (through a symbolic link) and is refused".to_string(),
        ),
        Errno::LOOP => (
            ToolErrorCode::PathOutsideWorkspace,
            "goes through a symbolic link, which is not followed here (writes and deletions \
             never follow one; reads follow only links that stay inside the workspace)"
                .to_string(),
        ),
        Errno::NOENT => (ToolErrorCode::NotFound, "no such file or directory".into()),
        Errno::NOTDIR => (
            ToolErrorCode::NotFound,
            "a parent is not a directory".into(),
        ),
        Errno::ISDIR => (ToolErrorCode::NotARegularFile, "is a directory".into()),
        Errno::FBIG => (ToolErrorCode::FileTooLarge, "file too large".into()),
        Errno::NOSPC | Errno::DQUOT => (ToolErrorCode::QuotaExceeded, "no space left".into()),
        Errno::NOTEMPTY => (
            ToolErrorCode::InvalidArguments,
            "directory not empty (delete its files first)".into(),
        ),
        e => (ToolErrorCode::Io, e.to_string()),
    };
    ToolFailure::new(code, format!("{rel}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        assert!(RelPath::parse("").unwrap().is_root());
        assert!(RelPath::parse("./").unwrap().is_root());
        assert_eq!(RelPath::parse("a//b/./c").unwrap().to_string(), "a/b/c");
        for bad in ["/etc/passwd", "..", "a/../b", "../../x"] {
            assert_eq!(
                RelPath::parse(bad).unwrap_err().code,
                ToolErrorCode::PathOutsideWorkspace,
                "{bad}"
            );
        }
        assert!(RelPath::parse("x/.GIT/config").unwrap().in_git_dir());
        assert!(!RelPath::parse("x/.github/ci.yml").unwrap().in_git_dir());
    }
}
