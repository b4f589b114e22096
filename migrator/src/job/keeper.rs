//! The keeper: one small root process per job on the node where the job runs. It is the parent
//! (subreaper) of the job's init and holds the other ends of the job's stdio pipes, so the job
//! survives a restart of omd: omd reconnects to `<job dir>/keeper.sock` and everything that the
//! deputy has not acknowledged is sent again. Single-threaded, one poll(2) loop.
//!
//! Phases: `Running` → (`Drain`, after CRIU froze the job) `Frozen` → `Resume` back to `Running`
//! or `Kill` (the job now runs elsewhere). A restored job starts `Held` until `Run`.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::frame::{self, Decoder};
use crate::job::retain::Retained;
use crate::job::spawn::{self, KeeperEnds};
use crate::job::stdio::{CHUNK, Io, StdioState, Stream, is_forwardable};
use crate::job::tree;

/// The keeper's socket in the job directory.
pub const SOCKET: &str = "keeper.sock";

/// What omd tells a keeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToKeeper {
    /// Stdio towards the job, signals, acknowledgements.
    Io(Io),
    /// CRIU has dumped and stopped the job for migration `mid`: take back the pipes' contents.
    Drain {
        /// Migration id.
        mid: u64,
    },
    /// The migration failed: let the job run here again.
    Resume,
    /// The job runs elsewhere now: kill this copy and exit quietly.
    Kill,
    /// A restored job may run now (the migration committed).
    Run,
    /// omd has delivered the exit status: the keeper may go.
    Bye,
    /// A new relay: send everything unacknowledged again.
    Rewind,
}

/// A keeper's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The job runs.
    Running,
    /// Dumped and stopped for migration `mid`; waiting for Resume or Kill.
    Frozen {
        /// Migration id.
        mid: u64,
    },
    /// Restored from migration `mid`, stopped; waiting for Run or Kill.
    Held {
        /// Migration id.
        mid: u64,
    },
    /// The job ended with this shell status.
    Exited {
        /// Status.
        status: i32,
    },
}

/// What a keeper tells omd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromKeeper {
    /// First message on every connection.
    Hello {
        /// Current phase.
        phase: Phase,
        /// Host pid of the job's init.
        pid: i32,
    },
    /// Output, stdin progress, exit.
    Io(Io),
    /// Reply to Drain.
    Drained(StdioState),
}

/// How the keeper starts its job.
#[derive(Debug)]
pub enum Start {
    /// A new job: `omjob init` runs the spec.
    Spawn {
        /// The omjob binary (for `omjob init`).
        omjob: PathBuf,
        /// What to run.
        spec: crate::job::record::JobSpec,
    },
    /// A migrated job: restore the images, stopped.
    Restore {
        /// Image directory.
        images: PathBuf,
        /// Migration id.
        mid: u64,
        /// The stdio carried from the source.
        state: StdioState,
    },
}

/// The job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// Setting up pipes, sockets or processes failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// CRIU failed to restore.
    #[error(transparent)]
    Criu(#[from] crate::migration::criu::CriuError),
}

