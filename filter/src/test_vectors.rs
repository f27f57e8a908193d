//! Test-only access to `../shared/mcp-wire`: exchanges captured from real MCP
//! servers. CI has the folder and must use it; a user's clone does not, and the
//! tests that read it skip with a message there.

use std::path::{Path, PathBuf};

/// The capture folder, or `None` (with a message) outside CI when it is absent.
pub fn dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mcp-wire");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the capture folder {} is missing",
            dir.display()
        );
    }
    eprintln!(
        "skipping: {} not found (it ships beside the repo in CI only)",
        dir.display()
    );
    None
}

/// Every file below `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
