//! Timing worker for `tools/bench_vs_torch.py`: loads a model once, then times forward passes
//! on request, so a driver can interleave clipkit and PyTorch measurements in one run.
//!
//! Build and run:
//!
//! ```text
//! cargo build --release --example bench_worker
//! RAYON_NUM_THREADS=2 target/release/examples/bench_worker --model target/bench-model \
//!     [--precision fp32|bf16|int8] [--packed-cache DIR]
//! ```
//!
//! Thread count: candle's CPU kernels and rayon both read `RAYON_NUM_THREADS`, so set it in the
//! environment before the process starts.
//!
//! Protocol (one command per line on stdin, one answer line on stdout, flushed):
//!
//! - at start-up, after loading: `ready load_s=<seconds> threads=<rayon threads> image_size=<S>
//!   kernel=<avx512|avx2|portable> precision=<fp32|bf16|int8> cpu=<features,comma-separated>`
//! - `image B N` → one untimed warm-up pass, then N timed passes of `embed_pixels` on a fixed
//!   (B, 3, S, S) batch of pseudo-random pixels; answers the elapsed seconds of the N passes.
//! - `text B N` → the same for `embed_token_ids` on B rows of exactly 77 tokens
//!   (start token, 75 pseudo-random ordinary ids, end token).
//! - `files DIR N` → one untimed warm-up, then N timed runs of `embed_image_files` over every
//!   `.jpg` in DIR (sorted): decoding and preprocessing overlapped with the forward passes,
//!   in batches of 32, as `clipkit embed` and `clipkit index` run them; answers the seconds.
//! - `quit` (or end of input) → exit.
//!
//! The model runs at clipkit's default batch size (32): an `image` command is one forward
//! pass whatever its B, a `text` command's B is at most 32.
//!
//! Malformed commands answer `error <message>` and the worker keeps going.

use std::error::Error;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use clipkit::model::{LoadOptions, PackedCache, Precision};
use clipkit::{Clip, DEFAULT_BATCH_SIZE};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// CLIP's start- and end-of-text ids and the context length the text workload fills.
const BOS: u32 = 49406;
const EOS: u32 = 49407;
const TEXT_TOKENS: usize = 77;

/// A tiny deterministic generator (xorshift64*), so the example needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo)) as u32
    }
}

/// (B, 3, S, S) pixels roughly like normalised images: uniform in [-1.8, 2.1].
fn random_pixels(batch: usize, size: usize, rng: &mut Rng) -> BoxResult<Tensor> {
    let data: Vec<f32> = (0..batch * 3 * size * size)
        .map(|_| rng.next_f32() * 3.9 - 1.8)
        .collect();
    Ok(Tensor::from_vec(
        data,
        (batch, 3, size, size),
        &Device::Cpu,
    )?)
}

/// B rows of exactly 77 ids: start token, 75 ordinary ids, end token.
fn random_token_rows(batch: usize, rng: &mut Rng) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|_| {
            let mut row = Vec::with_capacity(TEXT_TOKENS);
            row.push(BOS);
            row.extend((0..TEXT_TOKENS - 2).map(|_| rng.range_u32(1000, 40000)));
            row.push(EOS);
            row
        })
        .collect()
}

/// One warm-up call, then `n` timed calls; returns the seconds the timed calls took.
fn time_passes(n: usize, mut pass: impl FnMut() -> BoxResult<Tensor>) -> BoxResult<f64> {
    pass()?; // warm-up: first-touch allocations, page faults on the mapped weights
    let start = Instant::now();
    for _ in 0..n {
        let out = pass()?;
        // Touch the result so nothing can be skipped.
        std::hint::black_box(out.dims());
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The `.jpg` files of `dir`, sorted; an error when there are none.
fn jpegs_in(dir: &Path) -> BoxResult<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")));
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no .jpg files in {}", dir.display()).into());
    }
    Ok(paths)
}

const USAGE: &str =
    "usage: bench_worker --model DIR [--precision fp32|bf16|int8] [--packed-cache DIR]";

