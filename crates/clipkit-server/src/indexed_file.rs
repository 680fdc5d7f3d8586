//! Opening an indexed file for serving, only if it is still the file that was indexed.
//!
//! Indexed paths are canonical and absolute (the indexer canonicalises its roots and does
//! not follow symbolic links). So the file is opened one path component at a time, each
//! with no-follow semantics: a symbolic link anywhere on the way (a file replaced by a link
//! to `/etc/passwd`, a parent folder swapped for a link) refuses the open, and the check
//! and the open are one step, with no window for a swap in between. The opened handle is
//! then compared with the index's record (a regular file of the recorded size and
//! modification time) and read through that same handle.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use clipkit::search::{FileRecord, NamedRoots};

/// Why an indexed file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum Unservable {
    /// The file (or a folder above it) no longer exists.
    #[error("was deleted or moved since it was indexed")]
    Gone,
    /// Something else now stands at the path, or the file's content changed.
    #[error("changed since it was indexed ({0})")]
    Changed(&'static str),
    /// The file is under a named root this server was not given (`--root NAME=DIR`).
    #[error("is under a named root this server does not know (start it with --root NAME=DIR)")]
    NotHere,
    /// The file is there but cannot be read (permissions, I/O error).
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
}

/// An indexed file opened and checked against its record.
pub struct IndexedFile {
    file: File,
    record: FileRecord,
}

impl IndexedFile {
    /// Opens the local path of `record.path` (its key, resolved through `named`) without
    /// following symbolic links and checks that it is a regular file with the recorded size
    /// and modification time.
    pub fn open(record: &FileRecord, named: &NamedRoots) -> Result<Self, Unservable> {
        let path = named.local(&record.path).ok_or(Unservable::NotHere)?;
        let file = open_no_follow(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Unservable::Gone,
            _ if is_link_or_not_dir(&e) => Unservable::Changed("a symbolic link is in its path"),
            _ => Unservable::Io(e),
        })?;
        let opened = IndexedFile {
            file,
            record: record.clone(),
        };
        opened.check()?;
        Ok(opened)
    }

    /// The record the file was checked against.
    pub fn record(&self) -> &FileRecord {
        &self.record
    }

    /// The whole content, read through the checked handle; the file is checked again after
    /// reading, so a write during the read is caught too.
    pub fn read_all(mut self) -> Result<Vec<u8>, Unservable> {
        let mut bytes = Vec::new();
        (&mut self.file)
            .take(self.record.size.saturating_add(1))
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 != self.record.size {
            return Err(Unservable::Changed("its size changed while it was read"));
        }
        self.check()?;
        Ok(bytes)
    }

    /// Compares the open handle (fstat, not the path) with the record.
    fn check(&self) -> Result<(), Unservable> {
        let meta = self.file.metadata()?;
        if !meta.is_file() {
            return Err(Unservable::Changed("not a regular file"));
        }
        if meta.len() != self.record.size {
            return Err(Unservable::Changed("its size differs"));
        }
        if mtime_ns(&meta) != self.record.mtime_ns {
            return Err(Unservable::Changed("its modification time differs"));
        }
        Ok(())
    }
}

/// Modification time in nanoseconds since the epoch, 0 when unknown: the indexer's measure.
fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// True for the errors a no-follow walk gives when it meets a symbolic link (ELOOP) or a
/// file where a folder should be (ENOTDIR).
fn is_link_or_not_dir(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        let code = e.raw_os_error();
        code == Some(rustix::io::Errno::LOOP.raw_os_error())
            || code == Some(rustix::io::Errno::NOTDIR.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        e.kind() == std::io::ErrorKind::InvalidInput
    }
}

/// Opens an absolute, canonical `path` for reading, from the root down with `openat`, every
/// component with `O_NOFOLLOW`: it fails with ELOOP (or ENOTDIR) if any component is a
/// symbolic link, so what opens is the file at exactly this path.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::path::Component;

    use rustix::fs::{openat, Mode, OFlags, CWD};

    let not_canonical = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not an absolute canonical path", path.display()),
        )
    };
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return Err(not_canonical());
    }
    let names: Vec<_> = components
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(not_canonical()),
        })
        .collect::<Result<_, _>>()?;
    let Some((file_name, folders)) = names.split_last() else {
        return Err(not_canonical());
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = openat(CWD, "/", flags | OFlags::DIRECTORY, Mode::empty())?;
    for folder in folders {
        dir = openat(&dir, *folder, flags | OFlags::DIRECTORY, Mode::empty())?;
    }
    // NONBLOCK: a FIFO planted at the path must not hang the open; the fstat check then
    // refuses anything but a regular file.
    let file = openat(&dir, *file_name, flags | OFlags::NONBLOCK, Mode::empty())?;
    let file = File::from(file);
    set_blocking(&file)?;
    Ok(file)
}

/// Clears `O_NONBLOCK` again (it only guarded the open), so reads of a regular file behave
/// as usual.
#[cfg(unix)]
fn set_blocking(file: &File) -> std::io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let mut flags = fcntl_getfl(file)?;
    flags.remove(OFlags::NONBLOCK);
    fcntl_setfl(file, flags)?;
    Ok(())
}

/// Without `openat`: the path must still canonicalise to itself, then it is opened; the
/// handle checks that follow catch a file replaced in between.
#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    if path.canonicalize()? != path {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a symbolic link is in its path",
        ));
    }
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(path: &Path) -> FileRecord {
        let meta = std::fs::metadata(path).unwrap();
        FileRecord {
            path: path.to_str().unwrap().to_string(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            hash: String::new(),
        }
    }

    #[test]
    fn an_unchanged_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap().join("a.jpg");
        std::fs::write(&path, b"0123456789").unwrap();
        let bytes = IndexedFile::open(&record_of(&path), &NamedRoots::default())
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(bytes, b"0123456789");
    }

    #[test]
    fn relative_or_dotted_paths_are_refused() {
        for path in ["a.jpg", "/tmp/../etc/passwd", "/"] {
            let record = FileRecord {
                path: path.into(),
                size: 0,
                mtime_ns: 0,
                hash: String::new(),
            };
            assert!(
                matches!(
                    IndexedFile::open(&record, &NamedRoots::default()),
                    Err(Unservable::Io(_))
                ),
                "{path}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_at_the_path_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap().join("a.jpg");
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::RUSR).unwrap();
        let record = FileRecord {
            path: path.to_str().unwrap().into(),
            size: 0,
            mtime_ns: 0,
            hash: String::new(),
        };
        assert!(matches!(
            IndexedFile::open(&record, &NamedRoots::default()),
            Err(Unservable::Changed("not a regular file"))
        ));
    }
}
