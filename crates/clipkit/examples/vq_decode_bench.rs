//! Times `VqModel::decode` (and decode + backward to the latent, as the `vqgan` drawer runs
//! it) for the VQGAN f16 architecture VQGAN+CLIP uses (taming's ImageNet 16384 config:
//! ch 128, ch_mult 1,1,2,2,4, two residual blocks, attention at 16 px, 256-wide codes),
//! random weights, one 256 × 256 image (16 × 16 latent).
//!
//! `cargo run --release -p clipkit --example vq_decode_bench -- [REPEATS]`; the PyTorch side
//! is `tools/bench_vq_decode.py`. Prints one JSON line.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use clipkit::model::vq::{VqConfig, VqModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let config = VqConfig::from_json(
        r#"{"_class_name": "VQModel", "block_out_channels": [128, 128, 256, 256, 512],
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                                 "DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
            "up_block_types": ["AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                               "UpDecoderBlock2D", "UpDecoderBlock2D"],
            "layers_per_block": 2, "latent_channels": 256, "vq_embed_dim": 256,
            "num_vq_embeddings": 16384, "sample_size": 256}"#,
        std::path::Path::new("(built-in VQGAN f16 config)"),
    )?;
    let varmap = VarMap::new();
    let model = VqModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )?;
    let (d, h, w) = model.latent_shape(256, 256)?;
    let latent = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, d, h, w), &Device::Cpu)?)?;
    let mut decode_s = f64::MAX;
    let mut backward_s = f64::MAX;
    for _ in 0..repeats {
        let started = Instant::now();
        let image = model.decode(latent.as_tensor())?;
        image.sum_all()?.to_scalar::<f32>()?;
        decode_s = decode_s.min(started.elapsed().as_secs_f64());
        eprintln!("decode: {:.3} s", started.elapsed().as_secs_f64());
        let started = Instant::now();
        let image = model.decode(latent.as_tensor())?;
        let grads = image.sqr()?.mean_all()?.backward()?;
        grads
            .get(latent.as_tensor())
            .ok_or("no gradient")?
            .sum_all()?
            .to_scalar::<f32>()?;
        backward_s = backward_s.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{{\"impl\": \"clipkit\", \"threads\": {}, \"decode_s\": {decode_s:.4}, \"decode_backward_s\": {backward_s:.4}}}",
        rayon::current_num_threads()
    );
    Ok(())
}
