//! Kill-on-drop guard for a daemon started by a test.

use crate::error::{HarnessError, Result};
use crate::process::{describe, spawn};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 60;

/// A running child process that is stopped when the guard drops: SIGTERM,
/// a grace period, then SIGKILL. Its stdout and stderr go to a log file; when
/// the guard drops during a panic (a failing test), the tail of that file and
/// of any [`watch_log`](Self::watch_log) files is printed, so a CI failure
/// shows what the daemon said.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    output_log: PathBuf,
    watched: Vec<PathBuf>,
}

impl ChildGuard {
    /// Starts `cmd` with stdin closed and stdout+stderr appended to
    /// `output_log`. `name` labels log tails and errors.
    pub fn spawn(name: &str, mut cmd: Command, output_log: &Path) -> Result<Self> {
        let what = describe(&cmd);
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(output_log)
                .map_err(|e| HarnessError::io(format!("opening {}", output_log.display()), e))
        };
        cmd.stdin(Stdio::null()).stdout(open()?).stderr(open()?);
        let child =
            spawn(cmd).map_err(|e| HarnessError::io(format!("starting {name}: `{what}`"), e))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            output_log: output_log.to_owned(),
            watched: Vec::new(),
        })
    }

    /// Also print the tail of `path` (e.g. the daemon's own log file) when
    /// the test fails.
    pub fn watch_log(&mut self, path: &Path) {
        self.watched.push(path.to_owned());
    }

    /// The child's pid, None once it has been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The file receiving the child's stdout and stderr.
    pub fn output_log(&self) -> &Path {
        &self.output_log
    }

    /// Ok while the child runs; otherwise an error with its exit status and
    /// log tails.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("stopped by the test".to_owned()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(HarnessError::io(format!("polling {}", self.name), e)),
        }
    }

    fn exited(&self, status: String) -> HarnessError {
        HarnessError::DaemonExited {
            daemon: self.name.clone(),
            status,
            log_tail: self.log_tails(),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the child.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let Some(pid) = self.pid() else {
            return Err(HarnessError::Missing(format!(
                "{} is not running",
                self.name
            )));
        };
        send_signal(pid, signal)
            .map_err(|e| HarnessError::io(format!("signalling {}", self.name), e))
    }

    /// Stops the child: SIGTERM, up to 10 s grace, then SIGKILL. Returns
    /// its exit status (None if it was already stopped).
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(status));
        }
        let _ = send_signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(HarnessError::io(format!("waiting for {}", self.name), e)),
            }
        }
        eprintln!(
            "harness: {} ignored SIGTERM for {STOP_GRACE:?}; sending SIGKILL",
            self.name
        );
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(|e| HarnessError::io(format!("reaping {}", self.name), e))
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let name = self.name.clone();
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| HarnessError::Missing(format!("{name} is not running")))?;
        let status = crate::wait_for(timeout, &format!("{name} to exit"), || {
            child.try_wait().ok().flatten()
        })?;
        self.child = None;
        Ok(status)
    }

    /// The last lines of the output log and every watched log.
    pub fn log_tails(&self) -> String {
        std::iter::once(&self.output_log)
            .chain(&self.watched)
            .map(|path| {
                format!(
                    "----- {} ({}) -----\n{}",
                    self.name,
                    path.display(),
                    tail(path, TAIL_LINES)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let was_running = self.child.is_some();
        if let Err(e) = self.stop() {
            eprintln!("harness: stopping {}: {e}", self.name);
        }
        if was_running && std::thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
    }
}

fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions; pid is our own
    // unreaped child, so it cannot have been recycled for another process.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    Err(std::io::Error::last_os_error())
}

/// The last `lines` lines of a text file, or a note why there are none.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}
