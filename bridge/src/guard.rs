//! DNS-rebinding protection: every request's `Host` (and HTTP/2 `:authority`)
//! must name an allowed host, and an `Origin`, when a browser sends one, must
//! be an allowed origin. Refusals are `403` (`400` for a missing or malformed
//! `Host`) with a JSON-RPC error body, before any session, child or limit is
//! touched.
//!
//! The SDK's Streamable HTTP server has the same check
//! (`StreamableHttpServerConfig::allowed_hosts` / `allowed_origins`), but it
//! answers with a plain-text body, runs after the bridge's own middleware (the
//! session limit would answer first), and checks `Origin` only against an
//! explicit list; so the bridge checks here, in front of everything, and turns
//! the SDK's check off.

use crate::options::Options;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// A `--allowed-host` entry, or a request's authority: a lower-case host
/// (IPv6 without brackets) and the port, if one was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: Option<u16>,
}

/// An origin: `null`, or scheme, host and port (the scheme's default port
/// when none is written, as RFC 6454 serializes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

fn authority(text: &str) -> Option<HostPort> {
    let authority = Authority::try_from(text).ok()?;
    // No user information in a Host header or an allow-list entry.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(HostPort {
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port: authority.port_u16(),
    })
}

/// `name` (any port) or `name:port`, as `--allowed-host` takes it.
pub fn parse_allowed_host(text: &str) -> Option<HostPort> {
    authority(text.trim())
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("null") {
        return Some(Origin::Null);
    }
    let uri = Uri::try_from(text).ok()?;
    // An origin is scheme://host[:port] and nothing else.
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return None;
    }
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let HostPort { host, port } = authority(uri.authority()?.as_str())?;
    let port = port.or_else(|| default_port(&scheme));
    Some(Origin::Tuple { scheme, host, port })
}

/// `scheme://host[:port]` or `null`, as `--allowed-origin` takes it.
pub fn parse_allowed_origin(text: &str) -> Option<Origin> {
    parse_origin(text)
}

