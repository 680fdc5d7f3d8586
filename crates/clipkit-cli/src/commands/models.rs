//! `clipkit models`: model checkpoints in other layouts. `convert` writes an OpenAI-layout
//! ViT checkpoint (a `clip.load` TorchScript `.pt`, or a `torch.save` state dict) as a
//! HuggingFace model folder that transformers' `CLIPModel.from_pretrained` and clipkit load.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::model_folder::openai_layout::read_openai_checkpoint;
use clipkit::model_folder::write_model_folder;

/// `clipkit models` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Convert a checkpoint to a model folder: an OpenAI CLIP ViT `.pt` (TorchScript, as
    /// `clip.load` downloads it) or `.bin`/`.pth` state dict to a HuggingFace folder.
    Convert(ConvertArgs),
}

/// The layouts `convert` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Layout {
    /// A transformers `CLIPModel` folder: config.json, model.safetensors,
    /// preprocessor_config.json, vocab.json + merges.txt.
    Hf,
}

/// Arguments of `clipkit models convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The checkpoint to convert.
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The layout to write.
    #[arg(long, value_enum)]
    to: Layout,
    /// Output folder; an existing model folder is replaced atomically, any other non-empty
    /// folder is refused.
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

/// Runs `clipkit models`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Convert(args) => convert(args),
    }
}

fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let Layout::Hf = args.to;
    let folder = read_openai_checkpoint(&args.src)?;
    write_model_folder(&args.out, &folder)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let v = &folder.config.vision_config;
    eprintln!(
        "wrote {}: ViT {} px, patch {}, {} layers of width {}; text {} layers of width {}; embedding {}",
        args.out.display(),
        v.image_size,
        v.patch_size,
        v.num_hidden_layers,
        v.hidden_size,
        folder.config.text_config.num_hidden_layers,
        folder.config.text_config.hidden_size,
        folder.config.projection_dim
    );
    Ok(())
}
