//! ImageFolder: a labelled image set laid out as one sub-folder per class
//! (`root/cat/1.jpg`, `root/dog/7.png`). Class names are the sub-folder names with `_`
//! read as a space, in name order; images are found at any depth below their class
//! folder, by extension (jpg, jpeg, png, webp, bmp, gif), in name order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image::{has_image_extension, IMAGE_EXTENSIONS};

/// A labelled image set on disk.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    items: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Lists `root`. Fails when it is not a folder, holds no class folder, or has no image.
    pub fn open(root: &Path) -> Result<Self> {
        let mut class_dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !is_hidden(p))
            .collect();
        class_dirs.sort();
        if class_dirs.is_empty() {
            return Err(Error::Data {
                path: root.into(),
                message: "no class sub-folders (expected ROOT/CLASS/IMAGE files)".into(),
            });
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for (index, dir) in class_dirs.iter().enumerate() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().replace('_', " "))
                .unwrap_or_default();
            classes.push(name);
            let mut files = Vec::new();
            collect_images(dir, &mut files)?;
            files.sort();
            items.extend(files.into_iter().map(|f| (f, index)));
        }
        if items.is_empty() {
            return Err(Error::Data {
                path: root.into(),
                message: format!(
                    "the class folders hold no image ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            items,
        })
    }

    /// The folder listed.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names, in index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every image with its class index, class by class.
    pub fn items(&self) -> &[(PathBuf, usize)] {
        &self.items
    }

    /// The image paths, in the order of [`ImageFolder::items`].
    pub fn paths(&self) -> Vec<PathBuf> {
        self.items.iter().map(|(p, _)| p.clone()).collect()
    }

    /// The class indices, in the order of [`ImageFolder::items`].
    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|&(_, c)| c).collect()
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}
