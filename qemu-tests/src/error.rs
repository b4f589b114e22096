//! The library's one error type: every way a lab step can fail, each message a sentence that
//! names what was being done, so a failed test reads without a debugger.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while building, running or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A lab, namespace, node or interface name that cannot be used.
    #[error("the name {name:?} cannot be used: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another live process owns a lab of that name.
    #[error("lab namespace {netns} is in use by live process {pid}")]
    InUse {
        /// The namespace.
        netns: String,
        /// Its owner.
        pid: u32,
    },
    /// A helper command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// A helper command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file or socket operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done, such as "create /run/omlab".
        what: String,
        /// Why.
        source: io::Error,
    },
    /// A bounded wait ran out.
    #[error("timed out after {secs:.1} s waiting for {what}{detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        secs: f64,
        /// Extra context, usually the tail of a log (starts with a newline when present).
        detail: String,
    },
    /// A process the lab waits on exited first.
    #[error("{label} exited ({status}) while waiting for {what}{detail}")]
    Exited {
        /// The process's label in the registry.
        label: String,
        /// Its exit status.
        status: String,
        /// What was awaited.
        what: String,
        /// The tail of its log (starts with a newline when present).
        detail: String,
    },
    /// SIGINT or SIGTERM arrived; see [`crate::cancel`].
    #[error("interrupted by a signal while waiting for {what}")]
    Aborted {
        /// What was awaited.
        what: String,
    },
    /// A process or namespace survived teardown.
    #[error("teardown of lab {lab} left things behind: {what}")]
    Lingering {
        /// The lab.
        lab: String,
        /// What survived.
        what: String,
    },
    /// A QMP exchange with QEMU failed.
    #[error("QMP on {path}: {reason}")]
    Qmp {
        /// The QMP socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A serial line carried a node marker that does not parse.
    #[error("malformed marker line {line:?}: {reason}")]
    Marker {
        /// The line.
        line: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The ombootd config could not be rendered.
    #[error("cannot render the ombootd config: {0}")]
    Render(String),
    /// An anchor server for a benchmark could not be prepared.
    #[error("cannot prepare the benchmark anchor: {0}")]
    Anchor(String),
    /// The browser (chromedriver) refused or failed a WebDriver command.
    #[error("the browser could not {what}: {reason}")]
    Browser {
        /// The command, such as "open the page".
        what: String,
        /// chromedriver's message.
        reason: String,
    },
    /// A worker thread of the lab panicked (a bug in the lab itself).
    #[error("the lab's {0} thread panicked")]
    Panicked(String),
    /// A UEFI variable store the lab was to write firmware settings into is not one it can
    /// write.
    #[error("cannot set the firmware's variables in {path}: {reason}")]
    VarStore {
        /// The variable store file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the lab needs is missing.
    #[error("{what} not found at {path}")]
    Missing {
        /// What it is, such as "OVMF code".
        what: &'static str,
        /// Where we looked.
        path: PathBuf,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
