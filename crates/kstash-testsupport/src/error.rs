//! The crate's typed error: missing tools, servers that never became ready, failed commands, I/O.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or talking to a test server.
///
/// `Debug` prints the same text as `Display`, so `.expect()` and tests returning `Result` show the
/// message and the server log tail with real line breaks.
#[derive(thiserror::Error)]
pub enum Error {
    /// A binary or package is not installed.
    #[error("{tool} not found ({detail}); run scripts/setup")]
    ToolMissing { tool: String, detail: String },

    /// The readiness check did not pass in time, or the process exited during start-up.
    #[error("{server} not ready after {waited:?}: {reason}\n--- last lines of {log} ---\n{tail}")]
    NotReady {
        server: String,
        waited: Duration,
        reason: String,
        log: PathBuf,
        tail: String,
    },

    /// A helper command (initdb, psql, restic, python, ...) exited unsuccessfully.
    #[error("command `{command}` failed ({status})\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}")]
    CommandFailed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },

    /// An HTTP request could not be sent or its response could not be read.
    #[error("HTTP {method} {url}: {message}")]
    Http {
        method: String,
        url: String,
        message: String,
    },

    /// A server answered, but not as expected.
    #[error("{0}")]
    Protocol(String),

    /// A local I/O error.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a description to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
