//! The file tools, done by the worker itself (no process, so they work without a sandbox): every
//! path is opened beneath the workspace descriptor ([`super::paths`]), every check that matters
//! is made on the opened descriptor (`fstat`: a regular file with one link), and writes are
//! measured against the quota before a byte is written ([`super::quota`]).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use serde::Deserialize;

use super::paths::{Links, RelPath, WorkspaceDir, errno_failure};
use super::quota;
use super::{ToolContext, ToolErrorCode, ToolFailure, ToolLimits, ToolOutcome, parse_arguments};

/// Entries and depth a listing goes to.
const MAX_LIST_ENTRIES: usize = 10_000;
const MAX_LIST_DEPTH: usize = 16;

#[derive(Deserialize)]
struct ListArgs {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    offset: u64,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
struct PathArgs {
    path: String,
}

/// Runs the file tool `name` on a blocking thread.
pub(super) async fn execute(
    name: &'static str,
    arguments: serde_json::Value,
    ctx: &ToolContext,
) -> Result<ToolOutcome, ToolFailure> {
    let workspace = ctx.workspace.clone();
    let limits = ctx.limits.clone();
    tokio::task::spawn_blocking(move || {
        let ws = WorkspaceDir::open(&workspace)?;
        match name {
            "list_files" => list(&ws, parse_arguments(arguments)?, &limits),
            "read_file" => read(&ws, parse_arguments(arguments)?, &limits),
            "write_file" => write(&ws, parse_arguments(arguments)?, &limits, false),
            "append_file" => write(&ws, parse_arguments(arguments)?, &limits, true),
            "delete_file" => delete(&ws, parse_arguments(arguments)?),
            other => Err(ToolFailure::new(
                ToolErrorCode::UnknownTool,
                format!("no file tool {other}"),
            )),
        }
    })
    .await
    .map_err(|e| ToolFailure::new(ToolErrorCode::Io, format!("file tool failed: {e}")))?
}

fn io_failure(e: &std::io::Error, rel: &RelPath) -> ToolFailure {
    errno_failure(Errno::from_io_error(e).unwrap_or(Errno::IO), rel)
}

/// Refuses anything but a regular file with a single link (a second link may be a name of a
/// file outside the workspace).
fn check_regular(stat: &Stat, rel: &RelPath) -> Result<(), ToolFailure> {
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ToolFailure::new(
            ToolErrorCode::NotARegularFile,
            format!("{rel}: not a regular file"),
        ));
    }
    let links = stat.st_nlink;
    if links > 1 {
        return Err(ToolFailure::new(
            ToolErrorCode::PathOutsideWorkspace,
            format!("{rel}: has {links} hard links (one may be outside the workspace); refused"),
        ));
    }
    Ok(())
}

fn list(
    ws: &WorkspaceDir,
    args: ListArgs,
    limits: &ToolLimits,
) -> Result<ToolOutcome, ToolFailure> {
    let rel = RelPath::parse(args.path.as_deref().unwrap_or("."))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let dir = ws.open_beneath(&rel, flags, Mode::empty(), Links::FollowInside)?;
    let mut listing = Listing {
        text: String::new(),
        entries: 0,
        cap: limits.max_output_bytes,
        truncated: false,
    };
    list_dir(dir.as_fd(), "", args.recursive, 0, &mut listing, &rel)?;
    if listing.entries == 0 {
        listing.text.push_str("(empty directory)\n");
    }
    if listing.truncated {
        listing.text.push_str(&format!(
            "[listing truncated after {} entries; list a subdirectory]\n",
            listing.entries
        ));
    }
    Ok(ToolOutcome::ok(listing.text, listing.truncated))
}

struct Listing {
    text: String,
    entries: usize,
    cap: usize,
    truncated: bool,
}

fn list_dir(
    dir: BorrowedFd<'_>,
    prefix: &str,
    recursive: bool,
    depth: usize,
    out: &mut Listing,
    rel: &RelPath,
) -> Result<(), ToolFailure> {
    let fail = |e: Errno| errno_failure(e, rel);
    let mut names: Vec<CString> = Vec::new();
    for entry in Dir::read_from(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    for name in names {
        if out.truncated {
            return Ok(());
        }
        if out.entries >= MAX_LIST_ENTRIES || out.text.len() >= out.cap {
            out.truncated = true;
            return Ok(());
        }
        let stat = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(fail(e)),
        };
        out.entries += 1;
        let shown = format!("{prefix}{}", name.to_string_lossy());
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                out.text.push_str(&format!("{shown}/\n"));
                let is_git = name.to_bytes().eq_ignore_ascii_case(b".git");
                if recursive && !is_git && depth + 1 < MAX_LIST_DEPTH {
                    let flags =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    if let Ok(sub) = rustix::fs::openat(dir, name.as_c_str(), flags, Mode::empty())
                    {
                        list_dir(sub.as_fd(), &format!("{shown}/"), true, depth + 1, out, rel)?;
                    }
                }
            }
            FileType::RegularFile => out.text.push_str(&format!("{shown}  {}\n", stat.st_size)),
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name.as_c_str(), Vec::new())
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.text.push_str(&format!("{shown} -> {target}\n"));
            }
            _ => out.text.push_str(&format!("{shown}  (special file)\n")),
        }
    }
    Ok(())
}

