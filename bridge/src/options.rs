//! Command-line options.

use clap::Parser;
use std::net::IpAddr;
use std::time::Duration;

/// The `Host` names every bridge accepts (any port): loopback names, which no
/// one else's DNS can point at this machine.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What the command line says, as clap reads it (`--help`, `--version`).
#[derive(Debug, Parser)]
#[command(
    name = "mcp-bridge",
    version,
    subcommand_negates_reqs = true,
    about = "Serves MCP Streamable HTTP for a stdio MCP server it spawns (put stdio servers behind Envoy and mcp-filter)",
    after_help = "Examples:\n  mcp-bridge --port 8081 -- npx -y @modelcontextprotocol/server-everything\n  mcp-bridge connect http://127.0.0.1:10000/mcp --bearer-env MCP_TOKEN"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8081, value_name = "N")]
    port: u16,
    /// The MCP endpoint's path.
    #[arg(long, default_value = "/mcp", value_name = "PATH", value_parser = endpoint_path)]
    path: String,
    /// What clients speak: Streamable HTTP (`--path`), the legacy HTTP+SSE
    /// transport of MCP 2024-11-05 (`--sse-path`, `--message-path`), or both.
    #[arg(long, value_enum, default_value = "streamable-http")]
    output_transport: OutputTransport,
    /// The legacy transport's event stream (GET).
    #[arg(long, default_value = "/sse", value_name = "PATH", value_parser = endpoint_path)]
    sse_path: String,
    /// Where the legacy transport's messages are posted (`?sessionId=`).
    #[arg(long, default_value = "/message", value_name = "PATH", value_parser = endpoint_path)]
    message_path: String,
    /// A path answering GET with 200 `ok`, for health checks (repeatable).
    #[arg(long = "health-endpoint", value_name = "PATH", value_parser = endpoint_path)]
    health_endpoints: Vec<String>,
    /// Answer CORS preflights and add CORS headers for these origins
    /// (`scheme://host[:port]`; no value: any origin). They are also accepted
    /// by the Origin check.
    #[arg(long, num_args = 0.., value_name = "ORIGIN", value_parser = allowed_origin)]
    cors: Option<Vec<String>>,
    /// Every session on one child (ids remapped); default: a child per session.
    #[arg(long)]
    shared: bool,
    /// Sessions (children) at once; more get 503.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_sessions: u64,
    /// Largest message accepted, either way.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_message_bytes: u64,
    /// How long a request waits for the child's answer.
    #[arg(long, default_value_t = 300, value_name = "N")]
    request_timeout_secs: u64,
    /// How long an idle session (and its child) lives.
    #[arg(long, default_value_t = 300, value_name = "N")]
    idle_timeout_secs: u64,
    /// Another `Host` to accept, `name` (any port) or `name:port` (repeatable; loopback names always).
    #[arg(long = "allowed-host", value_name = "NAME[:PORT]", value_parser = allowed_host)]
    allowed_hosts: Vec<String>,
    /// Another `Origin` to accept, `scheme://host[:port]` or `null` (repeatable).
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_parser = allowed_origin)]
    allowed_origins: Vec<String>,
    /// No `Host` check (a proxy in front checks it).
    #[arg(long)]
    allow_any_host: bool,
    /// No `Origin` check.
    #[arg(long)]
    allow_any_origin: bool,
    /// The bridge's log level (`RUST_LOG`, when set, decides instead, rmcp's logs included).
    #[arg(long, value_enum, default_value = "info")]
    log_level: LogLevel,
    /// The stdio MCP server to run, after `--`: program and arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// The other direction: be a stdio MCP server (for a desktop client)
    /// that forwards to a remote Streamable HTTP MCP server, e.g. one
    /// behind Envoy and mcp-filter, with a token.
    Connect {
        /// The remote MCP endpoint (http://; this build has no TLS: reach an
        /// https:// one through a local TLS-originating proxy, e.g. Envoy).
        #[arg(value_parser = remote_url)]
        url: String,
        /// A header on every request to it ("Name: value"; repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE", value_parser = header_arg)]
        headers: Vec<(String, String)>,
        /// A bearer token (sent as `Authorization: Bearer <TOKEN>`).
        #[arg(long, value_name = "TOKEN", conflicts_with = "bearer_env")]
        bearer: Option<String>,
        /// The environment variable holding the bearer token (keeps it out of `ps`).
        #[arg(long, value_name = "VAR")]
        bearer_env: Option<String>,
        /// What the remote server speaks: Streamable HTTP, or the legacy
        /// HTTP+SSE transport of MCP 2024-11-05 (URL: its event stream).
        #[arg(long, value_enum, default_value = "streamable-http")]
        remote_transport: RemoteTransport,
    },
}

