//! Finding programs, running short-lived tools with a deadline, and spawning
//! daemons so that they die with the test binary.

use crate::error::{HarnessError, Result};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where a command runs: the test's own namespace or a named one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The namespace the test binary runs in.
    Host,
    /// A network namespace, entered with `ip netns exec`.
    Netns(String),
}

impl Place {
    /// A command for `name` (resolved with [`program`]) that runs here.
    pub fn command(&self, name: &str) -> Result<Command> {
        let path = program(name)?;
        match self {
            Place::Host => Ok(Command::new(path)),
            Place::Netns(ns) => {
                // `ip netns exec` execs the target in place (no fork), so the
                // pid we get is the daemon's own pid.
                let mut cmd = Command::new(program("ip")?);
                cmd.arg("netns").arg("exec").arg(ns).arg(path);
                Ok(cmd)
            }
        }
    }
}

/// Absolute path of a program, searching `PATH` and then the sbin
/// directories that a non-login root shell may lack.
pub fn program(name: &str) -> Result<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
    std::env::split_paths(&path_var)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            HarnessError::Missing(format!("program `{name}` not found in PATH or /usr/sbin"))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What a finished tool printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Exit code, or None when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout followed by stderr, for error messages and assertions.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// Runs a tool to completion, killing it after `timeout`.
pub(crate) fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(cmd).map_err(|e| HarnessError::io(format!("spawning `{what}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .map_err(|e| HarnessError::io(format!("writing stdin of `{what}`"), e))?;
    }
    // Readers on their own threads so a chatty tool cannot fill a pipe and
    // stall while we wait for it to exit.
    let stdout = child.stdout.take().map(read_to_end_thread);
    let stderr = child.stderr.take().map(read_to_end_thread);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HarnessError::Timeout {
                    what: format!("`{what}` to finish"),
                    after: timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(HarnessError::io(format!("waiting for `{what}`"), e)),
        }
    };
    let collect = |handle: Option<std::thread::JoinHandle<Vec<u8>>>| {
        handle
            .and_then(|h| h.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Like [`run`], but a non-zero exit is an error.
pub(crate) fn run_ok(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let command = describe(&cmd);
    let output = run(cmd, stdin, timeout)?;
    if output.success() {
        return Ok(output);
    }
    Err(HarnessError::CommandFailed {
        command,
        status: output.status.to_string(),
        output: output.combined(),
    })
}

fn read_to_end_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` so that it gets SIGKILL when the test binary dies, even by
/// SIGKILL (a CI timeout), and no daemon outlives its test run.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits, and libtest
/// runs each test on its own short-lived thread; so all forks happen on one
/// spawner thread that lives as long as the process.
pub(crate) fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<SpawnRequest>>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (cmd, reply) in rx {
                    let _ = reply.send(spawn_with_death_signal(cmd));
                }
            });
        match thread {
            Ok(_) => Some(Mutex::new(tx)),
            Err(e) => {
                eprintln!(
                    "harness: no spawner thread ({e}); children die with their test thread instead"
                );
                None
            }
        }
    });
    let Some(spawner) = spawner else {
        return spawn_with_death_signal(cmd);
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}

fn spawn_with_death_signal(mut cmd: Command) -> std::io::Result<Child> {
    // SAFETY: the closure runs between fork and exec and only calls prctl,
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}
