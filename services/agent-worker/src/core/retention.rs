//! Workspace retention: a run's directory (`WORKSPACE_ROOT/{tenant}/{run}` or
//! `…/ws-{workspace}`) is deleted once nothing in it changed for `WORKSPACE_RETENTION_DAYS`
//! (its own modification time: a file created, removed or renamed in it moves it).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Deletes the workspace directories under `root` untouched for longer than `older_than`;
/// returns how many it deleted. Blocking: run it on a blocking thread.
pub fn sweep(root: &Path, older_than: Duration) -> std::io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(older_than) else {
        return Ok(0);
    };
    let tenants = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for tenant in tenants.flatten() {
        if !tenant.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for workspace in std::fs::read_dir(tenant.path())?.flatten() {
            let stale = workspace
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            // `symlink_metadata` through `file_type`: a link is removed, never followed.
            if stale && workspace.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(workspace.path())?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspaces_untouched_past_the_retention_go() {
        let root = tempfile::tempdir().unwrap();
        let old = root.path().join("tenant").join("old-run");
        let new = root.path().join("tenant").join("new-run");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(old.join("f.txt"), "x").unwrap();
        let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 86_400);
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(eight_days_ago)
            .unwrap();
        let deleted = sweep(root.path(), Duration::from_secs(7 * 86_400)).unwrap();
        assert_eq!(deleted, 1);
        assert!(!old.exists());
        assert!(new.exists());
        assert_eq!(
            sweep(&root.path().join("missing"), Duration::ZERO).unwrap(),
            0
        );
    }
}
