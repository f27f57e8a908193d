//! `mcp-bridge`'s command line: `--help` and `--version` exit 0 without
//! starting anything, an unknown flag or a missing command exits 2.

use mcp_filter_integration::command_line::{check, run};

#[test]
fn mcp_bridge_has_a_command_line() {
    let bridge = env!("CARGO_BIN_EXE_mcp-bridge");
    check(bridge, "mcp-bridge", env!("CARGO_PKG_VERSION"));
    let help = run(bridge, &["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--allowed-host"));
    let no_command = run(bridge, &["--port", "0"]);
    assert_eq!(no_command.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_command.stderr).contains("<COMMAND>"));
    let zero = run(bridge, &["--max-sessions", "0", "--", "true"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--max-sessions"));
}
