//! The harness's one error type: every variant carries enough context to
//! diagnose a CI failure from the message alone.

use std::time::Duration;

/// What went wrong while driving a daemon or a tool.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A tool ran but reported failure.
    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },
    /// A condition polled with `wait_until`/`wait_for` never held.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// A daemon exited while it should be running.
    #[error("{daemon} exited early ({status}); log tail:\n{log_tail}")]
    DaemonExited {
        daemon: String,
        status: String,
        log_tail: String,
    },
    /// A reply or output could not be understood.
    #[error("unexpected output from {from}: {detail}")]
    Parse { from: String, detail: String },
    /// A program or file the harness needs is not there.
    #[error("{0}")]
    Missing(String),
}

/// Result alias for the harness.
pub type Result<T> = std::result::Result<T, HarnessError>;

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parse(from: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Parse {
            from: from.into(),
            detail: detail.into(),
        }
    }
}
