//! `clipkit merge`: WiSE-FT weight interpolation between a base model and its fine-tuned
//! version, at one α or several.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clipkit::merge::WiseFt;
use clipkit::model_folder::write_model_folder;

/// Arguments of `clipkit merge`.
#[derive(clap::Args)]
pub struct Args {
    /// The model fine-tuning started from.
    #[arg(value_name = "BASE")]
    base: PathBuf,
    /// The fine-tuned model; its tokenizer and preprocessing go to the output.
    #[arg(value_name = "FINETUNED")]
    finetuned: PathBuf,
    /// Weight of FINETUNED, from 0 (BASE) to 1 (FINETUNED). Repeatable: with several
    /// values, each model goes to `DIR/alpha-A`.
    #[arg(long, value_name = "A", required_unless_present = "sweep", value_parser = super::unit_interval)]
    alpha: Vec<f64>,
    /// Instead of --alpha: N evenly spaced values from 0 to 1 (N >= 2), each model written
    /// to `DIR/alpha-A`.
    #[arg(long, value_name = "N", conflicts_with = "alpha",
          value_parser = clap::value_parser!(u16).range(2..))]
    sweep: Option<u16>,
    /// Output model folder (with several values of alpha: the folder that holds them).
    /// An existing model folder is replaced atomically; any other non-empty folder is refused.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `clipkit merge`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let alphas: Vec<f64> = match args.sweep {
        Some(n) => (0..n).map(|i| f64::from(i) / f64::from(n - 1)).collect(),
        None => args.alpha.clone(),
    };
    let mut sorted = alphas.clone();
    sorted.sort_by(f64::total_cmp);
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        anyhow::bail!("--alpha values must differ: {alphas:?}");
    }
    let outputs: Vec<(f64, PathBuf)> = if alphas.len() == 1 {
        vec![(alphas[0], args.out.clone())]
    } else {
        alphas
            .iter()
            .map(|&a| (a, args.out.join(format!("alpha-{a}"))))
            .collect()
    };
    for (_, out) in &outputs {
        for input in [&args.base, &args.finetuned] {
            if same_path(out, input) {
                anyhow::bail!(
                    "{}: is an input of the merge; choose another --out",
                    out.display()
                );
            }
        }
    }
    // The library's error names both folders and the first difference.
    let wise = WiseFt::open(&args.base, &args.finetuned)?;
    for (alpha, out) in outputs {
        write_model_folder(&out, &wise.at(alpha)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {} (alpha {alpha})", out.display());
    }
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
