//! The stdio server's process: spawned through the SDK's child-process
//! transport in a process group of its own, its stderr copied to the
//! bridge's log with a prefix. When a child ends (its session closed, or it
//! exited) what is left of its group is terminated, and when the bridge stops
//! every group is: a server that starts processes of its own (`npx` starting
//! `node`, a shell script) leaves none behind.

use rmcp::transport::TokioChildProcess;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Children alive now (pid), so a shutdown can make sure none is left.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A spawned child: the transport to serve a client over, its label for
/// logs, and its process group (terminated when this is dropped).
pub struct Spawned {
    pub transport: TokioChildProcess,
    pub label: String,
    pub group: Group,
}

/// A child's process group: dropped with the child's client (its session
/// ended, or the child was replaced), it terminates what is left of the
/// group, processes the child started included.
pub struct Group(Option<u32>);

impl Group {
    /// No process of ours (`connect`: the server is remote).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            terminate_group(pid);
        }
    }
}

pub fn spawn(command: &[String]) -> std::io::Result<Spawned> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    // Its own group (pgid = its pid), so the group can be signalled whole.
    #[cfg(unix)]
    cmd.process_group(0);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()?;
    let label = format!("child {}", NEXT.fetch_add(1, Ordering::Relaxed));
    let pid = transport.id();
    if let (Some(pid), Ok(mut live)) = (pid, LIVE.lock()) {
        live.push(pid);
    }
    tracing::info!(
        "[{label}] started `{}` (pid {})",
        command.join(" "),
        pid.map_or("?".into(), |p| p.to_string())
    );
    if let Some(stderr) = stderr {
        let prefix = label.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!("[{prefix}] {line}");
            }
            tracing::info!("[{prefix}] exited");
            if let Some(pid) = pid {
                // Its stdio closed: whatever it started goes with it.
                terminate_group(pid);
                if let Ok(mut live) = LIVE.lock() {
                    live.retain(|p| *p != pid);
                }
            }
        });
    }
    Ok(Spawned {
        transport,
        label,
        group: Group(pid),
    })
}

/// SIGTERM or SIGINT.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGTERM to the process group a child leads (none left: nothing to do).
fn terminate_group(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Terminates every child's group and waits for the children (no zombies,
/// no orphans).
pub async fn reap_all() {
    let pids: Vec<u32> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in pids {
        terminate_group(pid);
    }
    // The SDK's transport waits for its child when it is dropped; give the
    // stderr readers a moment to see the ends.
    for _ in 0..50 {
        if LIVE.lock().map(|l| l.is_empty()).unwrap_or(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
