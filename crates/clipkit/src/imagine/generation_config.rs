//! The sampling a generator folder recommends, in `generation_config.json` as transformers'
//! model folders carry theirs: `clipkit imagine` samples with it wherever a flag does not
//! say otherwise, so a generator is drawn from the way it was judged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SamplingOptions;
use crate::error::{Error, Result};
use crate::model_folder::atomic_dir::write_synced;

/// The file in a generator folder that holds its [`GenerationConfig`].
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// How to sample a generator when nothing else is said. The default is the model's own
/// distribution: temperature 1, every code, no guidance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Divides the logits before the softmax ([`SamplingOptions::temperature`]).
    pub temperature: f64,
    /// Keeps only the `k` most likely codes ([`SamplingOptions::top_k`]; `None`: all).
    pub top_k: Option<usize>,
    /// Classifier-free guidance scale ([`SamplingOptions::guidance`]; 1: none). Only a
    /// generator trained with captions dropped has the unconditional half it needs.
    #[serde(rename = "guidance_scale")]
    pub guidance: f64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            temperature: 1.0,
            top_k: None,
            guidance: 1.0,
        }
    }
}

impl GenerationConfig {
    /// The sampling options of `samples` images from `seed` under this config.
    pub fn options(&self, samples: usize, seed: u64) -> SamplingOptions {
        SamplingOptions {
            samples,
            seed,
            temperature: self.temperature,
            top_k: self.top_k,
            guidance: self.guidance,
        }
    }

    /// The config of the generator folder `dir`: its `generation_config.json`, or the
    /// default when there is none (nor, then, any folder). A file that does not parse, or whose values are
    /// out of range, is an error naming it.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(GENERATION_CONFIG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let config: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Config {
                path: path.clone(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        config.options(1, 0).validate().map_err(|e| Error::Config {
            path,
            field: "(values)".into(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// Writes this config into the generator folder `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Training(e.to_string()))?;
        write_synced(&dir.join(GENERATION_CONFIG_FILE), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_config_reads_back_and_a_folder_without_one_reads_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            GenerationConfig::read(dir.path()).unwrap(),
            GenerationConfig::default()
        );
        let config = GenerationConfig {
            temperature: 0.7,
            top_k: Some(8),
            guidance: 3.0,
        };
        config.write(dir.path()).unwrap();
        assert_eq!(GenerationConfig::read(dir.path()).unwrap(), config);
        let text = std::fs::read_to_string(dir.path().join(GENERATION_CONFIG_FILE)).unwrap();
        assert!(text.contains("\"guidance_scale\": 3.0"), "{text}");
        let options = config.options(4, 9);
        assert_eq!(
            (
                options.samples,
                options.seed,
                options.top_k,
                options.guidance
            ),
            (4, 9, Some(8), 3.0)
        );
    }

    #[test]
    fn a_malformed_or_out_of_range_config_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(GENERATION_CONFIG_FILE);
        for bad in [
            "{\"temperature\": 1.0",
            "{\"temperature\": 0.0, \"top_k\": null, \"guidance_scale\": 1.0}",
            "{\"temperature\": 1.0, \"top_k\": 0, \"guidance_scale\": 1.0}",
        ] {
            std::fs::write(&path, bad).unwrap();
            let message = GenerationConfig::read(dir.path()).unwrap_err().to_string();
            assert!(message.contains(GENERATION_CONFIG_FILE), "{bad}: {message}");
        }
        std::fs::write(&path, "{\"temperature\": \"hot\"}").unwrap();
        let message = GenerationConfig::read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("field `temperature`"), "{message}");
        assert_eq!(
            GenerationConfig::read(&dir.path().join("absent")).unwrap(),
            GenerationConfig::default(),
            "no folder reads as no file"
        );
    }
}