fn remote_url(url: &str) -> Result<String, String> {
    let uri = url
        .parse::<axum::http::Uri>()
        .ok()
        .filter(|u| u.host().is_some());
    match uri.as_ref().and_then(|u| u.scheme_str()) {
        Some("http") => Ok(url.to_string()),
        // Refused here, not at the first request: the HTTP client is built
        // without a TLS stack, and a token must not be tried in clear text.
        Some("https") => Err(format!(
            "`{url}`: this build of mcp-bridge has no TLS; reach an https:// server \
             through a local proxy that originates TLS (e.g. an Envoy listener on \
             127.0.0.1 whose cluster has a TLS transport socket) and connect to it over http://"
        )),
        _ => Err(format!("`{url}` is not an http:// URL")),
    }
}

fn header_arg(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or(format!("`{text}` is not `Name: value`"))?;
    let (name, value) = (name.trim(), value.trim());
    let valid = axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && axum::http::HeaderValue::from_str(value).is_ok();
    if valid {
        Ok((name.to_ascii_lowercase(), value.to_string()))
    } else {
        Err(format!("`{text}` is not a valid header"))
    }
}

/// What `connect`'s remote server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RemoteTransport {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05).
    Sse,
}

/// `connect`: the remote server a stdio client is forwarded to.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub transport: RemoteTransport,
    pub headers: Vec<(String, String)>,
    /// The bearer token, from `--bearer` or the `--bearer-env` variable.
    pub bearer: Option<String>,
}

/// `/` and path segments of `[A-Za-z0-9._~-]`, not `/` alone, no trailing `/`.
fn endpoint_path(path: &str) -> Result<String, String> {
    let segments_ok = path.strip_prefix('/').is_some_and(|rest| {
        !rest.is_empty()
            && rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
            })
    });
    if segments_ok {
        Ok(path.to_string())
    } else {
        Err(format!(
            "`{path}` is not a path like /mcp (segments of A-Z a-z 0-9 . _ ~ -)"
        ))
    }
}

fn allowed_host(host: &str) -> Result<String, String> {
    crate::guard::parse_allowed_host(host)
        .map(|_| host.to_string())
        .ok_or(format!("`{host}` is not a host name or host:port"))
}

fn allowed_origin(origin: &str) -> Result<String, String> {
    crate::guard::parse_allowed_origin(origin)
        .map(|_| origin.to_string())
        .ok_or(format!(
            "`{origin}` is not an origin (scheme://host[:port], or null)"
        ))
}

/// What clients speak to the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputTransport {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05).
    Sse,
    /// Both, each on its own paths.
    Both,
}

impl OutputTransport {
    pub fn streamable_http(self) -> bool {
        self != OutputTransport::Sse
    }

    pub fn sse(self) -> bool {
        self != OutputTransport::StreamableHttp
    }
}

/// How much the bridge logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Nothing, from the bridge or anything it uses.
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub bind: IpAddr,
    pub port: u16,
    /// The MCP endpoint's path (`--path`, default `/mcp`).
    pub path: String,
    pub output_transport: OutputTransport,
    pub sse_path: String,
    pub message_path: String,
    /// Paths answering GET with 200 `ok`.
    pub health_endpoints: Vec<String>,
    /// `--cors`: `Some(empty)` any origin, else these origins.
    pub cors: Option<Vec<String>>,
    /// Every session on one child (ids remapped by the SDK's client).
    pub shared: bool,
    pub max_sessions: usize,
    pub max_message_bytes: usize,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// `Host` values accepted: `name` (any port) or `name:port`; the
    /// loopback names first, then every `--allowed-host`.
    pub allowed_hosts: Vec<String>,
    /// `--allow-any-host`: no `Host` check (a proxy in front checks it).
    pub any_host: bool,
    /// `Origin` values accepted besides those of the allowed hosts
    /// (`scheme://host[:port]`, or `null`).
    pub allowed_origins: Vec<String>,
    /// `--allow-any-origin`: no `Origin` check.
    pub any_origin: bool,
    /// The stdio server to run: program and arguments (empty with `connect`).
    pub command: Vec<String>,
    /// `connect`: serve stdio, forward to this remote server.
    pub connect: Option<Remote>,
    pub log_level: LogLevel,
}

impl Options {
    /// The process's own arguments; `--help` and `--version` print and exit
    /// 0, a bad option prints why and exits 2.
    pub fn from_env() -> Self {
        let cli = Cli::parse();
        if let Err(message) = cli.check() {
            <Cli as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit();
        }
        Self::from(cli)
    }

