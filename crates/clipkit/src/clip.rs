//! [`Clip`]: a loaded model folder — network, tokenizer and preprocessing — and the
//! HuggingFace-style API on top of it.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};
use image::RgbImage;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image::{load_rgb, PreprocessConfig, DEFAULT_MAX_PIXELS};
use crate::model::{Architecture, ClipNetwork, LoadOptions};
use crate::model_folder::{self, ModelParts};
use crate::tokenizer::{ClipTokenizer, Tokenized};

/// Texts or images embedded per forward pass unless set otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// A CLIP model ready to embed images and texts.
pub struct Clip {
    network: ClipNetwork,
    tokenizer: ClipTokenizer,
    preprocess: PreprocessConfig,
    architecture: Architecture,
    dir: PathBuf,
    batch_size: usize,
    max_pixels: u64,
}

/// Similarity logits between a set of images and a set of texts.
#[derive(Debug, Clone)]
pub struct Logits {
    /// (images, texts): `logit_scale · cos(image, text)`.
    pub logits_per_image: Tensor,
    /// (texts, images): the transpose of `logits_per_image`.
    pub logits_per_text: Tensor,
}

impl Logits {
    /// Softmax of `logits_per_image` over texts: for each image, a distribution over texts.
    pub fn probs(&self) -> Result<Tensor> {
        Ok(candle_nn::ops::softmax_last_dim(&self.logits_per_image)?)
    }
}

impl Clip {
    /// Loads a model: a HuggingFace CLIP model folder (`config.json`, `model.safetensors` or
    /// its shards, `tokenizer.json` or `vocab.json` + `merges.txt`,
    /// `preprocessor_config.json`), an open_clip folder (`open_clip_config.json`) or an
    /// OpenAI checkpoint file (`RN50.pt`, `ViT-B-32.pt`, a state dict `.bin`), with a ViT or
    /// ModifiedResNet image tower (see [`model_folder::read_model`]). The same as [`Clip::load_with`] with [`LoadOptions::default()`]: packed weights, for
    /// inference.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// Loads a model folder as [`Clip::load`] does, its weights held as `options` say; with
    /// [`LoadOptions::input_gradients`], [`Clip::image_features`] and the `embed_pixels`
    /// path are differentiable with respect to their pixel input.
    ///
    /// A [`LoadOptions::precision`] other than fp32 with [`LoadOptions::input_gradients`] is
    /// an [`Error::InvalidArgument`]: lower precisions are for inference.
    pub fn load_with(dir: &Path, options: LoadOptions) -> Result<Self> {
        if options.input_gradients && options.precision != crate::model::Precision::Fp32 {
            return Err(Error::InvalidArgument(format!(
                "precision {} is for inference: input_gradients needs fp32 weights",
                options.precision
            )));
        }
        let ModelParts {
            architecture,
            preprocess,
            tokenizer,
            weights,
        } = model_folder::read_model(dir)?;
        let cache = options
            .packed_cache
            .map(|cache| cache.begin(&weights, &architecture, options));
        // The tokenizer is parsed while the weights are read and packed.
        let (network, tokenizer) = rayon::join(
            || ClipNetwork::build(weights.var_builder(), &architecture, options),
            || tokenizer.read(),
        );
        if let Some(cache) = &cache {
            weights.mark_served(cache.served());
        }
        // Report every tensor problem at once before any error from building the network.
        weights.finish()?;
        let network = network?;
        if let Some(cache) = cache {
            cache.finish();
        }
        Ok(Clip {
            network,
            tokenizer: tokenizer?,
            preprocess,
            architecture,
            dir: dir.to_path_buf(),
            batch_size: DEFAULT_BATCH_SIZE,
            max_pixels: DEFAULT_MAX_PIXELS,
        })
    }

    /// Sets how many images or texts go through the network at once (default 32, at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the largest image, in pixels, that [`Clip::load_image`] decodes (default 100 M).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The network's shape: text tower, image tower (ViT or ModifiedResNet), embedding size.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Side of the square image the model takes, in pixels.
    pub fn image_size(&self) -> usize {
        self.architecture.image_size()
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The folder (or checkpoint file) the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dimension of the shared embedding space.
    pub fn embedding_dim(&self) -> usize {
        self.architecture.projection_dim
    }

    /// exp(logit_scale): the multiplier of cosine similarities.
    pub fn logit_scale(&self) -> Result<f32> {
        Ok(self.network.logit_scale()?)
    }

    /// Decodes an image file into upright 8-bit RGB (see [`crate::image::decode`]).
    pub fn load_image(&self, path: &Path) -> Result<RgbImage> {
        load_rgb(path, self.max_pixels)
    }

    /// Preprocesses one image into the model's input, (3, S, S).
    pub fn preprocess(&self, image: &RgbImage) -> Result<Tensor> {
        let (data, h, w) = self.preprocess.apply(image)?;
        Ok(Tensor::from_vec(data, (3, h, w), &Device::Cpu)?)
    }

    /// Unit-length embeddings (N, E) of images, preprocessed in parallel, embedded in batches.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Tensor> {
        self.embed_each(images, |image| self.preprocess(image), |_| {})
    }

