//! npm's `@modelcontextprotocol/server-everything` (the TypeScript SDK's
//! reference server) over Streamable HTTP, as a real third-party upstream.
//! `scripts/test` installs it into `.venv/npm`; without it a test skips with
//! a message, except under `CI=true`, where it fails.

use crate::repo_root;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server-everything on a loopback port.
pub struct Everything {
    child: Child,
    pub port: u16,
}

/// Binds whatever the server listens on to loopback only (it would listen
/// on every interface), loaded before the server with `--import`.
const LOOPBACK_ONLY: &str = "import net from 'node:net';\n\
const listen = net.Server.prototype.listen;\n\
net.Server.prototype.listen = function (port, ...rest) {\n\
  if (typeof port === 'number' || typeof port === 'string') {\n\
    const cb = rest.find((a) => typeof a === 'function');\n\
    return listen.call(this, Number(port), '127.0.0.1', cb);\n\
  }\n\
  return listen.call(this, port, ...rest);\n\
};\n";

impl Everything {
    /// Starts it, or `None` (with a message) when it is not installed outside CI.
    pub fn start() -> Result<Option<Self>> {
        let root = repo_root();
        let index = root
            .join(".venv/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        if !index.is_file() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("CI=true but server-everything is not installed (scripts/test installs it)");
            }
            eprintln!("skipping: @modelcontextprotocol/server-everything is not installed (scripts/test installs it into .venv/npm)");
            return Ok(None);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("mcp-filter-everything-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let preload = dir.join("loopback.mjs");
        std::fs::write(&preload, LOOPBACK_ONLY)?;
        let mut child = Command::new("node")
            .arg("--import")
            .arg(&preload)
            .arg(&index)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting node (needed for server-everything)")?;
        // It says so on stderr once it listens.
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on port") {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while rx.try_recv().is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("server-everything did not start");
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("server-everything exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(Self { child, port }))
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
