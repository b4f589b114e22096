//! Creating a job's processes (privileged: namespaces): the three stdio pipes, and the job's
//! init as PID 1 of new PID and time namespaces, adopted by the calling keeper (a subreaper).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::job::record::JobSpec;

/// The keeper's ends of a job's stdio.
#[derive(Debug)]
pub struct KeeperEnds {
    /// Write end of the job's stdin.
    pub stdin_w: OwnedFd,
    /// A second read end of stdin, to take back what the job has not read when it is frozen.
    pub stdin_r: OwnedFd,
    /// Read end of stdout.
    pub out_r: OwnedFd,
    /// Read end of stderr.
    pub err_r: OwnedFd,
    /// Pipe inodes: stdin, stdout, stderr.
    pub inodes: [u64; 3],
}

/// The job's ends: its fds 0, 1 and 2.
#[derive(Debug)]
pub struct JobEnds {
    /// Read end of stdin.
    pub stdin: OwnedFd,
    /// Write end of stdout.
    pub out: OwnedFd,
    /// Write end of stderr.
    pub err: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Inode of an open file.
pub fn inode(fd: &OwnedFd) -> std::io::Result<u64> {
    // SAFETY: fstat writes into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_ino)
}

/// Make the three pipes.
pub fn pipes() -> std::io::Result<(KeeperEnds, JobEnds)> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let inodes = [inode(&in_r)?, inode(&out_r)?, inode(&err_r)?];
    let keeper_in_r = in_r.try_clone()?;
    Ok((
        KeeperEnds {
            stdin_w: in_w,
            stdin_r: keeper_in_r,
            out_r,
            err_r,
            inodes,
        },
        JobEnds {
            stdin: in_r,
            out: out_w,
            err: err_w,
        },
    ))
}

/// Start `omjob init` as PID 1 of new PID and time namespaces with `ends` as its stdio, and
/// hand it `spec` on fd 3 (not on its command line, which everyone can read). Returns its host
/// pid. The caller must be single-threaded and a child subreaper: the intermediate process
/// exits at once and init is re-parented to the caller.
pub fn spawn_init(omjob: &Path, spec: &JobSpec, ends: JobEnds) -> std::io::Result<i32> {
    let prog = CString::new(omjob.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("omjob path has a NUL byte"))?;
    let arg1 = c"init";
    let argv = [prog.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let (spec_r, spec_w) = pipe()?;
    let (pid_r, pid_w) = pipe()?;
    let fds = [
        ends.stdin.as_raw_fd(),
        ends.out.as_raw_fd(),
        ends.err.as_raw_fd(),
        spec_r.as_raw_fd(),
    ];
    let pid_w_fd = pid_w.as_raw_fd();
    // SAFETY: the caller is single-threaded; the children only make async-signal-safe calls
    // on data prepared above, then exec or _exit.
    let mid = unsafe { libc::fork() };
    if mid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if mid == 0 {
        // SAFETY: see above.
        unsafe {
            if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWTIME) != 0 {
                libc::_exit(120);
            }
            let init = libc::fork();
            if init < 0 {
                libc::_exit(121);
            }
            if init == 0 {
                // PID 1 of the new namespaces. Move the fds high first so dup2 cannot clobber.
                let mut high = [0; 4];
                for (i, fd) in fds.iter().enumerate() {
                    high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                }
                for (i, fd) in high.iter().enumerate() {
                    libc::dup2(*fd, i as i32);
                }
                libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            let bytes = init.to_ne_bytes();
            libc::write(pid_w_fd, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    drop(pid_w);
    drop(spec_r);
    drop(ends);
    let mut ws = 0;
    // SAFETY: waits for our own child; writes only ws.
    unsafe { libc::waitpid(mid, &mut ws, 0) };
    let mut buf = [0u8; 4];
    let mut f = std::fs::File::from(pid_r);
    f.read_exact(&mut buf).map_err(|_| {
        std::io::Error::other(format!(
            "could not create the job's namespaces (status {})",
            libc::WEXITSTATUS(ws)
        ))
    })?;
    let init = i32::from_ne_bytes(buf);
    let json = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    std::fs::File::from(spec_w).write_all(&json)?;
    Ok(init)
}

/// In `omjob init`: read the spec handed over on fd 3, then close it.
pub fn read_spec_fd3() -> std::io::Result<JobSpec> {
    // SAFETY: fd 3 was set up by spawn_init for this process and is owned by nobody else.
    let mut f = unsafe { std::fs::File::from_raw_fd(3) };
    let mut s = Vec::new();
    f.read_to_end(&mut s)?;
    serde_json::from_slice(&s).map_err(std::io::Error::other)
}
