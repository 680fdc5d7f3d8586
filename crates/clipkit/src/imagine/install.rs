//! Installing a generator where `clipkit imagine` finds it without `--generator`: one
//! self-contained folder, the generator's files with the VQ model it was trained over in
//! `vq/`, so deleting the training run leaves the installed generator working.

use std::fs;
use std::path::Path;

use super::GENERATION_CONFIG_FILE;
use crate::error::{Error, Result};
use crate::model::imagine::{ImagineConfig, VqIdentity};
use crate::model_folder::atomic_dir::{replace_dir, write_synced};
use crate::model_folder::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

/// The VQ model's subfolder inside an installed generator.
pub const INSTALLED_VQ_DIR: &str = "vq";

/// Copies the generator folder `generator` (with its `generation_config.json`, if any) and
/// the VQ folder its config names into
/// `target` (its VQ in `target/vq`, the config pointing there), replacing any folder at
/// `target` only once every file is written. The VQ weights must still be the ones the
/// generator was trained with.
pub fn install_generator(generator: &Path, target: &Path) -> Result<()> {
    let config_path = generator.join(CONFIG_FILE);
    let mut config = ImagineConfig::read(&config_path)?;
    let vq_source = config.vq.path.clone();
    config.vq.check(&vq_source)?;
    let target_abs = std::path::absolute(target).map_err(|e| Error::io(target, e))?;
    config.vq = VqIdentity {
        path: target_abs.join(INSTALLED_VQ_DIR),
        weights_blake3: config.vq.weights_blake3,
    };
    let config_json =
        serde_json::to_vec_pretty(&config).map_err(|e| Error::Training(e.to_string()))?;
    replace_dir(target, |staging| {
        write_synced(&staging.join(CONFIG_FILE), &config_json)?;
        for name in [WEIGHTS_FILE, TOKENIZER_FILE] {
            copy(&generator.join(name), &staging.join(name))?;
        }
        if generator.join(GENERATION_CONFIG_FILE).is_file() {
            copy(
                &generator.join(GENERATION_CONFIG_FILE),
                &staging.join(GENERATION_CONFIG_FILE),
            )?;
        }
        let vq = staging.join(INSTALLED_VQ_DIR);
        fs::create_dir(&vq).map_err(|e| Error::io(&vq, e))?;
        for entry in fs::read_dir(&vq_source).map_err(|e| Error::io(&vq_source, e))? {
            let entry = entry.map_err(|e| Error::io(&vq_source, e))?;
            if entry.path().is_file() {
                copy(&entry.path(), &vq.join(entry.file_name()))?;
            }
        }
        Ok(())
    })
}

/// Copies `from` to `to` and flushes it to disk.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = fs::read(from).map_err(|e| Error::io(from, e))?;
    write_synced(to, &bytes)
}
