//! `clipkit serve`: the JSON API and the web page over the index, until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use clipkit::search::model_identity;
use clipkit_server::{AppState, Limits};

use super::store_arg::IndexArg;
use super::{load_model, ModelArg};

/// Arguments of `clipkit serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; anything but loopback exposes your index to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0 picks a free one; the address is printed either way).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 16)]
    max_body_mib: usize,
    /// Largest uploaded image, in megapixels.
    #[arg(long, default_value_t = 40)]
    max_image_megapixels: u64,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    index: IndexArg,
}

/// Runs `clipkit serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let store = args.index.open()?;
    let model_dir = args.model.dir()?;
    let model = model_identity(&model_dir)?;
    store.check_model(&model)?;
    let clip = load_model(&model_dir, clipkit::DEFAULT_BATCH_SIZE)?;
    let limits = Limits {
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
        max_image_pixels: args.max_image_megapixels.saturating_mul(1_000_000),
        ..Limits::default()
    };
    let state = AppState::new(clip, store, model, limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let addr = SocketAddr::new(args.host, args.port);
    runtime
        .block_on(clipkit_server::serve(addr, state, |bound| {
            // Scripts (and tests) read this line to find the port.
            println!("listening on http://{bound}/");
        }))
        .with_context(|| format!("cannot serve on {addr}"))?;
    eprintln!("stopped");
    Ok(())
}
