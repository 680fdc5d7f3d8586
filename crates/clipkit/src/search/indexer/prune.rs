//! Removing what was indexed under a folder that no longer exists: an indexing run only
//! looks under the folders it is given, so a folder deleted or renamed away would otherwise
//! stay in the index for good.

use std::path::{Component, Path, PathBuf};

use super::scan::Root;
use crate::error::{Error, Result};
use crate::search::named_roots::NamedRoots;
use crate::search::store::{Batch, VectorStore};

/// What [`prune_vanished`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Items removed.
    pub removed: usize,
    /// Recorded failures forgotten.
    pub forgotten: usize,
}

/// Removes every item and failure at or below each of `folders`, in one commit. Each must
/// be gone from the disk: a folder that exists is refused (index it instead, which removes
/// only what is gone from it). A path is matched as it was indexed: absolute, with links in
/// the part that still exists resolved, keyed under `named`.
pub fn prune_vanished(
    store: &mut dyn VectorStore,
    folders: &[PathBuf],
    named: &NamedRoots,
) -> Result<Pruned> {
    let roots = folders
        .iter()
        .map(|f| vanished_root(f, named))
        .collect::<Result<Vec<_>>>()?;
    let covered = |path: &str| {
        roots
            .iter()
            .any(|(folder, file)| folder.covers(path) || file.covers(path))
    };
    let removed: Vec<_> = store
        .items()?
        .into_iter()
        .filter(|i| covered(&i.file.path))
        .map(|i| i.id)
        .collect();
    let forgotten: Vec<_> = store
        .failures()?
        .into_iter()
        .filter(|f| covered(&f.path))
        .map(|f| f.path)
        .collect();
    let pruned = Pruned {
        removed: removed.len(),
        forgotten: forgotten.len(),
    };
    store.commit(Batch {
        removed,
        forgotten,
        ..Batch::default()
    })?;
    Ok(pruned)
}

/// The roots (as a folder, and as a single file) of a path that no longer exists.
fn vanished_root(path: &Path, named: &NamedRoots) -> Result<(Root, Root)> {
    if path.symlink_metadata().is_ok() {
        return Err(Error::InvalidArgument(format!(
            "{}: still exists; pruning removes only folders that are gone (run `clipkit \
             index {}` to bring the index up to date with it)",
            path.display(),
            path.display()
        )));
    }
    let absolute = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let resolved = resolve_existing_part(&lexically_normal(&absolute))?;
    let key = named.key(&resolved);
    Ok((Root::of(key.clone(), true), Root::of(key, false)))
}

/// `path` without `.` and `..` components (`..` drops the one before it).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` with its longest existing ancestor canonicalised (links resolved, as the indexer
/// resolved them) and the vanished rest appended.
fn resolve_existing_part(path: &Path) -> Result<PathBuf> {
    let mut vanished = Vec::new();
    let mut existing = path;
    while existing.symlink_metadata().is_err() {
        let (Some(name), Some(parent)) = (existing.file_name(), existing.parent()) else {
            break;
        };
        vanished.push(name);
        existing = parent;
    }
    let mut resolved = existing
        .canonicalize()
        .map_err(|e| Error::io(existing, e))?;
    resolved.extend(vanished.into_iter().rev());
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_and_dot_are_resolved_lexically() {
        assert_eq!(
            lexically_normal(Path::new("/a/./b/../c")),
            PathBuf::from("/a/c")
        );
    }

    #[test]
    fn a_vanished_folder_resolves_under_its_existing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("old/photos");
        let (folder, file) = vanished_root(&gone, &NamedRoots::default()).unwrap();
        let parent = dir.path().canonicalize().unwrap();
        let inside = parent
            .join("old/photos/a.png")
            .to_string_lossy()
            .into_owned();
        let beside = parent
            .join("old/photos2/a.png")
            .to_string_lossy()
            .into_owned();
        assert!(folder.covers(&inside));
        assert!(!folder.covers(&beside));
        assert!(file.covers(&parent.join("old/photos").to_string_lossy()));
        assert!(vanished_root(dir.path(), &NamedRoots::default()).is_err());
    }
}
