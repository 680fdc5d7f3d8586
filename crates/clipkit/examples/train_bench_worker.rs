//! Timing worker for `tools/bench_train_vs_torch.py`: loads a model folder's weights as
//! trainable parameters, then times full training steps on request (forward of both towers,
//! contrastive loss, backward, gradient clipping and an AdamW update), so a driver can
//! interleave clipkit and PyTorch in one run.
//!
//! ```text
//! cargo build --release --example train_bench_worker
//! RAYON_NUM_THREADS=2 target/release/examples/train_bench_worker --model DIR --tokens 16
//! ```
//!
//! Protocol (one command per line on stdin, one answer line on stdout, flushed):
//! - at start-up: `ready parameters=<count> image_size=<S>`
//! - `train B N` → one untimed warm-up step, then N timed steps on a fixed batch of B
//!   pseudo-random images and B texts of `--tokens` tokens; answers the elapsed seconds and
//!   the last loss: `<seconds> <loss>`.
//! - `quit` (or end of input) → exit. Malformed commands answer `error <message>`.

use std::error::Error;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clipkit::config::ClipConfig;
use clipkit::train::{train_step, AdamW, AdamWConfig, Batch, Parameters};

type BoxResult<T> = Result<T, Box<dyn Error>>;

struct Options {
    model: PathBuf,
    tokens: usize,
}

fn options() -> BoxResult<Options> {
    let mut model = None;
    let mut tokens = 16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--tokens" => tokens = args.next().ok_or("--tokens needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(Options {
        model: model.ok_or("--model DIR is required")?,
        tokens,
    })
}

/// A fixed pseudo-random batch: pixels in [-1, 1) and ids start, ordinary ids, end.
fn batch(config: &ClipConfig, b: usize, tokens: usize) -> BoxResult<Batch> {
    let s = config.vision_config.image_size;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let pixels: Vec<f32> = (0..b * 3 * s * s)
        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    let text = &config.text_config;
    let ordinary = text.bos_token_id.min(text.eos_token_id).max(1) as u64;
    let ids = (0..b)
        .map(|_| {
            let mut row = vec![text.bos_token_id];
            row.extend((2..tokens).map(|_| (next() % ordinary) as u32));
            row.push(text.eos_token_id);
            row
        })
        .collect();
    Ok(Batch {
        pixels: Tensor::from_vec(pixels, (b, 3, s, s), &Device::Cpu)?,
        ids,
        also_true: Vec::new(),
    })
}

/// Batch shards trained in parallel: one per thread.
fn shards() -> usize {
    rayon::current_num_threads()
}

fn main() -> BoxResult<()> {
    clipkit::allocator::keep_freed_memory();
    let options = options()?;
    let config = clipkit::model_folder::read_config(&options.model)?;
    let parameters = Parameters::from_checkpoint(&options.model, &config)?;
    let mut optimizer = AdamW::new(parameters.trainable(), AdamWConfig::default())?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready parameters={} image_size={}",
        parameters.count(),
        config.vision_config.image_size
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["quit"] => break,
            ["train", b, n] => match (b.parse::<usize>(), n.parse::<usize>()) {
                (Ok(b), Ok(n)) if b > 0 && n > 0 => {
                    let batch = batch(&config, b, options.tokens)?;
                    train_step(&parameters, &mut optimizer, &batch, 1e-4, shards())?;
                    let start = Instant::now();
                    let mut loss = 0.0;
                    for _ in 0..n {
                        loss =
                            train_step(&parameters, &mut optimizer, &batch, 1e-4, shards())?.loss;
                    }
                    format!("{} {loss}", start.elapsed().as_secs_f64())
                }
                _ => "error batch and count must be positive integers".to_string(),
            },
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}
