//! The official SDKs' clients as child processes: the scripts under
//! `scripts/clients/`, run with the interpreters `scripts/test` installs from
//! the registries (`.venv/py-mcp`: PyPI's `mcp`). Absent outside CI, a test
//! skips with a message; under `CI=true` it fails.

use crate::repo_root;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// What a client script printed, and whether it succeeded.
#[derive(Debug)]
pub struct ClientRun {
    pub success: bool,
    pub output: String,
}

/// The Python with PyPI's `mcp` installed, or `None` (with a message)
/// outside CI when `scripts/test` has not installed it.
pub fn python_sdk() -> Result<Option<PathBuf>> {
    let python = repo_root().join(".venv/py-mcp/bin/python");
    if python.is_file() {
        return Ok(Some(python));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true but the Python MCP SDK is not installed (scripts/test installs it)");
    }
    eprintln!("skipping: the Python MCP SDK is not installed (scripts/test installs it into .venv/py-mcp)");
    Ok(None)
}

/// Runs `scripts/clients/<script>` with `args`, bounded in time.
pub fn run_python_client(python: &PathBuf, script: &str, args: &[&str]) -> Result<ClientRun> {
    let path = repo_root().join("scripts/clients").join(script);
    let output = Command::new("timeout")
        .arg("60")
        .arg(python)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(ClientRun {
        success: output.status.success(),
        output: text,
    })
}
