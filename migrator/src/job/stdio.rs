//! The job's stdio and signals as messages: what the deputy, the home omd, the job's node and
//! its keeper pass along. Every byte carries its stream offset, so a hop that reconnects or a
//! job that moves resends from the last acknowledged offset and the receiver drops what it has.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Largest stdio chunk in one message.
pub const CHUNK: usize = 64 * 1024;

/// Signals a deputy forwards to its job (mosrun forwarded the same set).
pub const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Is `sig` one a job may be sent through its deputy (or SIGKILL, when the deputy dies)?
pub fn is_forwardable(sig: i32) -> bool {
    FORWARDED.contains(&sig) || sig == libc::SIGKILL
}

/// Output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// fd 1.
    Out,
    /// fd 2.
    Err,
}

/// One stdio event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Io {
    /// Input for the job, starting at byte `offset` of its stdin.
    Stdin {
        /// Offset of `data[0]` in the stdin stream.
        offset: u64,
        /// Bytes.
        data: ByteBuf,
    },
    /// Stdin ends at `offset`.
    StdinEof {
        /// Total stdin length.
        offset: u64,
    },
    /// Deliver a signal to the job.
    Signal {
        /// Signal number (only [`is_forwardable`] ones are delivered).
        sig: i32,
    },
    /// The deputy has written output up to these offsets: older bytes may be forgotten.
    Ack {
        /// stdout offset.
        out: u64,
        /// stderr offset.
        err: u64,
    },
    /// Output of the job.
    Output {
        /// Which stream.
        stream: Stream,
        /// Offset of `data[0]` in that stream.
        offset: u64,
        /// Bytes.
        data: ByteBuf,
    },
    /// The keeper has written stdin up to `written` into the job's pipe.
    StdinAck {
        /// Stdin offset.
        written: u64,
    },
    /// The job ended; all its output has been sent before this.
    Exited {
        /// Shell-style status: exit code, or 128 + signal.
        status: i32,
        /// Final stdout length.
        out: u64,
        /// Final stderr length.
        err: u64,
    },
}

/// Output not yet acknowledged by the deputy, from `base` on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// Stream offset of `bytes[0]`.
    pub base: u64,
    /// The bytes.
    pub bytes: ByteBuf,
}

/// A frozen job's stdio, carried from the source keeper to the target keeper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioState {
    /// Unacknowledged stdout.
    pub out: Tail,
    /// Unacknowledged stderr.
    pub err: Tail,
    /// Stdin offset up to which the old keeper wrote into the pipe.
    pub stdin_written: u64,
    /// Bytes written into the old pipe that the job had not read: written first on the target.
    pub stdin_unread: ByteBuf,
    /// Stdin had ended (the pipe is closed once `stdin_unread` is written).
    pub stdin_eof: bool,
    /// Inodes of the job's stdin, stdout and stderr pipes at dump time (CRIU's `pipe:[ino]`).
    pub pipe_inodes: [u64; 3],
}

/// Receiver-side de-duplication: which part of a chunk at `offset` is new when `have` bytes of
/// the stream are already written. `None` when it leaves a gap (it must be resent later).
pub fn fresh_part(have: u64, offset: u64, data: &[u8]) -> Option<&[u8]> {
    if offset > have {
        return None;
    }
    let skip = (have - offset) as usize;
    Some(data.get(skip..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_part_drops_repeats_and_refuses_gaps() {
        assert_eq!(fresh_part(0, 0, b"abc"), Some(&b"abc"[..]));
        assert_eq!(fresh_part(2, 0, b"abc"), Some(&b"c"[..]));
        assert_eq!(fresh_part(5, 0, b"abc"), Some(&b""[..]));
        assert_eq!(fresh_part(2, 3, b"abc"), None);
    }

    #[test]
    fn only_the_forwarded_set_and_kill_pass() {
        assert!(is_forwardable(libc::SIGTERM));
        assert!(is_forwardable(libc::SIGKILL));
        assert!(!is_forwardable(libc::SIGSTOP));
        assert!(!is_forwardable(0));
        assert!(!is_forwardable(-9));
    }
}
