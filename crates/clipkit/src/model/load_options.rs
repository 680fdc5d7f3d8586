//! How a network holds its weights: [`LoadOptions`], taken by
//! [`Clip::load_with`](crate::Clip::load_with) and [`ClipNetwork::new`](super::ClipNetwork::new).

use super::packed_cache::PackedCache;
use super::precision::Precision;

/// How the weights of the linear maps (every matrix product of both towers) sit in memory.
///
/// Weights are f32 in memory whatever the checkpoint stores (f32, f16 or bf16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// Re-laid once at load time for clipkit's AVX2/FMA matrix kernel, the fastest for
    /// inference (the default). On a CPU without AVX2 and FMA, and for weights that are
    /// candle variables (training), the weights stay [`WeightFormat::Plain`].
    #[default]
    Packed,
    /// Kept as the checkpoint's (out, in) tensors and multiplied with candle's matmul.
    Plain,
}

/// Options for loading a model; `LoadOptions::default()` is what [`crate::Clip::load`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions<'a> {
    /// How linear-map weights are held (default [`WeightFormat::Packed`]).
    pub weight_format: WeightFormat,
    /// Whether gradients may flow through the frozen weights to the input, so that
    /// `image features → loss → backward` yields d loss / d pixels (default `false`).
    ///
    /// The weights themselves never receive gradients. With packed weights this keeps a
    /// second, transposed packing of every matrix for the backward pass (twice the weight
    /// memory); without it, packed weights refuse inputs that track gradients with an error
    /// that names this option. Plain weights are differentiable either way.
    pub input_gradients: bool,
    /// The number format of the linear maps' weights (default [`Precision::Fp32`]: the
    /// checkpoint's values). bf16 and int8 are for inference: they refuse
    /// `input_gradients` and weights that train. Where the CPU lacks the precision's
    /// kernel (bf16 needs AVX-512 BF16, w8a8 AVX-512 VNNI, int8 AVX2), the weights are
    /// rounded or quantised the same way and held as f32, so results match, more slowly.
    pub precision: Precision,
    /// A folder keeping packed weights between loads (default `None`: weights are packed at
    /// every load). With one, [`crate::Clip::load_with`] maps a large model's packed fp32
    /// weights from the file an earlier load wrote, instead of packing them again (see
    /// [`PackedCache`]). The `clipkit` binary uses [`crate::paths::packed_cache_dir`].
    pub packed_cache: Option<&'a PackedCache>,
}

impl LoadOptions<'_> {
    /// The options a trainer's network is built with: plain weights (they are candle
    /// variables, which are never packed) through which gradients flow.
    pub const TRAINING: LoadOptions<'static> = LoadOptions {
        weight_format: WeightFormat::Plain,
        input_gradients: true,
        precision: Precision::Fp32,
        packed_cache: None,
    };
}
