//! Replacing a whole folder atomically: readers see the old folder or the new one, never a
//! half-written one, even when the writer is killed (`kill -9`, power loss) mid-write.
//!
//! The new contents go into a hidden staging folder beside the target
//! (`.NAME.partial-PID-N`), every file and the folder itself are flushed to disk, and the
//! staging folder then takes the target's place in one step: on Linux an atomic exchange
//! of the two names (`renameat2(RENAME_EXCHANGE)`), elsewhere two renames with the old
//! folder parked at `.NAME.old-PID-N` in between (a crash there leaves the target absent;
//! the next write restores the parked copy before anything else). Leftovers of killed
//! writes are removed by the next write to the same target, so one writer per target at a
//! time is assumed.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes staging folders of one process.
static NEXT_STAGING: AtomicU64 = AtomicU64::new(0);

const PARTIAL: &str = "partial";
const OLD: &str = "old";

/// Fills a fresh staging folder with `fill`, flushes it to disk and puts it in `target`'s
/// place, replacing any folder there. On error the staging folder is removed and `target`
/// is left as it was. `target`'s parent folders are created when missing.
pub fn replace_dir(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (parent, name) = split(target)?;
    fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    recover_leftovers(&parent, &name, target)?;
    let staging = sibling(&parent, &name, PARTIAL);
    fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
    let result = fill(&staging)
        .and_then(|()| sync_dir(&staging))
        .and_then(|()| swap_in(&staging, target, &parent, &name))
        .and_then(|()| sync_dir(&parent));
    if result.is_err() && staging.exists() {
        // Best effort: the error that got us here matters more than a failed clean-up.
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Writes `bytes` to `path` and flushes them to disk before returning.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Flushes an already written file to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn split(target: &Path) -> Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: needs a folder name in UTF-8 (not `..`, `/` or empty)",
                target.display()
            ))
        })?
        .to_string();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

fn sibling(parent: &Path, name: &str, kind: &str) -> PathBuf {
    let n = NEXT_STAGING.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{name}.{kind}-{}-{n}", std::process::id()))
}

/// Restores a parked old folder if a two-rename swap was cut short, then removes the
/// staging and parked folders that killed writes left behind.
fn recover_leftovers(parent: &Path, name: &str, target: &Path) -> Result<()> {
    let entries = fs::read_dir(parent).map_err(|e| Error::io(parent, e))?;
    let mut leftovers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(parent, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        for kind in [PARTIAL, OLD] {
            if file_name.starts_with(&format!(".{name}.{kind}-")) {
                leftovers.push((kind, entry.path()));
            }
        }
    }
    for (kind, path) in leftovers {
        if kind == OLD && !target.exists() {
            fs::rename(&path, target).map_err(|e| Error::io(&path, e))?;
        } else {
            fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

fn swap_in(staging: &Path, target: &Path, parent: &Path, name: &str) -> Result<()> {
    if fs::symlink_metadata(target).is_err() {
        return fs::rename(staging, target).map_err(|e| Error::io(target, e));
    }
    if exchange(staging, target).map_err(|e| Error::io(target, e))? {
        // `staging` now holds the old contents.
        return fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e));
    }
    let parked = sibling(parent, name, OLD);
    fs::rename(target, &parked).map_err(|e| Error::io(target, e))?;
    fs::rename(staging, target).map_err(|e| Error::io(target, e))?;
    fs::remove_dir_all(&parked).map_err(|e| Error::io(&parked, e))
}

/// Swaps two paths atomically; `Ok(false)` where the system or file system cannot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both arguments are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(err),
    }
}

/// Swaps two paths atomically; `Ok(false)` where the system or file system cannot.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Flushes a folder's entries (names of new files, renames) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
        write_synced(&dir.join(name), text.as_bytes())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_then_replaces_leaving_no_staging_behind() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out").join("model");
        replace_dir(&target, |d| write(d, "a.txt", "one")).unwrap();
        assert_eq!(read(&target, "a.txt"), "one");
        replace_dir(&target, |d| write(d, "b.txt", "two")).unwrap();
        assert_eq!(read(&target, "b.txt"), "two");
        assert!(!target.join("a.txt").exists(), "old contents are gone");
        assert_eq!(entries(&root.path().join("out")), ["model"]);
    }

    #[test]
    fn failed_fill_keeps_the_old_folder() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("model");
        replace_dir(&target, |d| write(d, "a.txt", "one")).unwrap();
        let err = replace_dir(&target, |d| {
            write(d, "half.txt", "x")?;
            Err(Error::InvalidArgument("disk on fire".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
        assert_eq!(read(&target, "a.txt"), "one");
        assert_eq!(entries(root.path()), ["model"]);
    }

    #[test]
    fn leftovers_of_killed_writes_are_cleaned_or_restored() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("model");
        // A killed write's staging folder, and a folder parked by a cut-short swap.
        let partial = root.path().join(".model.partial-1-0");
        let parked = root.path().join(".model.old-1-0");
        fs::create_dir(&partial).unwrap();
        fs::create_dir(&parked).unwrap();
        write(&parked, "a.txt", "old").unwrap();
        // The parked folder is restored first, then replaced by the new write.
        replace_dir(&target, |d| {
            assert_eq!(read(&target, "a.txt"), "old");
            write(d, "a.txt", "new")
        })
        .unwrap();
        assert_eq!(read(&target, "a.txt"), "new");
        assert_eq!(entries(root.path()), ["model"]);
    }
}