    /// Arguments after the program name; the error is clap's message.
    #[cfg(test)]
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let argv = std::iter::once("mcp-bridge".to_string()).chain(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.check()?;
        Ok(Self::from(cli))
    }
}

impl Cli {
    /// What clap cannot say: a health endpoint must not be the MCP endpoint.
    fn check(&self) -> Result<(), String> {
        if let Some(Mode::Connect {
            bearer_env: Some(var),
            ..
        }) = &self.mode
        {
            if std::env::var(var).map_or(true, |v| v.trim().is_empty()) {
                return Err(format!("--bearer-env {var}: the variable is not set"));
            }
        }
        // Every path serves one thing.
        let mut taken: Vec<(&str, &str)> = Vec::new();
        if self.output_transport.streamable_http() {
            taken.push(("--path", &self.path));
        }
        if self.output_transport.sse() {
            taken.push(("--sse-path", &self.sse_path));
            taken.push(("--message-path", &self.message_path));
        }
        taken.extend(
            self.health_endpoints
                .iter()
                .map(|p| ("--health-endpoint", p.as_str())),
        );
        let overlaps = |a: &str, b: &str| {
            a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
        };
        for (i, (flag, path)) in taken.iter().enumerate() {
            if let Some((other, _)) = taken.iter().take(i).find(|(_, p)| overlaps(p, path)) {
                return Err(format!("{flag} {path} overlaps {other}'s path"));
            }
        }
        Ok(())
    }
}

