//! Timing worker for `tools/bench_resnet_vs_open_clip.py`: loads a ModifiedResNet tower
//! (RN50 shape) once, then times forward passes on request, so the driver can interleave
//! clipkit and open_clip measurements in one run.
//!
//! ```text
//! cargo build --release --example resnet_bench_worker
//! RAYON_NUM_THREADS=2 target/release/examples/resnet_bench_worker WEIGHTS.safetensors
//! ```
//!
//! `WEIGHTS.safetensors` holds the tower's state dict under `visual.` (float32). Protocol, one
//! line each way: at start-up `ready load_s=<seconds> threads=<rayon threads>`; `image B N` →
//! one untimed warm-up pass, then N timed passes on a fixed (B, 3, 224, 224) batch; answers
//! the elapsed seconds. `quit` or end of input exits; malformed commands answer `error …`.

use std::error::Error;
use std::io::{BufRead, Write};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clipkit::model::{ResNetConfig, ResNetTower};
use clipkit::LoadOptions;

type BoxResult<T> = Result<T, Box<dyn Error>>;

fn time(tower: &ResNetTower, batch: usize, passes: usize) -> BoxResult<f64> {
    let s = tower.config().image_size;
    let pixels = Tensor::randn(0f32, 1.0, (batch, 3, s, s), &Device::Cpu)?;
    tower.forward(&pixels)?;
    let start = Instant::now();
    for _ in 0..passes {
        tower.forward(&pixels)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> BoxResult<()> {
    let weights = std::env::args()
        .nth(1)
        .ok_or("usage: resnet_bench_worker WEIGHTS.safetensors")?;
    let start = Instant::now();
    // SAFETY: the benchmark's own weight file, not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu)? };
    let tower = ResNetTower::new(
        vb.pp("visual"),
        &ResNetConfig::rn50(),
        LoadOptions::default(),
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready load_s={:.3} threads={}",
        start.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["quit"] => break,
            ["image", b, n] => match (b.parse(), n.parse()) {
                (Ok(b), Ok(n)) => match time(&tower, b, n) {
                    Ok(seconds) => format!("{seconds:.6}"),
                    Err(e) => format!("error {e}"),
                },
                _ => format!("error bad numbers in `{line}`"),
            },
            _ => format!("error unknown command `{line}`"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}