fn read(
    ws: &WorkspaceDir,
    args: ReadArgs,
    limits: &ToolLimits,
) -> Result<ToolOutcome, ToolFailure> {
    let rel = RelPath::parse(&args.path)?;
    // O_NONBLOCK: opening a FIFO must not hang the worker (it is refused just below).
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = ws.open_beneath(&rel, flags, Mode::empty(), Links::FollowInside)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| errno_failure(e, &rel))?;
    check_regular(&stat, &rel)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if args.offset > size {
        return Ok(ToolOutcome::ok(
            format!(
                "(offset {} is past the end: the file has {size} bytes)",
                args.offset
            ),
            false,
        ));
    }
    let mut file = File::from(fd);
    file.seek(SeekFrom::Start(args.offset))
        .map_err(|e| io_failure(&e, &rel))?;
    let cap = limits.max_output_bytes as u64;
    let mut buf = Vec::with_capacity(usize::try_from(cap.min(size - args.offset)).unwrap_or(0));
    file.take(cap)
        .read_to_end(&mut buf)
        .map_err(|e| io_failure(&e, &rel))?;
    let end = args.offset + buf.len() as u64;
    let truncated = end < size;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if truncated {
        text.push_str(&format!(
            "\n[truncated: bytes {}..{end} of {size}; read on with offset {end}]",
            args.offset
        ));
    }
    Ok(ToolOutcome::ok(text, truncated))
}

fn write(
    ws: &WorkspaceDir,
    args: WriteArgs,
    limits: &ToolLimits,
    append: bool,
) -> Result<ToolOutcome, ToolFailure> {
    let rel = RelPath::parse(&args.path)?;
    if rel.is_root() {
        return Err(ToolFailure::new(
            ToolErrorCode::NotARegularFile,
            "the workspace root is a directory",
        ));
    }
    if rel.in_git_dir() {
        return Err(ToolFailure::new(
            ToolErrorCode::ArgumentNotAllowed,
            format!("{rel}: files under .git are changed only by git"),
        ));
    }
    let added = args.content.len() as u64;
    ws.create_parents(&rel)?;
    let old = match ws.open_beneath(&rel, OFlags::PATH, Mode::empty(), Links::Refuse) {
        Ok(fd) => {
            let stat = rustix::fs::fstat(&fd).map_err(|e| errno_failure(e, &rel))?;
            check_regular(&stat, &rel)?;
            u64::try_from(stat.st_size).unwrap_or(0)
        }
        Err(f) if f.code == ToolErrorCode::NotFound => 0,
        Err(f) => return Err(f),
    };
    let resulting = if append { old + added } else { added };
    if resulting > limits.max_file_size_bytes {
        return Err(ToolFailure::new(
            ToolErrorCode::FileTooLarge,
            format!(
                "{rel} would be {resulting} bytes, over the largest file allowed ({} bytes)",
                limits.max_file_size_bytes
            ),
        ));
    }
    let usage = quota::usage(ws)?;
    let after = usage.saturating_sub(old).saturating_add(resulting);
    if after > limits.workspace_quota_bytes {
        return Err(quota::exceeded(
            after,
            limits.workspace_quota_bytes,
            "that is counting this write, so nothing was written; delete files first",
        ));
    }
    let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK | OFlags::NOCTTY;
    if append {
        flags |= OFlags::APPEND;
    }
    let fd = ws.open_beneath(&rel, flags, Mode::from_raw_mode(0o644), Links::Refuse)?;
    // The check that counts: on the file actually opened, before it is changed.
    let stat = rustix::fs::fstat(&fd).map_err(|e| errno_failure(e, &rel))?;
    check_regular(&stat, &rel)?;
    let mut file = File::from(fd);
    if !append {
        file.set_len(0).map_err(|e| io_failure(&e, &rel))?;
    }
    file.write_all(args.content.as_bytes())
        .map_err(|e| io_failure(&e, &rel))?;
    let verb = if append { "appended" } else { "wrote" };
    Ok(ToolOutcome::ok(
        format!("{verb} {added} bytes to {rel}"),
        false,
    ))
}

fn delete(ws: &WorkspaceDir, args: PathArgs) -> Result<ToolOutcome, ToolFailure> {
    let rel = RelPath::parse(&args.path)?;
    if rel.in_git_dir() {
        return Err(ToolFailure::new(
            ToolErrorCode::ArgumentNotAllowed,
            format!("{rel}: files under .git are changed only by git"),
        ));
    }
    let (parent, name) = ws.parent_of(&rel)?;
    let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| errno_failure(e, &rel))?;
    let flags = if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rustix::fs::unlinkat(&parent, name, flags).map_err(|e| errno_failure(e, &rel))?;
    Ok(ToolOutcome::ok(format!("deleted {rel}"), false))
}
