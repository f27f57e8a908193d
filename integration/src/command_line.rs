//! Command-line conventions of the project's binaries, checked the same way
//! for each: `--help` and `--version` print and exit 0 (and start nothing),
//! an unknown flag is an error (exit 2) that names it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary; fails the test if it is still running after 10 s (a
/// `--help` that started a server).
pub fn run(binary: &str, args: &[&str]) -> Output {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} {args:?} was still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("its output")
}

/// `--help`, `--version` (`NAME VERSION`) and an unknown flag.
pub fn check(binary: &str, name: &str, version: &str) {
    let help = run(binary, &["--help"]);
    assert_eq!(help.status.code(), Some(0), "{name} --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
    let printed = run(binary, &["--version"]);
    assert_eq!(printed.status.code(), Some(0), "{name} --version");
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        format!("{name} {version}")
    );
    let bad = run(binary, &["--no-such-flag"]);
    assert_eq!(bad.status.code(), Some(2), "{name} --no-such-flag");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--no-such-flag"));
}
