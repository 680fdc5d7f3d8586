//! `clipkit generate`: CLIP-guided image generation; the loop lives in
//! [`clipkit::generate`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clipkit::generate::output::{contact_sheet, from_rgb_image, save_png_atomic, to_rgb_image};
use clipkit::generate::{
    new_drawer, parse_prompts, prompt_similarity, vqgan_drawer, CutoutConfig, DrawerKind,
    GenerateConfig, Generation,
};
use clipkit::{Clip, LoadOptions};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{non_negative, positive_count, positive_number, unit_interval};

/// Frames on the contact sheet of a run.
const SHEET_FRAMES: usize = 16;

/// `--drawer`: how the image is parametrised.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DrawerArg {
    /// RGB of every pixel through a sigmoid.
    Pixel,
    /// A decorrelated-colour Fourier spectrum scaled by 1/f^decay.
    Fourier,
    /// The latent of a VQ decoder, quantised with a straight-through gradient.
    Vqgan,
}

/// Arguments of `clipkit generate`.
#[derive(clap::Args)]
pub struct Args {
    /// What to draw: "text:weight:stop | text2:weight" (weights default to 1, negative
    /// weights push away; split from the right).
    #[arg(allow_hyphen_values = true, value_name = "PROMPT")]
    prompt: String,
    /// The PNG file to write (atomically: no partial file on error).
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    /// Guiding model folder (repeatable: several CLIPs guide together). Default: the model
    /// `clipkit quickstart` saved.
    #[arg(long = "model", value_name = "DIR")]
    models: Vec<PathBuf>,
    /// How the image is parametrised (fourier by default: smoother, cleaner objects than
    /// pixel with the quickstart model).
    #[arg(long, value_enum, default_value_t = DrawerArg::Fourier)]
    drawer: DrawerArg,
    /// The VQ decoder of `--drawer vqgan`: a diffusers VQModel folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`), e.g. `DIR/model` of `clipkit train vq`.
    #[arg(long, value_name = "DIR")]
    vq: Option<PathBuf>,
    /// Image size: N (square) or WxH. Default: twice the first model's input side.
    #[arg(long, value_name = "N|WxH", value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Optimisation steps.
    #[arg(long, default_value_t = 300, allow_negative_numbers = true, value_parser = positive_count)]
    steps: usize,
    /// Cut-outs per step (K).
    #[arg(long, default_value_t = CutoutConfig::default().count, allow_negative_numbers = true, value_parser = positive_count)]
    cutouts: usize,
    /// Adam learning rate. Default: the drawer's (pixel 0.05, fourier 0.05).
    #[arg(long, value_parser = positive_number)]
    lr: Option<f64>,
    /// Seed of the drawer's start, the cut-outs and the noise: same seed, same threads →
    /// the same image bit for bit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Start from this image (resized to --size) instead of noise.
    #[arg(long, value_name = "PATH")]
    init_image: Option<PathBuf>,
    /// Weight of the mean squared distance to --init-image (keeps the result near it).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    init_weight: f64,
    /// Weight of the total-variation term (smoother images).
    #[arg(long, default_value_t = GenerateConfig::default().tv_weight, value_parser = non_negative)]
    tv: f64,
    /// Share of zoomed cut-outs (the rest are wide views; Pixray uses 0.6; 0.8 breaks up
    /// the patch-grid textures the quickstart model rewards).
    #[arg(long, default_value_t = CutoutConfig::default().zoomed, value_parser = unit_interval)]
    zoomed: f64,
    /// Chance of a left–right flip per cut-out (0 by default: it swaps left and right).
    #[arg(long, default_value_t = CutoutConfig::default().flip, value_parser = unit_interval)]
    flip: f64,
    /// Largest noise factor added to cut-outs.
    #[arg(long, default_value_t = CutoutConfig::default().noise, value_parser = non_negative)]
    noise: f64,
    /// Brightness and contrast jitter of cut-outs.
    #[arg(long, default_value_t = CutoutConfig::default().jitter, value_parser = unit_interval)]
    jitter: f64,
    /// Exponent of the Fourier drawer's 1/f amplitude scaling.
    #[arg(long, default_value_t = clipkit::generate::DEFAULT_FOURIER_DECAY, value_parser = non_negative)]
    fourier_decay: f64,
    /// Folder for intermediate images (NNNNN.png every --frame-every steps).
    #[arg(long, value_name = "DIR")]
    frames: Option<PathBuf>,
    /// Steps between frames written to --frames.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = positive_count)]
    frame_every: usize,
    /// Write a contact sheet of the run (16 moments, first to last) to this PNG.
    #[arg(long, value_name = "FILE.png")]
    sheet: Option<PathBuf>,
    /// Print a JSON summary: {"out", "drawer", "size", "steps", "seconds_per_step" (the
    /// optimisation loop only), "loss", "similarity"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    out: String,
    drawer: &'static str,
    size: [usize; 2],
    steps: usize,
    seconds_per_step: f64,
    loss: f32,
    /// Cosine of the final image's full view with each prompt, per model then prompt.
    similarity: Vec<f32>,
}

