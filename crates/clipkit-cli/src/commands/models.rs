//! `clipkit models pull|list|convert`: models by name from the HuggingFace Hub, in its
//! standard cache; checkpoints in other layouts (`convert` writes an OpenAI-layout ViT, a
//! `clip.load` TorchScript `.pt` or a `torch.save` state dict, as a HuggingFace folder that
//! transformers' `CLIPModel.from_pretrained` and clipkit load); and [`resolve`], how every
//! `--model` value becomes a folder.

use std::path::PathBuf;

use anyhow::Context;
use clipkit::hub::{self, HubSettings, PullOptions, PullProgress, RepoId, ResolvedModel};
use clipkit::model_folder::openai_layout::read_openai_checkpoint;
use clipkit::model_folder::{probe_layout, write_model_folder};
use indicatif::ProgressBar;
use serde_json::json;

/// `clipkit models ...`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Download a model repository from the Hub into the Hub cache ($HF_HUB_CACHE, else
    /// $HF_HOME/hub), verified and resumable; prints the snapshot folder.
    Pull(PullArgs),
    /// List the models in the Hub cache and which ones clipkit can load.
    List(ListArgs),
    /// Convert a checkpoint to a model folder: an OpenAI CLIP ViT `.pt` (TorchScript, as
    /// `clip.load` downloads it) or `.bin`/`.pth` state dict to a HuggingFace folder.
    Convert(ConvertArgs),
}

/// `clipkit models pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The repository, ORG/NAME (or ORG/NAME@REVISION).
    #[arg(value_name = "ORG/NAME")]
    repo: String,
    /// Branch, tag or commit. Default: main (or the @REVISION of the name).
    #[arg(long)]
    revision: Option<String>,
    /// Every file of the repository, also weights for other frameworks and pickled
    /// duplicates of safetensors weights.
    #[arg(long)]
    all_files: bool,
}

/// `clipkit models list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print JSON: {"cache", "models": [{"repo", "size_bytes", "incomplete_downloads",
    /// "revisions": [{"commit", "refs", "path", "layout"}]}]}; layout is null when clipkit
    /// cannot load the snapshot.
    #[arg(long)]
    json: bool,
}

/// The layouts `convert` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ConvertTo {
    /// A transformers `CLIPModel` folder: config.json, model.safetensors,
    /// preprocessor_config.json, vocab.json + merges.txt.
    Hf,
}

/// `clipkit models convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The checkpoint to convert.
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The layout to write.
    #[arg(long, value_enum)]
    to: ConvertTo,
    /// Output folder; an existing model folder is replaced atomically, any other non-empty
    /// folder is refused.
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

/// Runs `clipkit models ...`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pull(args) => pull(args),
        Command::List(args) => list(args),
        Command::Convert(args) => convert(args),
    }
}

/// A progress bar over a pull's bytes.
struct Bar(Option<ProgressBar>, String);

impl PullProgress for Bar {
    fn start(&mut self, _files: usize, total_bytes: u64) {
        self.0 = Some(crate::progress::bytes_bar(total_bytes, &self.1));
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn pull(args: PullArgs) -> anyhow::Result<()> {
    let mut id = RepoId::parse(&args.repo).with_context(|| {
        format!(
            "{:?} is not a Hub model name (ORG/NAME or ORG/NAME@REVISION)",
            args.repo
        )
    })?;
    if let Some(revision) = args.revision {
        id.revision = revision;
    }
    let settings = HubSettings::from_env();
    let options = PullOptions {
        all_files: args.all_files,
    };
    let mut bar = Bar(None, format!("pulling {id}"));
    let dir = hub::pull(&settings, &id, &options, &mut bar)?;
    drop(bar);
    println!("{}", dir.display());
    Ok(())
}

/// The folder a `--model` value names: an existing path, or a Hub name resolved through
/// the cache and pulled when missing (saying so on stderr).
pub fn resolve(spec: &str) -> anyhow::Result<PathBuf> {
    let settings = HubSettings::from_env();
    let mut bar = Bar(None, format!("pulling {spec}"));
    let mut tell = |id: &RepoId| {
        eprintln!(
            "{id} is not in the Hub cache at {}; downloading it from {}",
            settings.cache_dir.display(),
            settings.endpoint
        )
    };
    let resolved = hub::resolve_model(spec, &settings, &mut tell, &mut bar)?;
    drop(bar);
    if let ResolvedModel::Pulled(dir) = &resolved {
        eprintln!("saved in {}", dir.display());
    }
    Ok(resolved.path().to_path_buf())
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let settings = HubSettings::from_env();
    let models = hub::list_cached(&settings.cache_dir)?;
    if args.json {
        let models: Vec<_> = models
            .iter()
            .map(|m| {
                json!({
                    "repo": m.repo,
                    "size_bytes": m.size_bytes,
                    "incomplete_downloads": m.incomplete,
                    "revisions": m.revisions.iter().map(|r| json!({
                        "commit": r.commit,
                        "refs": r.refs,
                        "path": r.path,
                        "layout": probe_layout(&r.path).map(|l| l.name()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({"cache": settings.cache_dir, "models": models});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if models.is_empty() {
        println!(
            "no models in the Hub cache at {}; `clipkit models pull ORG/NAME` adds one",
            settings.cache_dir.display()
        );
        return Ok(());
    }
    println!(
        "{:<48} {:<12} {:>10}  clipkit can load",
        "model", "revision", "size"
    );
    for model in &models {
        let size = format!("{:.1} MB", model.size_bytes as f64 / 1e6);
        for (i, revision) in model.revisions.iter().enumerate() {
            let name = match revision.refs.iter().find(|r| r.as_str() != "main") {
                Some(tag) => format!("{}@{tag}", model.repo),
                None => model.repo.clone(),
            };
            let loadable = match probe_layout(&revision.path) {
                Some(layout) => format!("yes ({})", layout.name()),
                None => "no".to_string(),
            };
            let size = if i == 0 { size.as_str() } else { "" };
            println!(
                "{name:<48} {:<12} {size:>10}  {loadable}",
                &revision.commit[..12.min(revision.commit.len())]
            );
        }
        if model.revisions.is_empty() {
            println!(
                "{:<48} {:<12} {size:>10}  no (no snapshot)",
                model.repo, "-"
            );
        }
        if model.incomplete > 0 {
            println!(
                "  {} interrupted download(s); `clipkit models pull {}` resumes them",
                model.incomplete, model.repo
            );
        }
    }
    Ok(())
}

fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let ConvertTo::Hf = args.to;
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
