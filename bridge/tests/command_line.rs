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

/// rmcp logs through `tracing`: with `RUST_LOG` its lines reach the bridge's
/// log beside the bridge's own (they used to be lost), and `--log-level`
/// takes only the levels it names.
#[test]
fn rust_log_brings_rmcp_logs_to_the_bridge_log() {
    let (answer, text) = one_session_logged(&[], &[("RUST_LOG", "rmcp=debug,mcp_bridge=info")]);
    assert!(answer.contains("\"serverInfo\""), "{answer}");
    assert!(text.contains(" rmcp"), "no rmcp line in the log:\n{text}");
    assert!(text.contains("] started `"), "{text}");
}

#[test]
fn log_level_off_logs_nothing() {
    let (answer, text) = one_session_logged(&["--log-level", "off"], &[]);
    assert!(answer.contains("\"serverInfo\""), "{answer}");
    assert!(text.is_empty(), "{text}");
}

/// Runs the bridge (with `options` and `env`) over the rmcp stdio server
/// for one `initialize`: its answer, and what the bridge logged.
fn one_session_logged(options: &[&str], env: &[(&str, &str)]) -> (String, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let log = std::env::temp_dir().join(format!(
        "mcp-bridge-log-{}-{}.log",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let peer = mcp_filter_integration::peer_bin();
    let mut bridge = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
        .args(["--port", "0"])
        .args(options)
        .arg("--")
        .arg(&peer)
        .args(["--mode", "stdio"])
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("mcp-bridge starts");
    let mut line = String::new();
    BufReader::new(bridge.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let _ = bridge.kill();
    let _ = bridge.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (answer, text)
}

#[test]
fn a_log_level_is_checked() {
    let bad = run(
        env!("CARGO_BIN_EXE_mcp-bridge"),
        &["--log-level", "loud", "--", "true"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--log-level"));
}
