//! The stdio server's process: spawned in a process group of its own, its
//! stdin/stdout a [`Lines`] transport (messages kept whole, see `raw`), its
//! stderr copied to the bridge's log with a prefix. When a session ends its
//! child's stdin is closed (MCP's stdio shutdown); a child still running two
//! seconds later gets SIGTERM, two more and SIGKILL, each to its whole
//! process group. When a child exits, what is left of its group is
//! terminated, and when the bridge stops every group is: a server that
//! starts processes of its own (`npx` starting `node`, a shell script)
//! leaves none behind. Every child is waited for: no zombies.

use crate::raw::{Answers, Lines};
use rmcp::RoleClient;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::oneshot;

/// Children alive now (pid), so a shutdown can make sure none is left.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);
/// How long a child has after its stdin closes, then after SIGTERM.
const GRACE: Duration = Duration::from_secs(2);

pub type ChildTransport = Lines<RoleClient, BufReader<ChildStdout>, ChildStdin>;

/// A spawned child: the transport to serve a client over, its label for
/// logs, and its process group (terminated when this is dropped).
pub struct Spawned {
    pub transport: ChildTransport,
    pub label: String,
    pub group: Group,
}

/// A child's process group: dropped with the child's client (its session
/// ended, or the child was replaced), it terminates what is left of the
/// group, processes the child started included.
pub struct Group(Option<oneshot::Sender<()>>);

impl Group {
    /// No process of ours (`connect`: the server is remote).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts `command`; its messages longer than `max_line` bytes are dropped,
/// and the whole result of each answer marked for it is kept in `answers`.
pub fn spawn(
    command: &[String],
    max_line: usize,
    answers: Arc<Answers>,
) -> std::io::Result<Spawned> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own group (pgid = its pid), so the group can be signalled whole.
    #[cfg(unix)]
    cmd.process_group(0);
    // Last resort: a child still there when the bridge's runtime ends.
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other("the child's stdio is not piped"));
    };
    let label = format!("child {}", NEXT.fetch_add(1, Ordering::Relaxed));
    let pid = child.id();
    if let (Some(pid), Ok(mut live)) = (pid, LIVE.lock()) {
        live.push(pid);
    }
    tracing::info!(
        "[{label}] started `{}` (pid {})",
        command.join(" "),
        pid.map_or("?".into(), |p| p.to_string())
    );
    if let Some(stderr) = child.stderr.take() {
        let prefix = label.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!("[{prefix}] {line}");
            }
        });
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let prefix = label.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            _ = stopped => {
                // MCP's stdio shutdown: its stdin is closed; it may take a
                // moment to exit, then it is asked, then made to.
                if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                    signal_group(pid, Signal::Term);
                    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                        signal_group(pid, Signal::Kill);
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                }
            }
        }
        tracing::info!("[{prefix}] exited");
        // Its stdio closed: whatever it started goes with it.
        signal_group(pid, Signal::Term);
        if let (Some(pid), Ok(mut live)) = (pid, LIVE.lock()) {
            live.retain(|p| *p != pid);
        }
    });
    Ok(Spawned {
        transport: Lines::new(BufReader::new(stdout), stdin, max_line, Some(answers)),
        label,
        group: Group(Some(stop)),
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

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// `signal` to the process group a child leads (none left: nothing to do).
fn signal_group(pid: Option<u32>, signal: Signal) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        use nix::sys::signal::Signal as Nix;
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            match signal {
                Signal::Term => Nix::SIGTERM,
                Signal::Kill => Nix::SIGKILL,
            },
        );
    }
}

/// Terminates every child's group and waits for the children (no zombies,
/// no orphans): SIGTERM, then SIGKILL to what is left after the grace.
pub async fn reap_all() {
    let live = || LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in live() {
        signal_group(Some(pid), Signal::Term);
    }
    // Each child's waiter sees it end.
    let all_gone = || async {
        let deadline = tokio::time::Instant::now() + GRACE;
        while !live().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    all_gone().await;
    for pid in live() {
        signal_group(Some(pid), Signal::Kill);
    }
    all_gone().await;
}
