//! Command-line options.

use std::net::IpAddr;
use std::time::Duration;

pub const USAGE: &str = "usage: mcp-bridge [--bind ADDR] [--port N] [--shared] [--max-sessions N]
                  [--max-message-bytes N] [--request-timeout-secs N]
                  [--idle-timeout-secs N] [--allowed-host NAME[:PORT]]...
                  [--allowed-origin ORIGIN]... [--allow-any-host]
                  [--allow-any-origin] -- <command> [args...]";

/// The `Host` names every bridge accepts (any port): loopback names, which no
/// one else's DNS can point at this machine.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

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
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8081,
            shared: false,
            max_sessions: 64,
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            allowed_hosts: LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect(),
            any_host: false,
            allowed_origins: Vec::new(),
            any_origin: false,
            command: Vec::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--" => {
                    options.command = args.by_ref().collect();
                    break;
                }
                "--shared" => options.shared = true,
                "--allow-any-host" => options.any_host = true,
                "--allow-any-origin" => options.any_origin = true,
                "--allowed-host" => {
                    let host = value("--allowed-host")?;
                    crate::guard::parse_allowed_host(&host).ok_or(format!(
                        "--allowed-host: `{host}` is not a host name or host:port"
                    ))?;
                    options.allowed_hosts.push(host);
                }
                "--allowed-origin" => {
                    let origin = value("--allowed-origin")?;
                    crate::guard::parse_allowed_origin(&origin).ok_or(format!(
                        "--allowed-origin: `{origin}` is not an origin (scheme://host[:port], or null)"
                    ))?;
                    options.allowed_origins.push(origin);
                }
                "--bind" => {
                    options.bind = value("--bind")?
                        .parse()
                        .map_err(|e| format!("--bind: {e}"))?
                }
                "--port" => options.port = number("--port", &value("--port")?)?,
                "--max-sessions" => {
                    options.max_sessions = number("--max-sessions", &value("--max-sessions")?)?
                }
                "--max-message-bytes" => {
                    options.max_message_bytes =
                        number("--max-message-bytes", &value("--max-message-bytes")?)?
                }
                "--request-timeout-secs" => {
                    options.request_timeout = Duration::from_secs(number(
                        "--request-timeout-secs",
                        &value("--request-timeout-secs")?,
                    )?)
                }
                "--idle-timeout-secs" => {
                    options.idle_timeout = Duration::from_secs(number(
                        "--idle-timeout-secs",
                        &value("--idle-timeout-secs")?,
                    )?)
                }
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        if options.command.is_empty() {
            return Err("name the stdio server to run after `--`".into());
        }
        if options.max_sessions == 0 || options.max_message_bytes == 0 {
            return Err("limits must be greater than 0".into());
        }
        Ok(options)
    }
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not a number"))
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
        assert!(parse(&["--port", "1"]).unwrap_err().contains("after `--`"));
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
