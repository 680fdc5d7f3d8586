//! `clipkit serve`: the JSON API and the web page over the index, until Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clipkit::search::embedding_identity;
use clipkit_server::{AppState, HostPolicy, Limits};

use super::store_arg::IndexArg;
use super::{load_model, ModelArg, PrecisionArg};

/// Arguments of `clipkit serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on. Anything but loopback exposes your library to the network:
    /// the server has no authentication (a warning is printed).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0 picks a free one; the address is printed either way).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Also answer requests addressed to this host name or IP address (repeatable). Only
    /// `localhost`, loopback addresses and --host are answered otherwise (others get
    /// 421), so that a web page elsewhere cannot reach the server through DNS rebinding;
    /// with `--host 0.0.0.0`, list the names clients will use, e.g. `photos.lan`.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Seconds a client has to send a request's headers; slower or idle connections are
    /// closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Connections served at once; more clients wait until one closes.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 16)]
    max_body_mib: usize,
    /// Largest uploaded image, in megapixels.
    #[arg(long, default_value_t = 40)]
    max_image_megapixels: u64,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    precision: PrecisionArg,
    #[command(flatten)]
    index: IndexArg,
}

/// Runs `clipkit serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let hosts = args
        .allow_hosts
        .iter()
        .try_fold(
            HostPolicy::loopback().allow_ip(args.host),
            |policy, name| policy.allow_name(name),
        )
        .context("--allow-host")?;
    let store = args.index.open()?;
    let model_dir = args.model.dir()?;
    let model = embedding_identity(&model_dir, args.precision.precision)?;
    store.check_model(&model)?;
    let clip = load_model(
        &model_dir,
        clipkit::DEFAULT_BATCH_SIZE,
        args.precision.precision,
    )?;
    let limits = Limits {
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
        max_image_pixels: args.max_image_megapixels.saturating_mul(1_000_000),
        header_read_timeout: Duration::from_secs(args.header_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        ..Limits::default()
    };
    let state = AppState::new(clip, store, model, args.index.named_roots()?, limits, hosts);
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
