//! Privileged: Linux keeps capabilities, the bounding set and no_new_privs per thread, and a
//! thread can change only its own. Threads started before ombootd dropped root's capabilities
//! (tokio's workers, async-io's reactor) would keep them all; each is made to drop them itself,
//! from a signal handler that makes the same system calls (capset, prctl: async-signal-safe)
//! as the main thread did, as libcap's psx does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Capabilities kept (bit n: capability n), for the handler.
static KEEP: AtomicU64 = AtomicU64::new(0);
/// Bounding-set capabilities to drop, for the handler.
static DROP_BOUNDING: AtomicU64 = AtomicU64::new(0);
/// Threads that ran the handler, and how many of them failed.
static DONE: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A thread's capability state, from `/proc/self/task/<tid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCaps {
    /// CapEff.
    pub effective: u64,
    /// CapPrm.
    pub permitted: u64,
    /// CapBnd.
    pub bounding: u64,
    /// NoNewPrivs.
    pub no_new_privs: bool,
}

impl ThreadCaps {
    /// Read from a `status` file's text.
    pub fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let hex = |name: &str| field(name).and_then(|v| u64::from_str_radix(v, 16).ok());
        Some(Self {
            effective: hex("CapEff:")?,
            permitted: hex("CapPrm:")?,
            bounding: hex("CapBnd:")?,
            no_new_privs: field("NoNewPrivs:")? == "1",
        })
    }
}

/// Drop to `keep` on the calling thread: bounding set, effective and permitted sets (inheritable
/// cleared), no_new_privs. Only system calls, so it may run in a signal handler.
fn drop_here() -> bool {
    let keep = KEEP.load(Ordering::SeqCst);
    let bounding = DROP_BOUNDING.load(Ordering::SeqCst);
    let mut ok = true;
    for cap in 0..64u64 {
        if bounding & (1 << cap) != 0 {
            // SAFETY: prctl with integer arguments touches no memory of ours.
            ok &= unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } == 0;
        }
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    #[allow(clippy::cast_possible_truncation)]
    let half = |shift: u32| (keep >> shift) as u32;
    let data = [
        CapData {
            effective: half(0),
            permitted: half(0),
            inheritable: 0,
        },
        CapData {
            effective: half(32),
            permitted: half(32),
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads the header and two data structs, laid out as the kernel's
    // (`struct __user_cap_header_struct`, `struct __user_cap_data_struct`), alive for the call.
    ok &= unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } == 0;
    // SAFETY: prctl with integer arguments touches no memory of ours.
    ok &= unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
    ok
}

extern "C" fn on_signal(_: libc::c_int) {
    if !drop_here() {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    DONE.fetch_add(1, Ordering::SeqCst);
}

/// This thread's id.
fn gettid() -> i64 {
    // SAFETY: gettid takes no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// The threads of this process, by id, and their capabilities.
pub fn threads() -> std::io::Result<Vec<(i64, Option<ThreadCaps>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")? {
        let e = e?;
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        out.push((tid, ThreadCaps::parse(&status)));
    }
    Ok(out)
}

/// Make every other thread drop to `keep` (bit n: capability n) with `bounding` removed from
/// its bounding set, as the calling thread already did; then check them all. Threads started
/// meanwhile by a thread not yet done are caught by the next pass.
pub fn drop_everywhere(keep: u64, bounding: u64) -> Result<(), String> {
    KEEP.store(keep, Ordering::SeqCst);
    DROP_BOUNDING.store(bounding, Ordering::SeqCst);
    let signal = libc::SIGRTMIN() + 1;
    // SAFETY: the handler makes system calls and touches atomics only; sa_mask is filled by
    // sigemptyset before use, and the struct outlives the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut action.sa_mask);
        if libc::sigaction(signal, &raw const action, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    let me = gettid();
    // SAFETY: getpid takes no arguments.
    let pid = i64::from(unsafe { libc::getpid() });
    let wanted = |c: &ThreadCaps| {
        c.effective == keep && c.permitted == keep && c.bounding & bounding == 0 && c.no_new_privs
    };
    // Five rounds of signals; the sixth look only checks.
    let mut pass = 0;
    loop {
        let behind: Vec<i64> = threads()
            .map_err(|e| format!("cannot list this process's threads: {e}"))?
            .into_iter()
            .filter(|(tid, caps)| *tid != me && !caps.as_ref().is_some_and(wanted))
            .map(|(tid, _)| tid)
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if pass == 5 {
            return Err(format!("threads {behind:?} still hold capabilities"));
        }
        let before = DONE.load(Ordering::SeqCst);
        let mut sent = 0;
        for tid in behind {
            // SAFETY: tgkill with integer arguments; a thread that has exited meanwhile gives
            // ESRCH, which only means one fewer to wait for.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) } == 0 {
                sent += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while DONE.load(Ordering::SeqCst) < before + sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if FAILED.load(Ordering::SeqCst) > 0 {
            return Err("a thread could not drop its capabilities".into());
        }
        pass += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_status_file() {
        let status = "Name:\tombootd\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003003\nCapEff:\t0000000000003003\nCapBnd:\t0000000000003003\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";
        assert_eq!(
            ThreadCaps::parse(status),
            Some(ThreadCaps {
                effective: 0x3003,
                permitted: 0x3003,
                bounding: 0x3003,
                no_new_privs: true
            })
        );
        assert_eq!(ThreadCaps::parse("Name:\tx\n"), None);
    }
}
