//! Where the Hub is and where its cache lives: the environment variables `huggingface_hub`
//! reads, with its defaults.

use std::path::{Path, PathBuf};

/// The Hub's address when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach the Hub and where to cache what comes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// Base URL, no trailing slash: `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// The cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`, with `HF_HOME` defaulting to
    /// `$XDG_CACHE_HOME/huggingface`, then `~/.cache/huggingface`.
    pub cache_dir: PathBuf,
    /// Sent as a bearer token: `HF_TOKEN`, else the file `$HF_HOME/token` that
    /// `huggingface-cli login` writes; `None` when neither is set.
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE` set to `1`, `true`, `yes` or `on`: never touch the network.
    pub offline: bool,
}

impl HubSettings {
    /// The settings the environment gives.
    pub fn from_env() -> HubSettings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            // `~/.cache` on every system, as huggingface_hub has it (not the platform's
            // cache folder: ~/Library/Caches on macOS).
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|home| home.join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| read_token_file(&hf_home.join("token")));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        HubSettings {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            cache_dir,
            token,
            offline,
        }
    }
}

fn read_token_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}