/// The worker's command line.
struct Args {
    model: PathBuf,
    precision: Precision,
    /// A [`PackedCache`] folder, as the CLI keeps one: with a warm cache, the load maps the
    /// packed weights instead of packing them.
    packed_cache: Option<PathBuf>,
}

fn parse_args() -> BoxResult<Args> {
    let mut args = std::env::args().skip(1);
    let mut model = None;
    let mut precision = Precision::default();
    let mut packed_cache = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--precision" => {
                precision = args.next().ok_or("--precision needs a value")?.parse()?;
            }
            "--packed-cache" => {
                let dir = args.next().ok_or("--packed-cache needs a folder")?;
                packed_cache = Some(PathBuf::from(dir));
            }
            "-h" | "--help" => {
                eprintln!(
                    "{USAGE}   (commands on stdin: image B N | text B N | files DIR N | quit)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {USAGE}").into()),
        }
    }
    Ok(Args {
        model: model.ok_or("missing --model DIR")?,
        precision,
        packed_cache,
    })
}

/// Parses `B N` from the rest of a command line.
fn parse_batch_and_count(rest: &[&str]) -> BoxResult<(usize, usize)> {
    match rest {
        [b, n] => {
            let b: usize = b.parse()?;
            let n: usize = n.parse()?;
            if b == 0 || n == 0 {
                return Err("B and N must be at least 1".into());
            }
            Ok((b, n))
        }
        _ => Err("expected two numbers: B N".into()),
    }
}

fn run_command(clip: &Clip, line: &str, rng: &mut Rng) -> BoxResult<Option<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Some("error empty command".into())),
        ["quit"] => Ok(None),
        ["image", rest @ ..] => {
            let (b, n) = parse_batch_and_count(rest)?;
            let pixels = random_pixels(b, clip.image_size(), rng)?;
            let secs = time_passes(n, || Ok(clip.embed_pixels(&pixels)?))?;
            Ok(Some(format!("{secs:.6}")))
        }
        ["text", rest @ ..] => {
            let (b, n) = parse_batch_and_count(rest)?;
            if b > DEFAULT_BATCH_SIZE {
                return Err(
                    format!("text B is at most {DEFAULT_BATCH_SIZE}, one forward pass").into(),
                );
            }
            let ids = random_token_rows(b, rng);
            let secs = time_passes(n, || Ok(clip.embed_token_ids(&ids)?))?;
            Ok(Some(format!("{secs:.6}")))
        }
        ["files", dir, n] => {
            let n: usize = n.parse()?;
            let paths = jpegs_in(Path::new(dir))?;
            let secs = time_passes(n, || Ok(clip.embed_image_files(&paths, |_| {})?))?;
            Ok(Some(format!("{secs:.6}")))
        }
        [other, ..] => Ok(Some(format!("error unknown command {other:?}"))),
    }
}

fn main() -> BoxResult<()> {
    clipkit::allocator::keep_freed_memory();
    let Args {
        model,
        precision,
        packed_cache,
    } = parse_args()?;
    // As the CLI does: a forced kernel this CPU cannot run is an error here, where the
    // library would warn and fall back, and a benchmark would time the wrong kernel.
    clipkit::Kernel::from_env().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let cache = packed_cache.map(PackedCache::new);
    let options = LoadOptions {
        precision,
        packed_cache: cache.as_ref(),
        ..LoadOptions::default()
    };
    let clip = Clip::load_with(&model, options)?;
    let load_s = start.elapsed().as_secs_f64();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "ready load_s={load_s:.6} threads={} image_size={} kernel={} precision={precision} cpu={}",
        rayon::current_num_threads(),
        clip.image_size(),
        clipkit::Kernel::active(),
        clipkit::model::cpu_features().join(",")
    )?;
    out.flush()?;

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match run_command(&clip, line.trim(), &mut rng) {
            Ok(Some(answer)) => answer,
            Ok(None) => break,
            Err(e) => format!("error {e}"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}