impl HostPort {
    /// An allow-list entry without a port accepts the name on any port.
    fn admits(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && self.port.is_none_or(|p| Some(p) == port)
    }
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Host`, several, or one that is not an authority: `400`.
    BadHost(String),
    /// A host not in the allow-list: `403`.
    Host(String),
    /// An `Origin` not allowed (or several, or malformed): `403`.
    Origin(String),
}

/// The allow-lists, from the options.
#[derive(Debug)]
pub struct Guard {
    /// The loopback names and every `--allowed-host`.
    hosts: Vec<HostPort>,
    /// Off with `--allow-any-host`; origins still follow `hosts` then.
    check_host: bool,
    origins: Option<Vec<Origin>>,
}

impl Guard {
    pub fn new(options: &Options) -> Self {
        let hosts = options
            .allowed_hosts
            .iter()
            .filter_map(|h| parse_allowed_host(h))
            .collect();
        let origins = options
            .allowed_origins
            .iter()
            .filter_map(|o| parse_allowed_origin(o))
            .collect();
        Self {
            hosts,
            check_host: !options.any_host,
            origins: (!options.any_origin).then_some(origins),
        }
    }

    /// Every authority the request names (its `Host` header, and the
    /// HTTP/2 `:authority` or absolute-form target) must be allowed; an
    /// `Origin`, if present, must be one of the allowed origins or an
    /// `http`/`https` origin on an allowed host.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.check_host {
            let mut named = Vec::new();
            let mut hosts = headers.get_all(header::HOST).iter();
            if let Some(host) = hosts.next() {
                if hosts.next().is_some() {
                    return Err(Refusal::BadHost("more than one Host header".into()));
                }
                let text = host
                    .to_str()
                    .map_err(|_| Refusal::BadHost(format!("{host:?}")))?;
                named.push(authority(text).ok_or_else(|| Refusal::BadHost(format!("{text:?}")))?);
            }
            if let Some(target) = uri.authority() {
                named.push(
                    authority(target.as_str())
                        .ok_or_else(|| Refusal::BadHost(format!("{:?}", target.as_str())))?,
                );
            }
            if named.is_empty() {
                return Err(Refusal::BadHost("no Host header".into()));
            }
            for name in &named {
                if !self.hosts.iter().any(|a| a.admits(&name.host, name.port)) {
                    return Err(Refusal::Host(match name.port {
                        Some(port) => format!("{}:{port}", name.host),
                        None => name.host.clone(),
                    }));
                }
            }
        }
        if let Some(origins) = &self.origins {
            let mut values = headers.get_all(header::ORIGIN).iter();
            let Some(value) = values.next() else {
                // Not a browser: nothing to check (the Host check still ran).
                return Ok(());
            };
            if values.next().is_some() {
                return Err(Refusal::Origin("more than one Origin header".into()));
            }
            let text = value
                .to_str()
                .map_err(|_| Refusal::Origin(format!("{value:?}")))?;
            let origin = parse_origin(text).ok_or_else(|| Refusal::Origin(format!("{text:?}")))?;
            let same_host = match &origin {
                Origin::Tuple { scheme, host, port } if scheme == "http" || scheme == "https" => {
                    self.hosts.iter().any(|a| a.admits(host, *port))
                }
                _ => false,
            };
            if !same_host && !origins.contains(&origin) {
                return Err(Refusal::Origin(format!("{text:?}")));
            }
        }
        Ok(())
    }
}

/// The middleware, outermost: a refused request reaches nothing else.
pub async fn check_host_and_origin(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // The offending value goes to the log, not back to the caller.
            tracing::warn!("refused a request: {refusal:?}");
            match refusal {
                Refusal::BadHost(_) => reply::error(
                    StatusCode::BAD_REQUEST,
                    -32600,
                    "the request has no valid Host header",
                ),
                Refusal::Host(_) => reply::error(
                    StatusCode::FORBIDDEN,
                    -32043,
                    "the Host header names a host this bridge does not serve (DNS-rebinding \
                     protection); start mcp-bridge with --allowed-host NAME to serve it",
                ),
                Refusal::Origin(_) => reply::error(
                    StatusCode::FORBIDDEN,
                    -32043,
                    "the Origin header names an origin this bridge does not accept; start \
                     mcp-bridge with --allowed-origin ORIGIN to accept it",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(args: &[&str]) -> Guard {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--".into(), "x".into()]);
        Guard::new(&Options::parse(all).unwrap())
    }

    fn check(g: &Guard, host: Option<&str>, origin: Option<&str>) -> Result<(), Refusal> {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        }
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        g.check(&Uri::from_static("/mcp"), &headers)
    }

    #[test]
    fn loopback_names_on_any_port_and_nothing_else() {
        let g = guard(&[]);
        for ok in [
            "localhost",
            "localhost:8081",
            "LOCALHOST:1",
            "127.0.0.1:9",
            "[::1]:8081",
            "[::1]",
        ] {
            assert_eq!(check(&g, Some(ok), None), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8081",
            "localhost.evil.example",
            "127.0.0.2",
            "0.0.0.0:8081",
            "localhost.",
        ] {
            assert!(
                matches!(check(&g, Some(bad), None), Err(Refusal::Host(_))),
                "{bad}"
            );
        }
        for malformed in ["user@localhost", "local host", ""] {
            assert!(
                matches!(check(&g, Some(malformed), None), Err(Refusal::BadHost(_))),
                "{malformed}"
            );
        }
        assert!(matches!(check(&g, None, None), Err(Refusal::BadHost(_))));
    }

    #[test]
    fn an_http2_authority_is_checked_too() {
        let g = guard(&[]);
        let uri = Uri::from_static("http://evil.example:8081/mcp");
        let mut headers = HeaderMap::new();
        assert!(matches!(g.check(&uri, &headers), Err(Refusal::Host(_))));
        // A matching Host header does not excuse a foreign :authority.
        headers.insert(header::HOST, HeaderValue::from_static("localhost"));
        assert!(matches!(g.check(&uri, &headers), Err(Refusal::Host(_))));
        let uri = Uri::from_static("http://127.0.0.1:8081/mcp");
        assert_eq!(g.check(&uri, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn added_hosts_with_and_without_port() {
        let g = guard(&[
            "--allowed-host",
            "MCP.example.com",
            "--allowed-host",
            "10.0.0.5:8081",
        ]);
        assert_eq!(check(&g, Some("mcp.example.com:443"), None), Ok(()));
        assert_eq!(check(&g, Some("10.0.0.5:8081"), None), Ok(()));
        assert!(check(&g, Some("10.0.0.5:8082"), None).is_err());
        assert!(check(&g, Some("10.0.0.5"), None).is_err());
        assert_eq!(check(&g, Some("localhost:1"), None), Ok(()));
    }

    #[test]
    fn origins_on_allowed_hosts_or_listed() {
        let g = guard(&["--allowed-origin", "https://app.example.com"]);
        let host = Some("localhost:8081");
        for ok in [
            "http://localhost:6274",
            "https://127.0.0.1",
            "http://[::1]:3000",
            "https://app.example.com",
            "https://app.example.com:443",
        ] {
            assert_eq!(check(&g, host, Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
            "null",
            "file://localhost",
            "localhost",
            "http://localhost/path",
        ] {
            assert!(
                matches!(check(&g, host, Some(bad)), Err(Refusal::Origin(_))),
                "{bad}"
            );
        }
        let g = guard(&["--allowed-origin", "null"]);
        assert_eq!(check(&g, host, Some("null")), Ok(()));
    }

    #[test]
    fn the_switches_turn_each_check_off() {
        let g = guard(&["--allow-any-host"]);
        assert_eq!(check(&g, Some("mcp.example.com"), None), Ok(()));
        assert_eq!(check(&g, None, None), Ok(()));
        // Origins are still checked.
        assert!(check(&g, Some("mcp.example.com"), Some("https://evil.example")).is_err());
        assert_eq!(check(&g, Some("x"), Some("http://localhost:3000")), Ok(()));
        let g = guard(&["--allow-any-host", "--allowed-host", "mcp.example.com"]);
        assert_eq!(
            check(&g, Some("x"), Some("https://mcp.example.com")),
            Ok(())
        );
        let g = guard(&["--allow-any-origin"]);
        assert_eq!(
            check(&g, Some("localhost"), Some("https://evil.example")),
            Ok(())
        );
        assert!(check(&g, Some("evil.example"), None).is_err());
    }
}
