//! Named roots: one collection indexed from several machines that mount it at different
//! places. With `photos=/mnt/nas/photos` on one host and `photos=/Volumes/photos` on
//! another, the file `2021/a.jpg` of that share has the same key, `photos:2021/a.jpg`, on
//! both: indexers on either host recognise each other's items (no duplicate, no re-embedding
//! of a file the other already did), and each host resolves the key to its own local path
//! to read the file or show it.
//!
//! A key is the absolute path (`/…`) for a file under no named root, else
//! `NAME:relative/path` with `/` between components on every platform. A name is letters,
//! digits, `_`, `-` and `.`, so a key under a root never begins with `/` and never collides
//! with an absolute path.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// One named root: the name every host uses and the folder it is on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRoot {
    /// The name that appears in keys.
    pub name: String,
    /// The folder on this host, canonical.
    pub dir: PathBuf,
}

impl FromStr for NamedRoot {
    type Err = Error;

    /// Parses `NAME=DIR`; the folder must exist (it is canonicalised, as the indexer
    /// canonicalises the folders it scans).
    fn from_str(s: &str) -> Result<Self> {
        let (name, dir) = s.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{s:?}: a named root is NAME=DIR (e.g. photos=/mnt/nas/photos)"
            ))
        })?;
        let valid = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            return Err(Error::InvalidArgument(format!(
                "{name:?}: a root name is letters, digits, '_', '-' and '.'"
            )));
        }
        let dir = Path::new(dir);
        let canonical = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        if !canonical.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{}: a named root must be a folder",
                dir.display()
            )));
        }
        Ok(NamedRoot {
            name: name.to_string(),
            dir: canonical,
        })
    }
}

/// The named roots in force on this host (none: every key is an absolute path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedRoots(Vec<NamedRoot>);

impl NamedRoots {
    /// The roots given; two roots of one name are refused.
    pub fn new(roots: Vec<NamedRoot>) -> Result<Self> {
        for (i, root) in roots.iter().enumerate() {
            if roots[..i].iter().any(|r| r.name == root.name) {
                return Err(Error::InvalidArgument(format!(
                    "the root name {:?} is given twice",
                    root.name
                )));
            }
        }
        Ok(NamedRoots(roots))
    }

    /// The key of `path` (absolute, canonical): under the deepest named root that holds
    /// it, `NAME:relative/path` (`NAME:` for the root itself); else the path as text.
    pub fn key(&self, path: &Path) -> String {
        let under = self
            .0
            .iter()
            .filter_map(|root| Some((root, path.strip_prefix(&root.dir).ok()?)))
            .max_by_key(|(root, _)| root.dir.components().count());
        match under {
            Some((root, relative)) => {
                let parts: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect();
                format!("{}:{}", root.name, parts.join("/"))
            }
            None => path.to_string_lossy().into_owned(),
        }
    }

    /// The local path of `key`: an absolute key as it is; `NAME:relative` under this host's
    /// folder for NAME. `None` when NAME is not a root here, or when the relative part
    /// could leave the folder (`..`, an absolute part): keys come from a shared store,
    /// and one written by another host is not trusted to stay inside the root.
    pub fn local(&self, key: &str) -> Option<PathBuf> {
        if Path::new(key).is_absolute() {
            return Some(PathBuf::from(key));
        }
        let (name, relative) = key.split_once(':')?;
        let root = self.0.iter().find(|r| r.name == name)?;
        let relative = Path::new(relative);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| root.dir.join(relative))
    }

    /// What to show a user for `key`: its local path when it has one here, else the key.
    pub fn display(&self, key: &str) -> String {
        self.local(key)
            .map_or_else(|| key.to_string(), |p| p.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> NamedRoots {
        let share = format!("share={}", dir.display());
        let inner = format!("inner={}", dir.join("sub").display());
        NamedRoots::new(vec![share.parse().unwrap(), inner.parse().unwrap()]).unwrap()
    }

    #[test]
    fn keys_are_relative_to_the_deepest_root_and_resolve_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        let base = dir.path().canonicalize().unwrap();
        let roots = roots(&base);
        assert_eq!(roots.key(&base.join("a/b.png")), "share:a/b.png");
        assert_eq!(
            roots.key(&base.join("sub/deeper/c.png")),
            "inner:deeper/c.png"
        );
        assert_eq!(roots.key(&base), "share:");
        assert_eq!(roots.key(Path::new("/elsewhere/d.png")), "/elsewhere/d.png");
        for path in [base.join("a/b.png"), base.join("sub/deeper/c.png")] {
            assert_eq!(roots.local(&roots.key(&path)), Some(path));
        }
        assert_eq!(
            roots.local("/elsewhere/d.png"),
            Some(PathBuf::from("/elsewhere/d.png"))
        );
        assert_eq!(roots.display("other:x.png"), "other:x.png");
    }

    #[test]
    fn keys_that_could_leave_their_root_resolve_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let roots = roots(&dir.path().canonicalize().unwrap());
        assert_eq!(roots.local("share:../outside.png"), None);
        assert_eq!(roots.local("share:a/../../outside.png"), None);
        assert_eq!(roots.local("share:./a.png"), None);
        assert_eq!(roots.local("unknown:a.png"), None);
    }

    #[test]
    fn bad_roots_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        for bad in [
            "photos".to_string(),
            format!("=/{d}"),
            format!("a/b={d}"),
            format!("a:b={d}"),
            "photos=/no/such/folder".to_string(),
        ] {
            assert!(bad.parse::<NamedRoot>().is_err(), "{bad}");
        }
        let one: NamedRoot = format!("x={d}").parse().unwrap();
        assert!(NamedRoots::new(vec![one.clone(), one]).is_err());
    }
}