    /// Unit-length embeddings (N, E) of image files, read and preprocessed in parallel one
    /// batch at a time (so memory holds one batch of decoded images, not all of them).
    /// `progress` is called with the number of files done after each batch.
    pub fn embed_image_files<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        progress: impl FnMut(usize),
    ) -> Result<Tensor> {
        let pixels_of = |path: &P| self.preprocess(&self.load_image(path.as_ref())?);
        self.embed_each(paths, pixels_of, progress)
    }

    /// Embeds `items`, one batch at a time: `pixels_of` turns each item of a batch into
    /// pixels (3, S, S) in parallel, the next batch while this one is embedded by
    /// [`Clip::embed_pixel_list`]. The first error stops it. (N, E)
    fn embed_each<T: Sync>(
        &self,
        items: &[T],
        pixels_of: impl Fn(&T) -> Result<Tensor> + Sync,
        mut progress: impl FnMut(usize),
    ) -> Result<Tensor> {
        let mut parts = Vec::new();
        let mut done = 0;
        crate::prefetch::prefetched(
            items.chunks(self.batch_size),
            |chunk| chunk.par_iter().map(&pixels_of).collect::<Result<Vec<_>>>(),
            |pixels| {
                let pixels = pixels?;
                parts.push(self.embed_pixel_list(&pixels)?);
                done += pixels.len();
                progress(done);
                Ok(())
            },
        )?;
        self.concat(parts)
    }

    /// Unit-length embeddings (N, E) of preprocessed images, each (3, S, S), stacked and
    /// embedded [`Clip::with_batch_size`] at a time: the one batched image-embedding path,
    /// which every caller with several images goes through.
    pub fn embed_pixel_list(&self, pixels: &[Tensor]) -> Result<Tensor> {
        let parts = pixels
            .chunks(self.batch_size)
            .map(|chunk| self.embed_pixels(&Tensor::stack(chunk, 0)?)) // (B, 3, S, S) → (B, E)
            .collect::<Result<Vec<_>>>()?;
        self.concat(parts)
    }

    /// Projected image features (B, E), not normalised, of preprocessed pixels (B, 3, S, S)
    /// with S = [`Clip::image_size`].
    ///
    /// On a model loaded with [`LoadOptions::input_gradients`], the result is differentiable
    /// with respect to `pixels` (a [`candle_core::Var`], say), through the frozen weights:
    /// backward from a loss built on it yields d loss / d pixels. Build such pixels from an
    /// image tensor in [0, 1] with [`crate::image::tensor`] and [`Clip::preprocess_config`].
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.network.image_features(pixels)?)
    }

    /// How the model expects images to be resized, cropped and normalised.
    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// Unit-length embeddings (B, E) of already preprocessed pixels (B, 3, S, S), in one
    /// forward pass.
    pub fn embed_pixels(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(l2_normalize(&self.network.image_features(pixels)?)?)
    }

    /// Unit-length embeddings (N, E) of texts, tokenized and embedded in batches.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        let tokens: Vec<Tokenized> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t.as_ref()))
            .collect::<Result<_>>()?;
        let ids: Vec<Vec<u32>> = tokens.into_iter().map(|t| t.ids).collect();
        self.embed_token_ids(&ids)
    }

    /// Unit-length embeddings (N, E) of tokenized texts (each at most the context length).
    pub fn embed_token_ids(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in ids.chunks(self.batch_size) {
            let padded = pad_to_longest(chunk);
            parts.push(l2_normalize(&self.network.text_features(&padded)?)?);
        }
        self.concat(parts)
    }

    /// `logit_scale · cos` between unit-length image (N, E) and text (M, E) embeddings.
    pub fn logits(&self, image_embeds: &Tensor, text_embeds: &Tensor) -> Result<Logits> {
        let scale = f64::from(self.logit_scale()?);
        let logits_per_image = (image_embeds.matmul(&text_embeds.t()?)? * scale)?;
        let logits_per_text = logits_per_image.t()?.contiguous()?;
        Ok(Logits {
            logits_per_image,
            logits_per_text,
        })
    }

    fn concat(&self, mut parts: Vec<Tensor>) -> Result<Tensor> {
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.embedding_dim()),
                candle_core::DType::F32,
                &Device::Cpu,
            )?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// Rows scaled to unit L2 norm: (N, E) → (N, E).
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// Pads rows with zeros to the longest row. Attention is causal and pooling happens at or
/// before the end token, so the padding never reaches the result.
fn pad_to_longest(rows: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            row.resize(longest, 0);
            row
        })
        .collect()
}