/// Runs `clipkit generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let prompts = parse_prompts(&args.prompt)?;
    check_output(&args.out)?;
    if let Some(sheet) = &args.sheet {
        check_output(sheet)?;
    }
    let init = match &args.init_image {
        Some(path) => Some(
            clipkit::image::load_rgb(path, clipkit::image::DEFAULT_MAX_PIXELS)
                .with_context(|| format!("cannot read the init image {}", path.display()))?,
        ),
        None => None,
    };
    let kind = match args.drawer {
        DrawerArg::Pixel => DrawerKind::Pixel,
        DrawerArg::Fourier => DrawerKind::Fourier,
        DrawerArg::Vqgan => DrawerKind::Vqgan,
    };
    let models = load_models(&args.models)?;
    let side = models[0].image_size();
    let (width, height) = args.size.unwrap_or((2 * side, 2 * side));
    let mut drawer = match (kind, &args.vq) {
        (DrawerKind::Vqgan, Some(dir)) => {
            let model = clipkit::model::vq::VqModel::load(dir)
                .with_context(|| format!("cannot load the VQ decoder in {}", dir.display()))?;
            vqgan_drawer(model, (height, width), args.seed)?
        }
        (_, Some(_)) => anyhow::bail!(
            "--vq DIR is the decoder of --drawer vqgan; give --drawer vqgan or leave --vq out"
        ),
        _ => new_drawer(kind, (height, width), args.fourier_decay, args.seed)?,
    };
    let init = match init {
        Some(image) => {
            let tensor = from_rgb_image(&image, (height, width))?;
            drawer.init_from_image(&tensor, 200)?;
            Some(tensor)
        }
        None => None,
    };
    let config = GenerateConfig {
        lr: args.lr,
        cutouts: CutoutConfig {
            count: args.cutouts,
            zoomed: args.zoomed,
            flip: args.flip,
            noise: args.noise,
            jitter: args.jitter,
            ..CutoutConfig::default()
        },
        tv_weight: args.tv,
        init_weight: args.init_weight,
        seed: args.seed,
    };
    let guides: Vec<&Clip> = models.iter().collect();
    let mut generation = Generation::new(drawer, &guides, prompts.clone(), init, config)?;
    if let Some(dir) = &args.frames {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the frames folder {}", dir.display()))?;
    }
    let started = Instant::now();
    let bar = progress_bar(args.steps);
    let sheet_at: Vec<usize> = (0..SHEET_FRAMES)
        .map(|i| i * args.steps / (SHEET_FRAMES - 1).max(1))
        .collect();
    let mut sheet_frames = Vec::new();
    let mut loss = f32::NAN;
    for step in 0..=args.steps {
        let wants_sheet = args.sheet.is_some() && sheet_at.contains(&step);
        let wants_frame = args.frames.is_some() && step % args.frame_every == 0;
        if wants_sheet || wants_frame {
            let frame = to_rgb_image(&generation.image()?)?;
            if let (true, Some(dir)) = (wants_frame, &args.frames) {
                save_png_atomic(&frame, &dir.join(format!("{step:05}.png")))?;
            }
            if wants_sheet {
                sheet_frames.push(frame);
            }
        }
        if step == args.steps {
            break;
        }
        let report = generation
            .step()
            .with_context(|| format!("step {}", step + 1))?;
        loss = report.loss;
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let loop_seconds = started.elapsed().as_secs_f64();
    let image = generation.image()?;
    save_png_atomic(&to_rgb_image(&image)?, &args.out)?;
    if let Some(sheet) = &args.sheet {
        save_png_atomic(&contact_sheet(&sheet_frames, 8, 128), sheet)?;
    }
    let summary = Summary {
        out: args.out.display().to_string(),
        drawer: kind.name(),
        size: [width, height],
        steps: args.steps,
        seconds_per_step: loop_seconds / args.steps as f64,
        loss,
        similarity: prompt_similarity(&image, &guides, &prompts)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {} ({}×{}, {} steps, {:.1} s, final loss {:.4})",
            summary.out, width, height, summary.steps, loop_seconds, loss
        );
    }
    Ok(())
}

/// The guiding models, loaded so gradients reach the pixels; the default model when none
/// is given.
fn load_models(dirs: &[PathBuf]) -> anyhow::Result<Vec<Clip>> {
    let dirs = if dirs.is_empty() {
        let default = clipkit::paths::default_model_dir();
        if !default.join(clipkit::model_folder::CONFIG_FILE).is_file() {
            bail!(
                "no --model given and no default model at {}; run `clipkit quickstart` to \
                 train one, or pass --model DIR",
                default.display()
            );
        }
        vec![default]
    } else {
        dirs.to_vec()
    };
    let options = LoadOptions {
        input_gradients: true,
        ..LoadOptions::default()
    };
    dirs.iter()
        .map(|dir| {
            Clip::load_with(dir, options)
                .with_context(|| format!("cannot load model from {}", dir.display()))
        })
        .collect()
}

/// Refuses an output path whose folder does not exist or that is a folder, before any work.
fn check_output(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!(
            "{}: is a directory; give a file name such as out.png",
            path.display()
        );
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        if !parent.is_dir() {
            bail!(
                "{}: the folder {} does not exist",
                path.display(),
                parent.display()
            );
        }
    }
    Ok(())
}

fn progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template(
        "generating {msg} {wide_bar} {pos}/{len} [{elapsed_precise}, eta {eta}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Parses N or WxH into (width, height), each at least 8.
fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let side = |s: &str| -> Result<usize, String> {
        match s.trim().parse::<usize>() {
            Ok(n) if (8..=4096).contains(&n) => Ok(n),
            _ => Err(format!("{s:?} is not a side in 8..=4096 pixels")),
        }
    };
    match text.split_once(['x', 'X']) {
        Some((w, h)) => Ok((side(w)?, side(h)?)),
        None => side(text).map(|n| (n, n)),
    }
}
