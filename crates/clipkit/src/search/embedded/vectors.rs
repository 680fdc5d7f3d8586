//! The flat vector file: a 64-byte header, then one row of E little-endian f32 per slot.
//!
//! Rows are only ever appended. The number of rows that count is recorded in the SQLite
//! database in the same transaction as the items that use them, so rows written by a
//! process that died before its transaction committed form a tail that is ignored, and cut
//! off by the next writer.
//!
//! Header: magic `CLIPKVEC`, format version (u32), E (u32), zeros up to 64 bytes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::search::error::{Result, SearchError};

const MAGIC: &[u8; 8] = b"CLIPKVEC";
const VERSION: u32 = 1;
const HEADER: u64 = 64;

/// A vector file opened at its committed length.
pub struct VectorFile {
    path: PathBuf,
    dim: usize,
    rows: usize,
    map: Option<Mmap>,
    writer: Option<File>,
}

impl VectorFile {
    /// Creates an empty vector file for rows of `dim` components, synced to disk.
    pub fn create(path: &Path, dim: usize) -> Result<()> {
        let io = |e| SearchError::io(path, e);
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(dim as u32).to_le_bytes());
        let mut file = File::create(path).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Opens `path`, whose first `rows` rows are committed. A writer cuts off any tail
    /// beyond them (rows of a transaction that never committed).
    pub fn open(path: &Path, dim: usize, rows: usize, writable: bool) -> Result<Self> {
        let io = |e| SearchError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(io)?;
        check_header(&mut file, path, dim)?;
        let committed = HEADER + (rows * dim * 4) as u64;
        let len = file.metadata().map_err(io)?.len();
        if len < committed {
            return Err(SearchError::corrupt(
                path,
                format!(
                    "holds {} rows but the index recorded {rows}",
                    len.saturating_sub(HEADER) / (dim as u64 * 4).max(1)
                ),
            ));
        }
        if writable && len > committed {
            file.set_len(committed).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let mut vectors = VectorFile {
            path: path.to_path_buf(),
            dim,
            rows: 0,
            map: None,
            writer: None,
        };
        vectors.remap(&file, rows)?;
        vectors.writer = writable.then_some(file);
        Ok(vectors)
    }

    /// Number of committed rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All committed rows, row-major (rows × E).
    pub fn data(&self) -> &[f32] {
        match &self.map {
            // The header is 64 bytes and the map page-aligned, so the rows are f32-aligned;
            // `cast_slice` checks it all the same.
            Some(map) => bytemuck::cast_slice(&map[HEADER as usize..]),
            None => &[],
        }
    }

    /// Row `slot`, or `None` past the committed rows.
    pub fn row(&self, slot: usize) -> Option<&[f32]> {
        (slot < self.rows).then(|| &self.data()[slot * self.dim..(slot + 1) * self.dim])
    }

    /// Writes rows after the committed ones and syncs them; they count only once
    /// [`VectorFile::publish`] is called after the metadata recording them has committed.
    pub fn append(&mut self, rows: &[f32]) -> Result<()> {
        let path = &self.path;
        let io = |e| SearchError::io(path, e);
        let file = self.writer.as_mut().ok_or_else(|| {
            SearchError::io(path, std::io::Error::other("vector file opened read-only"))
        })?;
        let end = HEADER + (self.rows * self.dim * 4) as u64;
        file.set_len(end).map_err(io)?;
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        file.write_all(bytemuck::cast_slice(rows)).map_err(io)?;
        file.sync_data().map_err(io)
    }

    /// Makes the first `rows` rows visible (after their metadata committed).
    pub fn publish(&mut self, rows: usize) -> Result<()> {
        let file = match &self.writer {
            Some(f) => f.try_clone().map_err(|e| SearchError::io(&self.path, e))?,
            None => File::open(&self.path).map_err(|e| SearchError::io(&self.path, e))?,
        };
        self.remap(&file, rows)
    }

    fn remap(&mut self, file: &File, rows: usize) -> Result<()> {
        let len = HEADER as usize + rows * self.dim * 4;
        // SAFETY: the mapped range holds committed rows only; writers append beyond it or
        // replace the whole file with a new one (compaction), never rewrite it in place.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }
            .map_err(|e| SearchError::io(&self.path, e))?;
        self.map = Some(map);
        self.rows = rows;
        Ok(())
    }
}

fn check_header(file: &mut File, path: &Path, dim: usize) -> Result<()> {
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header)
        .map_err(|_| SearchError::corrupt(path, "shorter than its 64-byte header"))?;
    if &header[..8] != MAGIC {
        return Err(SearchError::corrupt(path, "not a clipkit vector file"));
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if word(8) != VERSION {
        return Err(SearchError::corrupt(
            path,
            format!("format version {} (this clipkit reads {VERSION})", word(8)),
        ));
    }
    if word(12) as usize != dim {
        return Err(SearchError::corrupt(
            path,
            format!("rows of {} components, the index records {dim}", word(12)),
        ));
    }
    Ok(())
}
