//! Which `Host` names the server answers to: the defence against DNS rebinding.
//!
//! A web page on another site can point a domain of its own at 127.0.0.1 and then read
//! whatever a local server answers, because the browser thinks it talks to that domain. The
//! request still carries the attacker's name in its `Host` header, so the server answers
//! only names that cannot be rebound: `localhost`, loopback addresses (`127.0.0.1`,
//! `[::1]`), the address it was told to listen on, and names allowed explicitly. The port
//! is not compared. Others get 421 Misdirected Request; an HTTP/1.1 request without `Host`
//! gets 400.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The host names (besides loopback) that requests may name in `Host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// Normalised: lower case, no trailing dot, IP addresses in their canonical text.
    allowed: Vec<String>,
}

/// A name given to [`HostPolicy::allow_name`] that is not a host name or an IP address.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a host name or IP address (give it without scheme, port or path, e.g. `photos.lan` or `192.168.1.20`)")]
pub struct InvalidHostName(pub String);

impl HostPolicy {
    /// Loopback only: `localhost`, 127.0.0.0/8 and `::1` (the default).
    pub fn loopback() -> Self {
        HostPolicy::default()
    }

    /// Also answers requests naming `ip`, the address the server listens on. Loopback is
    /// always answered already; the unspecified addresses (`0.0.0.0`, `::`) are never a
    /// name a client uses, so both leave the policy as it is.
    pub fn allow_ip(mut self, ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        if !ip.is_loopback() && !ip.is_unspecified() {
            self.push(ip.to_string());
        }
        self
    }

    /// Also answers requests naming `name`: a DNS name (`photos.lan`) or an IP address
    /// (`192.168.1.20`, `::1` or `[::1]`), compared without case and without port.
    pub fn allow_name(mut self, name: &str) -> Result<Self, InvalidHostName> {
        let invalid = || InvalidHostName(name.to_string());
        let bare = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Ok(self.allow_ip(ip)),
            Err(_) => {
                let normal = normalise_name(bare).ok_or_else(invalid)?;
                self.push(normal);
                Ok(self)
            }
        }
    }

    /// True when a request whose `Host` header is `host` (with or without a port) may be
    /// answered.
    pub fn allows(&self, host: &str) -> bool {
        match parse_host(host) {
            Some(Host::Ip(ip)) => ip.is_loopback() || self.allowed.contains(&ip.to_string()),
            Some(Host::Name(name)) => name == "localhost" || self.allowed.contains(&name),
            None => false,
        }
    }

    fn push(&mut self, normal: String) {
        if !self.allowed.contains(&normal) {
            self.allowed.push(normal);
        }
    }
}

/// A `Host` header's host part.
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Splits `host[:port]` or `[v6][:port]`; None when malformed.
fn parse_host(value: &str) -> Option<Host> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        return valid_port(after.strip_prefix(':'), after.is_empty())
            .then(|| Host::Ip(IpAddr::V6(ip).to_canonical()));
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if !valid_port(port, port.is_none()) {
        return None;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => Some(Host::Ip(IpAddr::V4(ip))),
        Err(_) => normalise_name(host).map(Host::Name),
    }
}

/// A port part is absent (`absent`) or all digits and fits 16 bits.
fn valid_port(port: Option<&str>, absent: bool) -> bool {
    absent || port.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

/// A DNS name in lower case without its trailing dot; None unless it is made of labels of
/// letters, digits, `-` and `_`.
fn normalise_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

/// Middleware: refuses requests whose `Host` (or absolute-form URI) names a host the policy
/// does not allow.
pub async fn check(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match verdict(&policy, &request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn verdict(policy: &HostPolicy, request: &Request) -> Result<(), ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::BadRequest("more than one Host header".into()));
    }
    let named = header
        .map(|h| {
            h.to_str()
                .map_err(|_| ApiError::BadRequest("the Host header is not ASCII".into()))
        })
        .transpose()?
        .into_iter()
        .chain(request.uri().authority().map(|a| a.as_str()));
    let mut any = false;
    for host in named {
        any = true;
        if !policy.allows(host) {
            return Err(ApiError::MisdirectedHost(format!(
                "this server does not answer to host {host:?} (allowed: localhost, loopback \
                 addresses, its --host and each --allow-host)"
            )));
        }
    }
    if !any && request.version() >= Version::HTTP_11 {
        return Err(ApiError::BadRequest(
            "an HTTP/1.1 request needs a Host header".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_allowed_on_any_port() {
        let policy = HostPolicy::loopback();
        for host in [
            "localhost",
            "LocalHost:8765",
            "localhost.:1",
            "127.0.0.1",
            "127.0.0.1:8765",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8765",
            "[::ffff:127.0.0.1]:8765",
        ] {
            assert!(policy.allows(host), "{host}");
        }
    }

    #[test]
    fn other_names_and_malformed_hosts_are_refused() {
        let policy = HostPolicy::loopback();
        for host in [
            "evil.example",
            "evil.example:8765",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "localhost:",
            "localhost:99999",
            "localhost:80:80",
            "[::1",
            "[::1]x",
            "::1",
            "192.168.1.20",
            "0.0.0.0",
            "",
            "local host",
            "user@localhost",
        ] {
            assert!(!policy.allows(host), "{host}");
        }
    }

    #[test]
    fn allowed_names_and_addresses_are_answered_without_case_or_port() {
        let policy = HostPolicy::loopback()
            .allow_ip("192.168.1.20".parse().unwrap())
            .allow_name("Photos.LAN")
            .unwrap()
            .allow_name("[fd00::1]")
            .unwrap();
        for host in [
            "192.168.1.20:8765",
            "photos.lan",
            "PHOTOS.lan.:80",
            "[fd00::1]:1",
        ] {
            assert!(policy.allows(host), "{host}");
        }
        assert!(!policy.allows("other.lan"));
    }

    #[test]
    fn unspecified_and_loopback_binds_add_nothing() {
        for ip in ["0.0.0.0", "::", "127.0.0.1", "::1"] {
            assert_eq!(
                HostPolicy::loopback().allow_ip(ip.parse().unwrap()),
                HostPolicy::loopback(),
                "{ip}"
            );
        }
    }

    #[test]
    fn names_with_scheme_port_or_path_are_refused() {
        for name in [
            "http://photos.lan",
            "photos.lan:8080",
            "photos.lan/",
            "",
            "a..b",
            "*.lan",
        ] {
            assert!(HostPolicy::loopback().allow_name(name).is_err(), "{name}");
        }
    }
}
