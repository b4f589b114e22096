//! The job's PID 1: leads the job's session inside its PID namespace, starts the command as the
//! user, forwards signals to it, reaps every orphan, and exits with the command's status (code,
//! or 128 + signal). PID 1 ignores signals it has no handler for, hence this small init.

use std::ffi::CString;

use crate::job::record::{JobSpec, shell_status};
use crate::job::stdio::FORWARDED;

/// Run as PID 1; never returns.
pub fn run(spec: &JobSpec) -> ! {
    let code = match prepare(spec) {
        Ok(p) => supervise(p),
        Err(msg) => {
            eprintln!("omrun: {msg}");
            127
        }
    };
    std::process::exit(code)
}

struct Prepared {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

fn cstr(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// The program to exec: `name` itself if it has a `/`, else the first executable match in the
/// job's PATH (not init's: execvpe would search the caller's own, which is empty here).
pub fn resolve(name: &str, env: &[String]) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return Some(name.to_owned());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{d}/{name}"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn prepare(spec: &JobSpec) -> Result<Prepared, String> {
    let Some(first) = spec.argv.first() else {
        return Err("no command given".into());
    };
    let program = resolve(first, &spec.env).ok_or_else(|| format!("{first}: command not found"))?;
    Ok(Prepared {
        program: cstr(&program, "the program")?,
        argv: spec
            .argv
            .iter()
            .map(|a| cstr(a, "an argument"))
            .collect::<Result<_, _>>()?,
        env: spec
            .env
            .iter()
            .map(|e| cstr(e, "an environment variable"))
            .collect::<Result<_, _>>()?,
        cwd: cstr(&spec.cwd, "the working directory")?,
        uid: spec.uid,
        gid: spec.gid,
        groups: spec.groups.clone(),
    })
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and modify a local set only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn supervise(p: Prepared) -> i32 {
    let mut watched: Vec<i32> = FORWARDED.to_vec();
    watched.push(libc::SIGCHLD);
    let set = sigset(&watched);
    let mut old: libc::sigset_t = sigset(&[]);
    // SAFETY: setsid and sigprocmask act on this process only; the sets are valid.
    unsafe {
        libc::setsid();
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    let mut argv: Vec<*const libc::c_char> = p.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: fork in a single-threaded process; the child only makes async-signal-safe calls
    // on memory prepared before the fork, then execs or exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        eprintln!("omrun: cannot fork: {}", std::io::Error::last_os_error());
        return 127;
    }
    if child == 0 {
        // SAFETY: see above; every pointer refers to CStrings that outlive the exec.
        unsafe {
            libc::setpgid(0, 0);
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if libc::setgroups(p.groups.len(), p.groups.as_ptr()) != 0
                || libc::setgid(p.gid) != 0
                || libc::setuid(p.uid) != 0
            {
                fail_child(b"omrun: cannot take the user's identity\n");
            }
            if libc::chdir(p.cwd.as_ptr()) != 0 {
                fail_child(b"omrun: cannot enter the working directory\n");
            }
            libc::execve(p.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail_child(b"omrun: cannot run the command (not found or not executable)\n");
        }
    }
    let mut status: Option<i32> = None;
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-buffer for sigwaitinfo.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid; sigwaitinfo only writes into `info`.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue; // EINTR, e.g. around a checkpoint
        }
        if sig == libc::SIGCHLD {
            loop {
                let mut ws = 0;
                // SAFETY: waitpid writes only `ws`.
                let pid = unsafe { libc::waitpid(-1, &mut ws, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    status = Some(shell_status(ws));
                }
            }
            if let Some(s) = status {
                // Our exit ends the namespace: every leftover process of the job goes with it.
                return s;
            }
        } else {
            // To the job's process group (a shell pipeline gets it whole), else to the child.
            // SAFETY: kill has no memory effects.
            unsafe {
                if libc::kill(-child, sig) != 0 {
                    libc::kill(child, sig);
                }
            }
        }
    }
}

/// Report and exit in a forked child (no allocation, no destructors).
fn fail_child(msg: &[u8]) -> ! {
    // SAFETY: write and _exit are async-signal-safe; `msg` is a valid buffer.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_jobs_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_owned()];
        let sh = resolve("sh", &env).unwrap();
        assert!(sh.ends_with("/sh"), "{sh}");
        assert_eq!(resolve("./x", &env).as_deref(), Some("./x"));
        assert_eq!(resolve("no-such-program-here", &env), None);
    }
}
