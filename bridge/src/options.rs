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
    about = "Serves MCP Streamable HTTP for a stdio MCP server it spawns (put stdio servers behind Envoy and mcp-filter)",
    after_help = "Example: mcp-bridge --port 8081 -- npx -y @modelcontextprotocol/server-everything"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8081, value_name = "N")]
    port: u16,
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

/// How much the bridge logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
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
    /// The stdio server to run: program and arguments.
    pub command: Vec<String>,
    pub log_level: LogLevel,
}

impl Options {
    /// The process's own arguments; `--help` and `--version` print and exit
    /// 0, a bad option prints why and exits 2.
    pub fn from_env() -> Self {
        Self::from(Cli::parse())
    }

    /// Arguments after the program name; the error is clap's message.
    #[cfg(test)]
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let argv = std::iter::once("mcp-bridge".to_string()).chain(args);
        Cli::try_parse_from(argv)
            .map(Self::from)
            .map_err(|e| e.to_string())
    }
}

impl From<Cli> for Options {
    fn from(cli: Cli) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Options {
            bind: cli.bind,
            port: cli.port,
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
            allowed_origins: cli.allowed_origins,
            any_origin: cli.allow_any_origin,
            command: cli.command,
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
