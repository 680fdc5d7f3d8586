//! The `clipkit` command-line program: argument parsing and output only; the work is done
//! by the `clipkit` library.

mod argv;
mod commands;
mod progress;
mod report;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// CLIP on your CPU: embed images and texts, classify zero-shot, inspect preprocessing.
#[derive(Parser)]
#[command(name = "clipkit", version, about)]
struct Cli {
    /// Worker threads for tensor math and image decoding (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed images and texts into the shared space; with both, also print their logits.
    Embed(commands::embed::Args),
    /// Show the token ids of texts.
    Tokenize(commands::tokenize::Args),
    /// Classify images zero-shot against labels, with prompt templates.
    Classify(commands::classify::Args),
    /// Write an image's preprocessed pixel tensor as a NumPy .npy file.
    Preprocess(commands::preprocess::Args),
    /// Write data sets to files (the built-in shapes world).
    #[command(subcommand)]
    Data(commands::data::Command),
    /// Generate the shapes world, train a small CLIP on it (~10 min), evaluate it and make
    /// it the default model.
    Quickstart(commands::quickstart::Args),
    /// Train a CLIP contrastively (from scratch or fine-tuning); resumes an interrupted run.
    Train(commands::train::Args),
    /// Interpolate a base model and its fine-tuned version weight by weight (WiSE-FT).
    Merge(commands::merge::Args),
    /// Evaluate a model: zero-shot accuracy, retrieval recall, linear probes.
    #[command(subcommand)]
    Eval(commands::eval::Command),
    /// Score image–caption pairs: CLIPScore, RefCLIPScore with references, torchmetrics'.
    Score(commands::score::Args),
    /// Draw an image from a text prompt, guided by CLIP (VQGAN+CLIP / Pixray style).
    Generate(commands::generate::Args),
    /// Draw images from a text prompt with a trained text-to-image generator (DALL·E
    /// style), ranked by CLIP similarity to the prompt.
    Imagine(commands::imagine::Args),
    /// Index folders of images for search (incremental), or show the index with --status.
    Index(commands::index::Args),
    /// Find indexed images by text, by example image, or by a weighted mix.
    Search(commands::search::Args),
    /// List groups of near-duplicate images in the index.
    Dupes(commands::dupes::Args),
    /// Models by name and in other layouts: pull from the HuggingFace Hub into its cache,
    /// list the cache, convert an OpenAI CLIP `.pt` to a HuggingFace folder.
    #[command(subcommand)]
    Models(commands::models::Command),
    /// Serve the JSON API and the search page (127.0.0.1 by default).
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    clipkit::allocator::keep_freed_memory();
    // Built once per process; clap keeps version strings for the program's lifetime.
    let command = Cli::command().long_version(&*Box::leak(long_version().into_boxed_str()));
    let matches = command.clone().get_matches_from(argv::free_words_last(
        std::env::args_os().collect(),
        &command,
    ));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_on_closed_pipe();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLIPKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .without_time()
        .with_target(false)
        .init();
    // A kernel forced with CLIPKIT_KERNEL that is unknown or that this CPU cannot run is
    // refused here, before any work, rather than replaced silently.
    if let Err(e) = clipkit::Kernel::from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = set_threads(cli.threads) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Embed(args) => commands::embed::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Preprocess(args) => commands::preprocess::run(args),
        Command::Data(command) => commands::data::run(command),
        Command::Merge(args) => commands::merge::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Quickstart(args) => commands::quickstart::run(args),
        Command::Eval(command) => commands::eval::run(command),
        Command::Score(args) => commands::score::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Imagine(args) => commands::imagine::run(args),
        Command::Index(args) => commands::index::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Dupes(args) => commands::dupes::run(args),
        Command::Models(command) => commands::models::run(command),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a write to a closed pipe end the process the way it ends `ls` or `cat`
/// (`clipkit search cat | head -1`): silently, by the default action of SIGPIPE. Rust
/// ignores SIGPIPE, which turns that write into an error that `println!` reports as a
/// panic. Every write the commands make goes to stdout or stderr, and indexing and training
/// commit atomically, so stopping at any write loses nothing. The server keeps SIGPIPE
/// ignored: a client hanging up must not stop it.
fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// What `clipkit --version` prints: the version, then the CPU kernels in use and the CPU
/// features they were chosen from (`-V` prints the version alone).
fn long_version() -> String {
    let kernel = match clipkit::Kernel::from_env() {
        Ok(kernel) => kernel.to_string(),
        Err(e) => format!("none ({e})"),
    };
    format!(
        "{}\nkernel: {kernel} (detected: {}; set {} to amx, avx512, avx2 or portable to force one)\n\
         cpu features: {}",
        env!("CARGO_PKG_VERSION"),
        clipkit::Kernel::detect(),
        clipkit::model::KERNEL_ENV,
        clipkit::model::cpu_features().join(" ")
    )
}

/// Sizes the thread pool shared by candle's matrix products and our parallel loops.
fn set_threads(threads: Option<u16>) -> anyhow::Result<()> {
    let n = match threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // candle reads RAYON_NUM_THREADS for its matrix products; set it before any thread starts.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // candle's own pool for element-wise ops stays at one thread: clipkit parallelises those
    // itself (fused kernels, batch shards in training), and candle's spinning barrier pool
    // would compete with that for the cores.
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()?;
    Ok(())
}
