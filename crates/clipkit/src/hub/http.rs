//! The few HTTP exchanges the Hub protocol needs, over `ureq`, with the Hub's statuses
//! turned into [`HubError`]s that name the repository.

use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use super::error::HubError;
use super::settings::HubSettings;

/// Redirects followed by hand (to read the Hub's headers on the first hop): at most this many.
const MAX_REDIRECTS: usize = 5;

/// A connection to the Hub on behalf of one repository.
pub(crate) struct HubClient<'a> {
    agent: ureq::Agent,
    settings: &'a HubSettings,
    repo: &'a str,
    /// Whether a revision other than `main` was asked for (for 404 messages).
    named_revision: bool,
}

/// The Hub's headers about a file, from whichever hop carried them.
#[derive(Debug, Default)]
pub(crate) struct FileHeaders {
    /// `X-Linked-Etag` (LFS: the sha256) or else `ETag` (the git blob sha1), unquoted.
    pub etag: Option<String>,
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
}

impl<'a> HubClient<'a> {
    pub(crate) fn new(settings: &'a HubSettings, repo: &'a str, named_revision: bool) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("clipkit/", env!("CARGO_PKG_VERSION")))
            .build();
        HubClient {
            agent: config.into(),
            settings,
            repo,
            named_revision,
        }
    }

    /// `{endpoint}/{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.settings.endpoint, path)
    }

    /// GETs a JSON document from the API.
    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, HubError> {
        let (mut response, _) = self.get(url, None)?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport(url, e))?;
        serde_json::from_str(&text).map_err(|e| HubError::Protocol {
            repo: self.repo.to_string(),
            url: url.to_string(),
            message: format!("not the JSON expected: {e}"),
        })
    }

    /// GETs `url` from byte `from` on (a `Range` request when `from` > 0), following
    /// redirects; a success (200 or 206) or an error naming the status.
    pub(crate) fn get(
        &self,
        url: &str,
        from: Option<u64>,
    ) -> Result<(Response<Body>, FileHeaders), HubError> {
        let mut headers = FileHeaders::default();
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.agent.get(&current);
            // The token goes to the Hub only, never to the storage a redirect leads to.
            if let (Some(token), true) = (
                &self.settings.token,
                current.starts_with(&self.settings.endpoint),
            ) {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            if let Some(from) = from.filter(|&f| f > 0) {
                request = request.header("Range", format!("bytes={from}-"));
            }
            let response = request.call().map_err(|e| self.transport(&current, e))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(unquote_etag)
            };
            headers.commit = headers.commit.take().or_else(|| header("x-repo-commit"));
            if headers.etag.is_none() {
                headers.etag = header("x-linked-etag");
            }
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = header("location").ok_or_else(|| HubError::Protocol {
                    repo: self.repo.to_string(),
                    url: current.clone(),
                    message: format!("redirect {status} without a Location"),
                })?;
                current = self.absolute(&current, &location);
                continue;
            }
            if headers.etag.is_none() {
                headers.etag = header("etag");
            }
            return match status {
                200 | 206 => Ok((response, headers)),
                401 | 403 => Err(HubError::Unauthorized {
                    repo: self.repo.to_string(),
                    status,
                    url: current,
                }),
                404 => Err(HubError::NotFound {
                    repo: self.repo.to_string(),
                    url: current,
                    revision: self.named_revision,
                }),
                _ => Err(HubError::Status {
                    repo: self.repo.to_string(),
                    status,
                    url: current,
                }),
            };
        }
        Err(HubError::Protocol {
            repo: self.repo.to_string(),
            url: url.to_string(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// A Location made absolute against the URL that gave it.
    fn absolute(&self, base: &str, location: &str) -> String {
        if location.contains("://") {
            return location.to_string();
        }
        let origin_end = base
            .find("://")
            .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(base.len());
        if location.starts_with('/') {
            format!("{}{location}", &base[..origin_end])
        } else {
            let dir_end = base
                .rfind('/')
                .filter(|&i| i >= origin_end)
                .unwrap_or(origin_end);
            format!("{}/{location}", &base[..dir_end])
        }
    }

    pub(crate) fn transport(&self, url: &str, error: impl std::fmt::Display) -> HubError {
        HubError::Transport {
            repo: self.repo.to_string(),
            url: url.to_string(),
            message: error.to_string(),
        }
    }
}

/// `"abc"` and `W/"abc"` → `abc`.
fn unquote_etag(value: &str) -> String {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// Percent-encodes a path component (and `/` too unless `keep_slash`), as the Hub expects
/// revisions (`refs%2Fpr%2F1`) and file names in URLs.
pub(crate) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
