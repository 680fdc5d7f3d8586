//! `clipkit dupes`: groups of near-duplicate images in the index.

use anyhow::Context;
use clipkit::search::dupes::near_duplicates;
use serde::Serialize;

use super::store_arg::IndexArg;

/// Arguments of `clipkit dupes`.
#[derive(clap::Args)]
pub struct Args {
    /// Cosine similarity from which two images count as near-duplicates.
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true, value_parser = super::cosine)]
    threshold: f32,
    #[command(flatten)]
    index: IndexArg,
    /// Print JSON: {"groups": [[{"path", "score"}]]}, score = best similarity in the group.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    groups: Vec<Vec<Member>>,
}

#[derive(Serialize)]
struct Member {
    path: String,
    score: f32,
}

/// Runs `clipkit dupes`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let store = args.index.open()?;
    let named = args.index.named_roots()?;
    let groups = near_duplicates(&*store, args.threshold)?;
    if args.json {
        let groups = groups
            .into_iter()
            .map(|g| {
                g.members
                    .into_iter()
                    .map(|m| Member {
                        path: named.display(&m.path),
                        score: m.score,
                    })
                    .collect()
            })
            .collect();
        let out = serde_json::to_string(&Output { groups }).context("serialising output")?;
        println!("{out}");
        return Ok(());
    }
    if groups.is_empty() {
        eprintln!("no near-duplicates at similarity {}", args.threshold);
    }
    for (i, g) in groups.iter().enumerate() {
        println!("group {} ({} images)", i + 1, g.members.len());
        for m in &g.members {
            println!("  {:.4}  {}", m.score, named.display(&m.path));
        }
    }
    Ok(())
}
