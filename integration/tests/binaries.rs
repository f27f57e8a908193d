//! The helper binaries behave as a Rust user expects of a command line:
//! `--help` and `--version` print and exit 0 (and start nothing), an
//! unknown flag is an error (exit 2) that names it.

use mcp_filter_integration::command_line::{check, run};

#[test]
fn mcp_peer_has_a_command_line() {
    check(
        env!("CARGO_BIN_EXE_mcp-peer"),
        "mcp-peer",
        env!("CARGO_PKG_VERSION"),
    );
    let bad_mode = run(env!("CARGO_BIN_EXE_mcp-peer"), &["--mode", "nope"]);
    assert_eq!(bad_mode.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_mode.stderr).contains("stateless-json"));
}

#[test]
fn demo_idp_has_a_command_line() {
    check(
        env!("CARGO_BIN_EXE_demo-idp"),
        "demo-idp",
        env!("CARGO_PKG_VERSION"),
    );
    let missing = run(env!("CARGO_BIN_EXE_demo-idp"), &["--port", "0"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--issuer"));
}
