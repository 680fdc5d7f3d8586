//! `clipkit data`: write data sets to files.

pub mod shapes;

/// What `clipkit data` can write.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write shapes-world images (PNG) and their captions (captions.jsonl).
    Shapes(shapes::Args),
}

/// Runs `clipkit data`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Shapes(args) => shapes::run(args),
    }
}