impl From<Cli> for Options {
    fn from(cli: Cli) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Options {
            bind: cli.bind,
            port: cli.port,
            path: cli.path,
            output_transport: cli.output_transport,
            sse_path: cli.sse_path,
            message_path: cli.message_path,
            health_endpoints: cli.health_endpoints,
            shared: cli.shared,
            max_sessions: size(cli.max_sessions),
            max_message_bytes: size(cli.max_message_bytes),
            request_timeout: Duration::from_secs(cli.request_timeout_secs),
            idle_timeout: Duration::from_secs(cli.idle_timeout_secs),
            allowed_hosts: LOOPBACK_HOSTS
                .iter()
                .map(|h| h.to_string())
                .chain(cli.allowed_hosts)
                .collect(),
            any_host: cli.allow_any_host,
            // CORS origins are accepted by the Origin check too; `--cors`
            // alone accepts any.
            allowed_origins: cli
                .allowed_origins
                .into_iter()
                .chain(cli.cors.iter().flatten().cloned())
                .collect(),
            any_origin: cli.allow_any_origin || cli.cors.as_ref().is_some_and(Vec::is_empty),
            cors: cli.cors,
            command: cli.command,
            connect: cli.mode.map(
                |Mode::Connect {
                     url,
                     headers,
                     bearer,
                     bearer_env,
                     remote_transport,
                 }| Remote {
                    url,
                    transport: remote_transport,
                    headers,
                    bearer: bearer.or_else(|| {
                        bearer_env
                            .and_then(|var| std::env::var(var).ok())
                            .map(|t| t.trim().to_string())
                    }),
                },
            ),
            log_level: cli.log_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_command_follows_the_double_dash() {
        let o = parse(&[
            "--port", "9000", "--shared", "--", "npx", "-y", "server", "--port", "1",
        ])
        .unwrap();
        assert_eq!(o.port, 9000);
        assert!(o.shared);
        assert_eq!(o.command, ["npx", "-y", "server", "--port", "1"]);
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        assert!(parse(&["--port", "x", "--", "a"])
            .unwrap_err()
            .contains("--port"));
        assert!(parse(&["--bogus", "--", "a"])
            .unwrap_err()
            .contains("--bogus"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("COMMAND"));
        assert!(parse(&["--max-sessions", "0", "--", "a"]).is_err());
        assert!(parse(&["--bind", "not-an-ip", "--", "a"])
            .unwrap_err()
            .contains("--bind"));
        assert!(parse(&["--allowed-host", "a b", "--", "a"])
            .unwrap_err()
            .contains("--allowed-host"));
        assert!(parse(&["--allowed-host", "", "--", "a"]).is_err());
        assert!(parse(&["--allowed-origin", "example.com", "--", "a"])
            .unwrap_err()
            .contains("--allowed-origin"));
        assert!(parse(&["--allowed-origin", "https://example.com/path", "--", "a"]).is_err());
    }

    #[test]
    fn paths_health_endpoints_and_cors_are_read_and_checked() {
        let o = parse(&["--", "a"]).unwrap();
        assert_eq!(o.path, "/mcp");
        assert!(o.health_endpoints.is_empty() && o.cors.is_none());
        let o = parse(&[
            "--path",
            "/v1/mcp",
            "--health-endpoint",
            "/healthz",
            "--health-endpoint",
            "/ready",
            "--cors",
            "https://app.example.com",
            "--",
            "a",
        ])
        .unwrap();
        assert_eq!(o.path, "/v1/mcp");
        assert_eq!(o.health_endpoints, ["/healthz", "/ready"]);
        assert_eq!(o.cors, Some(vec!["https://app.example.com".to_string()]));
        assert!(o
            .allowed_origins
            .contains(&"https://app.example.com".to_string()));
        assert!(!o.any_origin);
        let o = parse(&["--cors", "--", "a"]).unwrap();
        assert_eq!(o.cors, Some(vec![]));
        assert!(o.any_origin, "--cors alone: any origin");
        for bad in ["/", "mcp", "/mcp/", "/a//b", "/a/../b", "/a b", "/a?x"] {
            assert!(
                parse(&["--path", bad, "--", "a"])
                    .unwrap_err()
                    .contains("--path"),
                "{bad}"
            );
        }
        assert!(parse(&["--health-endpoint", "/mcp", "--", "a"])
            .unwrap_err()
            .contains("overlaps --path"));
        let o = parse(&["--output-transport", "both", "--", "a"]).unwrap();
        assert!(o.output_transport.sse() && o.output_transport.streamable_http());
        assert_eq!(
            (o.sse_path.as_str(), o.message_path.as_str()),
            ("/sse", "/message")
        );
        assert!(parse(&[
            "--output-transport",
            "sse",
            "--sse-path",
            "/m",
            "--message-path",
            "/m",
            "--",
            "a"
        ])
        .is_err());
        // With only the legacy transport, --path is not served: no overlap.
        assert!(parse(&["--output-transport", "sse", "--sse-path", "/mcp", "--", "a"]).is_ok());
        assert!(parse(&["--path", "/x", "--health-endpoint", "/x/health", "--", "a"]).is_err());
        assert!(parse(&["--cors", "example.com", "--", "a"])
            .unwrap_err()
            .contains("--cors"));
    }

    #[test]
    fn connect_takes_a_url_headers_and_a_token() {
        let o = parse(&[
            "--request-timeout-secs",
            "5",
            "connect",
            "http://gw.example.com/mcp",
            "--header",
            "X-Team: blue",
            "--bearer",
            "t0k",
        ])
        .unwrap();
        let remote = o.connect.unwrap();
        assert_eq!(remote.url, "http://gw.example.com/mcp");
        let tls = parse(&["connect", "https://gw.example.com/mcp"]).unwrap_err();
        assert!(tls.to_string().contains("no TLS"), "{tls}");
        assert_eq!(remote.headers, [("x-team".to_string(), "blue".to_string())]);
        assert_eq!(remote.bearer.as_deref(), Some("t0k"));
        assert_eq!(remote.transport, RemoteTransport::StreamableHttp);
        assert!(o.command.is_empty());
        let legacy = parse(&["connect", "http://x/sse", "--remote-transport", "sse"]).unwrap();
        assert_eq!(legacy.connect.unwrap().transport, RemoteTransport::Sse);
        assert!(parse(&["connect", "http://x/sse", "--remote-transport", "ws"]).is_err());
        assert!(parse(&["connect", "ftp://x/mcp"])
            .unwrap_err()
            .contains("http"));
        assert!(parse(&["connect", "http://x/mcp", "--header", "nocolon"]).is_err());
        assert!(parse(&[
            "connect",
            "http://x/mcp",
            "--bearer",
            "a",
            "--bearer-env",
            "B"
        ])
        .is_err());
        assert!(parse(&[
            "connect",
            "http://x/mcp",
            "--bearer-env",
            "MCP_BRIDGE_TEST_UNSET_VAR"
        ])
        .unwrap_err()
        .contains("not set"));
    }

    #[test]
    fn loopback_names_are_allowed_and_more_can_be_added() {
        let o = parse(&["--", "a"]).unwrap();
        assert_eq!(o.allowed_hosts, ["localhost", "127.0.0.1", "[::1]"]);
        assert!(!o.any_host && !o.any_origin);
        let o = parse(&[
            "--allowed-host",
            "mcp.example.com",
            "--allowed-host",
            "10.0.0.5:8081",
            "--allowed-origin",
            "https://app.example.com",
            "--",
            "a",
        ])
        .unwrap();
        assert_eq!(o.allowed_hosts[3..], ["mcp.example.com", "10.0.0.5:8081"]);
        assert_eq!(o.allowed_origins, ["https://app.example.com"]);
        let o = parse(&["--allow-any-host", "--allow-any-origin", "--", "a"]).unwrap();
        assert!(o.any_host && o.any_origin);
    }
}
