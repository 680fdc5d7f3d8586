//! `clipkit data prompts`: the shapes-world prompt set for judging generated images, and
//! optionally the image each prompt describes.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::data::shapes::render;
use clipkit::eval::generated::{shapes_prompts, truth_scene, write_prompts};

/// Arguments of `clipkit data prompts`.
#[derive(clap::Args)]
pub struct Args {
    /// Prompt file to write (JSON Lines): {"prompt", "category", "objects": [{"colour",
    /// "shape", "count", "position"}]} per line, the input of `clipkit eval generate`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also draw the scene each prompt describes into DIR/000.png…: the perfect answer,
    /// which `clipkit eval generate` should score (nearly) in full.
    #[arg(long, value_name = "DIR")]
    truth: Option<PathBuf>,
    /// Side of the truth images in pixels (16 to 4096).
    #[arg(long, value_name = "PIXELS", default_value_t = 224, value_parser = clap::value_parser!(u32).range(16..=4096))]
    size: u32,
}

/// Runs `clipkit data prompts`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let prompts = shapes_prompts();
    if let Some(dir) = &args.truth {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (index, prompt) in prompts.iter().enumerate() {
            let scene = truth_scene(&prompt.objects)
                .with_context(|| format!("prompt {index} ({}) cannot be drawn", prompt.prompt))?;
            let path = dir.join(format!("{index:03}.png"));
            render(&scene, args.size)
                .save_with_format(&path, image::ImageFormat::Png)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    write_prompts(&args.out, &prompts)?;
    eprintln!("wrote {} prompts to {}", prompts.len(), args.out.display());
    Ok(())
}
