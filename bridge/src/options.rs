//! Command-line options.

use std::net::IpAddr;
use std::time::Duration;

pub const USAGE: &str = "usage: mcp-bridge [--bind ADDR] [--port N] [--shared] [--max-sessions N]
                  [--max-message-bytes N] [--request-timeout-secs N]
                  [--idle-timeout-secs N] -- <command> [args...]";

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
    }
}
