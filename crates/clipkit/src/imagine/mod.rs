//! Text to image with a trained generator (`clipkit imagine`): the transformer samples code
//! grids after the prompt's tokens ([`sample`]), the VQ decoder turns them into images, and a
//! CLIP model ranks them by similarity to the prompt, as DALL·E reranked its samples.

pub mod generation_config;
pub mod install;
pub mod prompt_set;
pub mod sample;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use serde::Serialize;

pub use generation_config::{GenerationConfig, GENERATION_CONFIG_FILE};
pub use install::{install_generator, INSTALLED_VQ_DIR};
pub use prompt_set::{draw_prompt_set, write_numbered, DrawnSet};
pub use sample::{sample_codes, SamplingOptions};

use crate::clip::Clip;
use crate::error::{Error, Result};
use crate::generate::output::to_rgb_image;
use crate::model::imagine::ImagineModel;
use crate::model::vq::VqModel;
use crate::model_folder::atomic_dir::{replace_dir, write_synced};
use crate::model_folder::{read_tokenizer, TOKENIZER_FILE};
use crate::tokenizer::ClipTokenizer;
use crate::train::imagine::caption_ids;

/// A generator folder loaded with its tokenizer and the VQ model it was trained over.
pub struct Generator {
    dir: PathBuf,
    model: ImagineModel,
    tokenizer: ClipTokenizer,
    vq: VqModel,
}

impl Generator {
    /// Loads the generator folder `dir` and its VQ model: `vq` when given, else the folder
    /// its config names; the VQ weights must be the ones it was trained with.
    pub fn load(dir: &Path, vq: Option<&Path>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir.to_path_buf(),
                hint: "no generator folder here; train one with `clipkit train imagine`".into(),
            });
        }
        let model = ImagineModel::load(dir)?;
        let config = model.config();
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        if !tokenizer_path.is_file() {
            return Err(Error::MissingFile {
                path: tokenizer_path,
                hint: "a generator folder holds its caption tokenizer".into(),
            });
        }
        let tokenizer = read_tokenizer(dir, config.text_length)?;
        let vq_dir = vq.unwrap_or(&config.vq.path);
        config.vq.check(vq_dir)?;
        let vq = VqModel::load(vq_dir)?;
        if vq.config().num_vq_embeddings != config.codebook_size {
            return Err(Error::InvalidArgument(format!(
                "{}: {} codes, but the generator predicts {}",
                vq_dir.display(),
                vq.config().num_vq_embeddings,
                config.codebook_size
            )));
        }
        Ok(Generator {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            vq,
        })
    }

    /// The generator folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The words of `prompt` the generator's tokenizer cannot represent (see
    /// [`ClipTokenizer::unknown_words`]).
    pub fn unknown_words(&self, prompt: &str) -> Result<Vec<String>> {
        self.tokenizer.unknown_words(prompt)
    }

    /// Samples images for `prompt` (empty refused), in sample order.
    pub fn generate(&self, prompt: &str, options: &SamplingOptions) -> Result<Vec<RgbImage>> {
        let codes = self.sample(prompt, options)?;
        self.decode(&codes)
    }

    /// Samples code grids for `prompt` (empty refused), in sample order.
    pub fn sample(&self, prompt: &str, options: &SamplingOptions) -> Result<Vec<Vec<u32>>> {
        if prompt.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "the prompt is empty; describe the image to draw".into(),
            ));
        }
        let config = self.model.config();
        let caption = caption_ids(
            &self.tokenizer,
            prompt,
            config.text_length,
            config.pad_token_id,
        )?;
        let empty = caption_ids(&self.tokenizer, "", config.text_length, config.pad_token_id)?;
        sample_codes(&self.model, &caption, &empty, options)
    }

    /// Decodes code grids (each h·w codes, row by row) to images.
    pub fn decode(&self, codes: &[Vec<u32>]) -> Result<Vec<RgbImage>> {
        let [h, w] = self.model.config().grid;
        let flat: Vec<u32> = codes.concat();
        let indices = Tensor::from_vec(flat, (codes.len(), h, w), &Device::Cpu)?;
        let latents = self.vq.quantizer().lookup(&indices)?; // (N, D, h, w)
        let images = self.vq.decode_quantized(&latents)?; // (N, 3, H, W) in [-1, 1]
        let images = ((images.to_dtype(DType::F32)? + 1.0)? / 2.0)?;
        (0..codes.len())
            .map(|i| to_rgb_image(&images.narrow(0, i, 1)?))
            .collect()
    }
}

/// Cosine similarities of `images` to `prompt` under `clip`, in image order.
pub fn clip_similarities(clip: &Clip, prompt: &str, images: &[RgbImage]) -> Result<Vec<f32>> {
    let image_embeds = clip.embed_images(images)?; // (N, E), unit rows
    let text_embeds = clip.embed_texts(&[prompt])?; // (1, E)
    Ok(image_embeds
        .matmul(&text_embeds.t()?)?
        .squeeze(1)?
        .to_vec1::<f32>()?)
}

/// One image of a ranked output folder.
#[derive(Debug, Clone, Serialize)]
pub struct RankedImage {
    /// Its file in the folder (`000.png` is the best).
    pub file: String,
    /// Which sample it was (its draw order).
    pub sample: usize,
    /// Cosine similarity to the prompt under the reranking model.
    pub score: f32,
}

/// `scores.json` of an output folder.
#[derive(Debug, Clone, Serialize)]
pub struct RankedOutput {
    /// The prompt.
    pub prompt: String,
    /// The generator folder.
    pub generator: PathBuf,
    /// The reranking CLIP model folder.
    pub rerank_model: PathBuf,
    /// Seed of the draws.
    pub seed: u64,
    /// Sampling temperature.
    pub temperature: f64,
    /// Top-k, if any.
    pub top_k: Option<usize>,
    /// Classifier-free guidance scale.
    pub guidance: f64,
    /// The images, best first.
    pub images: Vec<RankedImage>,
}

/// An error unless `dir` may be (re)written by [`write_ranked`]: it is absent, empty, or an
/// earlier output (it holds `scores.json`). Any other folder is refused rather than replaced.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    if !dir.exists() || dir.join(SCORES_FILE).is_file() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{} exists and is not an earlier `clipkit imagine` output (no {SCORES_FILE}); choose a \
         new folder for --out",
        dir.display()
    )))
}

/// The scores file of an output folder.
pub const SCORES_FILE: &str = "scores.json";

/// Orders `images` by `scores`, best first (ties keep sample order), and writes them as
/// `000.png`, `001.png`, … with `scores.json` into `dir`, atomically: the folder is replaced
/// only once every file is written. `dir` must pass [`check_output_dir`].
pub fn write_ranked(
    dir: &Path,
    images: &[RgbImage],
    scores: &[f32],
    mut output: RankedOutput,
) -> Result<RankedOutput> {
    check_output_dir(dir)?;
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    output.images = order
        .iter()
        .enumerate()
        .map(|(rank, &sample)| RankedImage {
            file: format!("{rank:03}.png"),
            sample,
            score: scores[sample],
        })
        .collect();
    let json = serde_json::to_vec_pretty(&output).map_err(|e| Error::Training(e.to_string()))?;
    replace_dir(dir, |staging| {
        for ranked in &output.images {
            let path = staging.join(&ranked.file);
            images[ranked.sample]
                .save_with_format(&path, image::ImageFormat::Png)
                .map_err(|e| Error::Image {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        }
        write_synced(&staging.join(SCORES_FILE), &json)
    })?;
    Ok(output)
}