fn io_err(what: &'static str) -> impl FnOnce(std::io::Error) -> KeeperError {
    move |source| KeeperError::Io { what, source }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own; only its flags change.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Read what is available (non-blocking) from `fd` into `out`, at most `max` bytes.
/// Returns `Ok(true)` at end of file.
fn read_some(fd: RawFd, out: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    let mut buf = vec![0u8; max.min(CHUNK)];
    loop {
        if out.len() >= max {
            return Ok(false);
        }
        let want = buf.len().min(max - out.len());
        // SAFETY: reading into a buffer of at least `want` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), want) };
        if n == 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                ErrorKind::WouldBlock => Ok(false),
                ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

struct Conn {
    s: UnixStream,
    dec: Decoder,
    out: VecDeque<u8>,
}

/// The keeper's state.
struct Keeper {
    dir: PathBuf,
    listener: UnixListener,
    conn: Option<Conn>,
    ends: KeeperEnds,
    stdin_open: bool,
    out_open: bool,
    err_open: bool,
    out: Retained,
    err: Retained,
    /// Stdin bytes received but not yet in the pipe, starting at offset `stdin_written`.
    stdin_pending: VecDeque<u8>,
    stdin_written: u64,
    stdin_eof_at: Option<u64>,
    init: i32,
    phase: Phase,
    exit_sent: bool,
    done: bool,
}

/// Start the job (spawn or restore) and serve it until it has ended and omd has its status.
/// `ready` is called once the socket is bound and the job exists, with the init's host pid.
pub fn run(dir: &Path, start: Start, ready: impl FnOnce(i32)) -> Result<(), KeeperError> {
    // SAFETY: prctl on this process only: orphans below us (the job's init) become our children.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let sock = dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(io_err("binding the keeper socket"))?;
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io_err("securing the keeper socket"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configuring the keeper socket"))?;
    let (ends, job) = spawn::pipes().map_err(io_err("creating the job's pipes"))?;
    let (init, phase, out, err, pending, written, eof) = match start {
        Start::Spawn { omjob, spec } => {
            let pid = spawn::spawn_init(&omjob, &spec, job).map_err(io_err("starting the job"))?;
            (
                pid,
                Phase::Running,
                Retained::default(),
                Retained::default(),
                VecDeque::new(),
                0,
                None,
            )
        }
        Start::Restore { images, mid, state } => {
            let criu = crate::migration::criu::CriuCli::default();
            let inherit = [
                (job.stdin.as_raw_fd(), state.pipe_inodes[0]),
                (job.out.as_raw_fd(), state.pipe_inodes[1]),
                (job.err.as_raw_fd(), state.pipe_inodes[2]),
            ];
            let pid = crate::migration::criu::Criu::restore(&criu, &images, &inherit)?;
            drop(job);
            let written = state.stdin_written;
            (
                pid,
                Phase::Held { mid },
                Retained::from_tail(&state.out),
                Retained::from_tail(&state.err),
                state.stdin_unread.iter().copied().collect(),
                written,
                state
                    .stdin_eof
                    .then_some(written + state.stdin_unread.len() as u64),
            )
        }
    };
    // Not stdin_r: it shares its open file description with the job's fd 0, whose flags the job
    // must keep as they were (a non-blocking stdin breaks ordinary programs).
    for fd in [&ends.stdin_w, &ends.out_r, &ends.err_r] {
        set_nonblocking(fd.as_raw_fd());
    }
    let mut k = Keeper {
        dir: dir.to_path_buf(),
        listener,
        conn: None,
        ends,
        stdin_open: true,
        out_open: true,
        err_open: true,
        out,
        err,
        stdin_pending: pending,
        stdin_written: written,
        stdin_eof_at: eof,
        init,
        phase,
        exit_sent: false,
        done: false,
    };
    ready(init);
    k.serve();
    Ok(())
}

impl Keeper {
    fn serve(&mut self) {
        // Without omd for this long after the job ended, give up holding its status.
        let orphan_limit = Duration::from_secs(24 * 3600);
        let mut alone_since = Instant::now();
        while !self.done {
            self.poll_once();
            self.reap();
            self.pump_output();
            self.write_stdin();
            if self.conn.is_some() {
                alone_since = Instant::now();
            } else if matches!(self.phase, Phase::Exited { .. })
                && alone_since.elapsed() > orphan_limit
            {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn running(&self) -> bool {
        self.phase == Phase::Running
    }

    fn poll_once(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(6);
        let pfd = |fd: RawFd, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        fds.push(pfd(self.listener.as_raw_fd(), libc::POLLIN));
        let conn_fd = self.conn.as_ref().map(|c| {
            let ev = if c.out.is_empty() {
                libc::POLLIN
            } else {
                libc::POLLIN | libc::POLLOUT
            };
            pfd(c.s.as_raw_fd(), ev)
        });
        fds.push(conn_fd.unwrap_or(pfd(-1, 0)));
        let can_read = self.running() || matches!(self.phase, Phase::Exited { .. });
        let out_ev = if can_read && self.out_open && self.out.room() > 0 {
            libc::POLLIN
        } else {
            0
        };
        let err_ev = if can_read && self.err_open && self.err.room() > 0 {
            libc::POLLIN
        } else {
            0
        };
        fds.push(pfd(
            if out_ev != 0 {
                self.ends.out_r.as_raw_fd()
            } else {
                -1
            },
            out_ev,
        ));
        fds.push(pfd(
            if err_ev != 0 {
                self.ends.err_r.as_raw_fd()
            } else {
                -1
            },
            err_ev,
        ));
        let in_ev = self.running() && self.stdin_open && !self.stdin_pending.is_empty();
        fds.push(pfd(
            if in_ev {
                self.ends.stdin_w.as_raw_fd()
            } else {
                -1
            },
            libc::POLLOUT,
        ));
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if fds[0].revents != 0 {
            self.accept();
        }
        if fds[1].revents != 0 {
            self.conn_io();
        }
        if fds[2].revents != 0 {
            self.read_output(Stream::Out);
        }
        if fds[3].revents != 0 {
            self.read_output(Stream::Err);
        }
    }

    fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(true);
            // A new omd (restarted, or after a migration): resend all that is unacknowledged.
            self.conn = Some(Conn {
                s,
                dec: Decoder::default(),
                out: VecDeque::new(),
            });
            self.out.rewind();
            self.err.rewind();
            self.exit_sent = false;
            self.send(&FromKeeper::Hello {
                phase: self.phase,
                pid: self.init,
            });
            self.send(&FromKeeper::Io(Io::StdinAck {
                written: self.stdin_written,
            }));
        }
    }

    /// Tell omd the phase after a change it asked for (it may have read an older Hello).
    fn send_phase(&mut self) {
        self.send(&FromKeeper::Hello {
            phase: self.phase,
            pid: self.init,
        });
    }

    fn send(&mut self, msg: &FromKeeper) {
        if let Some(c) = self.conn.as_mut()
            && let Ok(bytes) = frame::encode(msg)
        {
            c.out.extend(bytes);
        }
    }

    fn conn_io(&mut self) {
        let Some(c) = self.conn.as_mut() else { return };
        let mut closed = false;
        // Write what is queued.
        while !c.out.is_empty() {
            let (a, _) = c.out.as_slices();
            match c.s.write(a) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut msgs = Vec::new();
        loop {
            match c.s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => c.dec.push(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        loop {
            match c.dec.next_payload() {
                Ok(Some(p)) => match frame::from_payload::<ToKeeper>(&p) {
                    Ok(m) => msgs.push(m),
                    Err(_) => closed = true,
                },
                Ok(None) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            self.conn = None;
        }
        for m in msgs {
            self.handle(m);
        }
    }

    fn handle(&mut self, m: ToKeeper) {
        match m {
            ToKeeper::Io(Io::Stdin { offset, data }) => {
                let next = self.stdin_written + self.stdin_pending.len() as u64;
                if self.stdin_eof_at.is_none()
                    && let Some(fresh) = crate::job::stdio::fresh_part(next, offset, &data)
                {
                    self.stdin_pending.extend(fresh);
                }
            }
            ToKeeper::Io(Io::StdinEof { offset }) => {
                let next = self.stdin_written + self.stdin_pending.len() as u64;
                if offset == next {
                    self.stdin_eof_at = Some(offset);
                }
            }
            ToKeeper::Io(Io::Signal { sig }) => {
                if is_forwardable(sig) && !matches!(self.phase, Phase::Exited { .. }) {
                    // SAFETY: kill has no memory effects. Init forwards it to the job.
                    unsafe { libc::kill(self.init, sig) };
                }
            }
            ToKeeper::Io(Io::Ack { out, err }) => {
                self.out.ack(out);
                self.err.ack(err);
            }
            ToKeeper::Io(_) => {}
            ToKeeper::Drain { mid } => {
                if self.running() || matches!(self.phase, Phase::Frozen { .. }) {
                    let state = self.drain();
                    self.phase = Phase::Frozen { mid };
                    self.send(&FromKeeper::Drained(state));
                    self.send_phase();
                }
            }
            ToKeeper::Resume => {
                if let Phase::Frozen { .. } = self.phase {
                    self.phase = Phase::Running;
                    tree::signal_tree(self.init, libc::SIGCONT);
                }
                self.send_phase();
            }
            ToKeeper::Run => {
                if let Phase::Held { .. } = self.phase {
                    self.phase = Phase::Running;
                    tree::signal_tree(self.init, libc::SIGCONT);
                }
                self.send_phase();
            }
            ToKeeper::Kill => {
                if !matches!(self.phase, Phase::Exited { .. }) {
                    // SAFETY: kill has no memory effects; init's death ends the namespace.
                    unsafe { libc::kill(self.init, libc::SIGKILL) };
                    let mut ws = 0;
                    // SAFETY: init is our child (subreaper); writes only ws.
                    unsafe { libc::waitpid(self.init, &mut ws, 0) };
                }
                self.done = true;
            }
            ToKeeper::Rewind => {
                self.out.rewind();
                self.err.rewind();
                self.exit_sent = false;
                self.send(&FromKeeper::Io(Io::StdinAck {
                    written: self.stdin_written,
                }));
            }
            ToKeeper::Bye => {
                if matches!(self.phase, Phase::Exited { .. }) {
                    self.done = true;
                }
            }
        }
    }

    /// The job is stopped: take everything out of its pipes.
    fn drain(&mut self) -> StdioState {
        for s in [Stream::Out, Stream::Err] {
            let mut buf = Vec::new();
            let (fd, open) = match s {
                Stream::Out => (self.ends.out_r.as_raw_fd(), self.out_open),
                Stream::Err => (self.ends.err_r.as_raw_fd(), self.err_open),
            };
            if open {
                let _ = read_some(fd, &mut buf, usize::MAX);
            }
            match s {
                Stream::Out => self.out.push(&buf),
                Stream::Err => self.err.push(&buf),
            }
        }
        // What the job had not read goes back in front of what it has not been given yet.
        let mut unread = Vec::new();
        let mut avail: libc::c_int = 0;
        // SAFETY: FIONREAD writes the count of unread bytes into `avail`.
        if unsafe { libc::ioctl(self.ends.stdin_r.as_raw_fd(), libc::FIONREAD, &mut avail) } == 0
            && avail > 0
        {
            // Exactly what is there: this read cannot block.
            let _ = read_some(self.ends.stdin_r.as_raw_fd(), &mut unread, avail as usize);
        }
        self.stdin_written -= unread.len() as u64;
        for b in unread.into_iter().rev() {
            self.stdin_pending.push_front(b);
        }
        StdioState {
            out: self.out.tail(),
            err: self.err.tail(),
            stdin_written: self.stdin_written,
            stdin_unread: ByteBuf::from(self.stdin_pending.iter().copied().collect::<Vec<u8>>()),
            stdin_eof: self.stdin_eof_at.is_some(),
            pipe_inodes: self.ends.inodes,
        }
    }

    fn read_output(&mut self, s: Stream) {
        let (fd, room) = match s {
            Stream::Out => (self.ends.out_r.as_raw_fd(), self.out.room()),
            Stream::Err => (self.ends.err_r.as_raw_fd(), self.err.room()),
        };
        let mut buf = Vec::new();
        let eof = read_some(fd, &mut buf, room).unwrap_or(true);
        match s {
            Stream::Out => {
                self.out.push(&buf);
                self.out_open &= !eof;
            }
            Stream::Err => {
                self.err.push(&buf);
                self.err_open &= !eof;
            }
        }
    }

    fn write_stdin(&mut self) {
        if !self.running() || !self.stdin_open {
            return;
        }
        while !self.stdin_pending.is_empty() {
            let (a, _) = self.stdin_pending.as_slices();
            // SAFETY: writing from a valid slice.
            let n =
                unsafe { libc::write(self.ends.stdin_w.as_raw_fd(), a.as_ptr().cast(), a.len()) };
            if n <= 0 {
                let e = std::io::Error::last_os_error();
                if n < 0 && e.kind() == ErrorKind::WouldBlock {
                    break;
                }
                // EPIPE: the job closed its stdin; what it never reads is dropped, as with a pipe.
                self.stdin_open = false;
                break;
            }
            self.stdin_pending.drain(..n as usize);
            self.stdin_written += n as u64;
            self.send(&FromKeeper::Io(Io::StdinAck {
                written: self.stdin_written,
            }));
        }
        if self.stdin_pending.is_empty() && self.stdin_eof_at == Some(self.stdin_written) {
            // Close our write end: the job reads end of file. Keep a dummy so fds stay valid.
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = dup2(null.as_raw_fd(), self.ends.stdin_w.as_raw_fd());
            }
            self.stdin_open = false;
        }
    }

    fn reap(&mut self) {
        loop {
            let mut ws = 0;
            // SAFETY: waitpid writes only ws.
            let pid = unsafe { libc::waitpid(-1, &mut ws, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == self.init && !matches!(self.phase, Phase::Frozen { .. }) {
                // Take the last output: every writer is gone with the namespace.
                self.phase = Phase::Exited {
                    status: crate::job::record::shell_status(ws),
                };
                self.read_output(Stream::Out);
                self.read_output(Stream::Err);
            }
        }
    }

    fn pump_output(&mut self) {
        let Some(c) = self.conn.as_ref() else { return };
        if c.out.len() > 1 << 20 {
            return;
        }
        let mut msgs = Vec::new();
        for s in [Stream::Out, Stream::Err] {
            let r = match s {
                Stream::Out => &mut self.out,
                Stream::Err => &mut self.err,
            };
            while let Some((offset, data)) = r.next_chunk(CHUNK) {
                msgs.push(FromKeeper::Io(Io::Output {
                    stream: s,
                    offset,
                    data: ByteBuf::from(data),
                }));
                if msgs.len() >= 16 {
                    break;
                }
            }
        }
        if let Phase::Exited { status } = self.phase
            && !self.exit_sent
            && !self.out_open
            && !self.err_open
            && msgs.is_empty()
        {
            msgs.push(FromKeeper::Io(Io::Exited {
                status,
                out: self.out.end(),
                err: self.err.end(),
            }));
            self.exit_sent = true;
        }
        for m in &msgs {
            self.send(m);
        }
        if !msgs.is_empty() {
            self.conn_io();
        }
    }
}

fn dup2(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 over an fd we own replaces it atomically.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
