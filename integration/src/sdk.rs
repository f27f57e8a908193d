//! The official SDKs' clients as child processes: the scripts under
//! `scripts/clients/`, run with what `scripts/test` installs from the
//! registries (`.venv/py-mcp`: PyPI's `mcp`; `.venv/npm`: npm's
//! `@modelcontextprotocol/sdk`, which `server-everything` brings). Absent
//! outside CI, a test skips with a message; under `CI=true` it fails.

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

/// npm's TypeScript SDK (`@modelcontextprotocol/sdk`), or `None` (with a
/// message) outside CI when `scripts/test` has not installed it.
pub fn ts_sdk() -> Result<Option<PathBuf>> {
    let sdk = repo_root().join(".venv/npm/node_modules/@modelcontextprotocol/sdk");
    if sdk.join("package.json").is_file() {
        return Ok(Some(sdk));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true but the TypeScript MCP SDK is not installed (scripts/test installs it)");
    }
    eprintln!("skipping: the TypeScript MCP SDK is not installed (scripts/test installs it into .venv/npm)");
    Ok(None)
}

/// Runs `scripts/clients/<script>` with `args`, bounded in time.
pub fn run_python_client(python: &PathBuf, script: &str, args: &[&str]) -> Result<ClientRun> {
    run(Command::new(python), script, args)
}

/// Like [`run_python_client`], with `envs` set (e.g. `SSL_CERT_FILE`, the
/// CA a client trusts for HTTPS).
pub fn run_python_client_with(
    python: &PathBuf,
    script: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<ClientRun> {
    let mut command = Command::new(python);
    command.envs(envs.iter().copied());
    run(command, script, args)
}

/// Runs the Node script `scripts/clients/<script>` against the SDK at `sdk`.
pub fn run_node_client(sdk: &PathBuf, script: &str, args: &[&str]) -> Result<ClientRun> {
    let mut node = Command::new("node");
    node.env("MCP_TS_SDK", sdk);
    run(node, script, args)
}

fn run(interpreter: Command, script: &str, args: &[&str]) -> Result<ClientRun> {
    let path = repo_root().join("scripts/clients").join(script);
    // Bounded: a client that hangs fails the test instead of stalling it.
    let program = interpreter.get_program().to_owned();
    let envs: Vec<_> = interpreter
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let output = Command::new("timeout")
        .arg("60")
        .arg(program)
        .arg(&path)
        .args(args)
        .envs(envs)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(ClientRun {
        success: output.status.success(),
        output: text,
    })
}
