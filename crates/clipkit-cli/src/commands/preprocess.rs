//! `clipkit preprocess`: the model's input tensor for one image, as a NumPy file.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::model_folder;
use npyz::WriterBuilder;

use super::{check_image_paths, ModelArg};

/// Arguments of `clipkit preprocess`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Image file.
    #[arg(long)]
    image: PathBuf,
    /// Output .npy file: float32, shape (3, H, W).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `clipkit preprocess`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model_dir = args.model.dir()?;
    check_image_paths(std::slice::from_ref(&args.image))?;
    let config = match model_folder::probe_layout(&model_dir) {
        // Checkpoints without a preprocessor file: their layout's own transform.
        Some(model_folder::Layout::OpenClipFolder | model_folder::Layout::TorchCheckpoint) => {
            model_folder::read_model(&model_dir).map(|parts| parts.preprocess)
        }
        _ => model_folder::read_config(&model_dir)
            .and_then(|config| model_folder::read_preprocess(&model_dir, &config)),
    }
    .with_context(|| format!("cannot load preprocessing from {}", model_dir.display()))?;
    let image = clipkit::image::load_rgb(&args.image, clipkit::image::DEFAULT_MAX_PIXELS)?;
    let (pixels, h, w) = config.apply(&image)?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[3, h as u64, w as u64])
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    writer
        .extend(pixels)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    writer
        .finish()
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    Ok(())
}
