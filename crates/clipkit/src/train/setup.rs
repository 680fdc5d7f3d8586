//! Starting points of a run: a new model (preset or configuration, tokenizer fitted to the
//! captions) or an existing model folder to fine-tune.

use std::path::Path;

use super::loader::Preparation;
use super::parameters::Parameters;
use super::run::ModelAssets;
use crate::config::ClipConfig;
use crate::error::Result;
use crate::image::PreprocessConfig;
use crate::model_folder::{read_tokenizer, CONFIG_FILE};
use crate::tokenizer::{fit, FitOptions};

/// What a run starts from: the weights, the files that complete a model folder, and what the
/// data loader needs.
pub struct Start {
    /// Initial weights.
    pub parameters: Parameters,
    /// Configuration, preprocessing and tokenizer files of the model.
    pub assets: ModelAssets,
    /// Preprocessing and tokenizer for the loader.
    pub preparation: Preparation,
}

impl Start {
    /// A new model of shape `config`, with a tokenizer fitted to `captions` (its vocabulary
    /// sets the text tower's), OpenAI-style preprocessing at the config's image size, and
    /// weights initialised from `seed`.
    pub fn scratch<S: AsRef<str>>(
        mut config: ClipConfig,
        captions: &[S],
        seed: u64,
    ) -> Result<Self> {
        let fitted = fit(
            captions,
            &FitOptions {
                context_length: config.text_config.max_position_embeddings,
                ..FitOptions::default()
            },
        )?;
        fitted.configure(&mut config.text_config);
        config.validate(Path::new(CONFIG_FILE))?;
        let preprocess = PreprocessConfig::openai(config.vision_config.image_size as u32);
        Ok(Start {
            parameters: Parameters::init(&config, seed)?,
            preparation: Preparation {
                preprocess: preprocess.clone(),
                tokenizer: fitted.tokenizer,
            },
            assets: ModelAssets {
                config,
                preprocess,
                tokenizer: fitted.files,
            },
        })
    }

    /// The model in folder `dir`, to fine-tune.
    pub fn fine_tune(dir: &Path) -> Result<Self> {
        let assets = ModelAssets::from_model_dir(dir)?;
        let tokenizer = read_tokenizer(dir, assets.config.text_config.max_position_embeddings)?;
        Ok(Start {
            parameters: Parameters::from_checkpoint(dir, &assets.config)?,
            preparation: Preparation {
                preprocess: assets.preprocess.clone(),
                tokenizer,
            },
            assets,
        })
    }
}
