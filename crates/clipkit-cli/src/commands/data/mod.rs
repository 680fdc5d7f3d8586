//! `clipkit data`: write data sets to files.

pub mod prompts;
pub mod shapes;

/// What `clipkit data` can write.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write shapes-world images (PNG) and their captions (captions.jsonl).
    Shapes(shapes::Args),
    /// Write the shapes-world prompt set for `clipkit eval generate` (and, with --truth, the
    /// image each prompt describes).
    Prompts(prompts::Args),
}

/// Runs `clipkit data`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Shapes(args) => shapes::run(args),
        Command::Prompts(args) => prompts::run(args),
    }
}
