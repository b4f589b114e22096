//! omwork: small workloads with a checkable result, for trying migration by hand and in the
//! tests (the node image carries it): threads, memory shared between a parent and its child,
//! a resident memory size that dirties pages at a given rate, plain CPU work for a time, and a
//! fixed amount of CPU work with a checksum (`spin`, checked by `omctl stress`).
//! Each prints `result ok ...` (or `result BAD ...` and exits 1) when it ends.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Workloads with a checkable result.
#[derive(Debug, Parser)]
#[command(name = "omwork", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N threads each count for SECS seconds; the total must equal the sum of their counts.
    Threads {
        /// Threads.
        n: usize,
        /// Seconds.
        secs: f64,
    },
    /// A parent and its child count in one MAP_SHARED page for SECS seconds; both views agree.
    Shm {
        /// Seconds.
        secs: f64,
    },
    /// Hold MIB MiB resident for SECS seconds, rewriting PCT percent of its pages per second
    /// (a new version stamp in each); every page must hold its latest stamp at the end.
    Mem {
        /// MiB.
        mib: usize,
        /// Seconds.
        secs: f64,
        /// Percent of the memory rewritten per second.
        #[arg(default_value_t = 0.0)]
        pct: f64,
    },
    /// Busy CPU for SECS seconds of wall time; prints the iterations done.
    Cpu {
        /// Seconds.
        secs: f64,
    },
    /// A fixed amount of CPU work, UNITS of about 0.1 s each on a native CPU, whatever the
    /// wall time; prints its checksum (the same on every node, moved or not).
    Spin {
        /// Units of work.
        units: u64,
    },
}

fn threads(n: usize, secs: f64) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let total = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let total = total.clone();
            std::thread::spawn(move || {
                let mut mine = 0u64;
                while Instant::now() < end {
                    mine += 1;
                    total.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
                mine
            })
        })
        .collect();
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let t = total.load(Ordering::Relaxed);
    if sum != t || sum == 0 {
        bail!("result BAD threads={n} sum={sum} total={t}");
    }
    println!("result ok threads={n} total={t}");
    Ok(())
}

fn shm(secs: f64) -> Result<()> {
    // SAFETY: a fresh anonymous shared mapping of one page; only read and written as u64s.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        bail!("mmap: {}", std::io::Error::last_os_error());
    }
    let cell = p.cast::<u64>();
    // SAFETY: single-threaded here; the child only counts and exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    if child == 0 {
        let mut n = 0u64;
        while Instant::now() < end {
            n += 1;
            // SAFETY: the page is mapped in both processes; the child writes slot 0 only.
            unsafe { std::ptr::write_volatile(cell, n) };
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: _exit in the forked child, no destructors run twice.
        unsafe { libc::_exit(if n > 0 { 0 } else { 1 }) };
    }
    let mut ws = 0;
    // SAFETY: our child; writes ws only.
    unsafe { libc::waitpid(child, &mut ws, 0) };
    // SAFETY: the page is still mapped here.
    let seen = unsafe { std::ptr::read_volatile(cell) };
    if !libc::WIFEXITED(ws) || libc::WEXITSTATUS(ws) != 0 || seen == 0 {
        bail!("result BAD shm seen={seen} child_status={ws}");
    }
    println!("result ok shm count={seen}");
    Ok(())
}

/// The first 8 bytes of page `p` at version `v`; the rest of every page is a fixed pattern.
fn stamp(p: usize, v: u32) -> [u8; 8] {
    ((p as u64) << 32 | u64::from(v)).to_le_bytes()
}

fn mem(mib: usize, secs: f64, pct: f64) -> Result<()> {
    let page = 4096;
    let len = mib << 20;
    let pages = len / page;
    let mut v = vec![0u8; len];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    // Each rewrite bumps the page's version in its stamp: a page restored from an older copy
    // (a pre-dump round instead of the final dump) shows up as a wrong stamp.
    let mut versions = vec![0u32; pages];
    for p in 0..pages {
        v[p * page..p * page + 8].copy_from_slice(&stamp(p, 0));
    }
    println!("resident {mib} MiB");
    let per_tick = ((pages as f64) * pct / 100.0 / 10.0) as usize;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut next = 0usize;
    let mut ticks = 0u32;
    let mut rewrites = 0u64;
    while Instant::now() < end {
        for _ in 0..per_tick {
            let p = next % pages;
            versions[p] += 1;
            v[p * page..p * page + 8].copy_from_slice(&stamp(p, versions[p]));
            next += 1;
            rewrites += 1;
        }
        ticks += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut bad = 0usize;
    for (p, ver) in versions.iter().enumerate() {
        let at = p * page;
        if v[at..at + 8] != stamp(p, *ver) {
            bad += 1;
            continue;
        }
        if (at + 8..at + page).any(|i| v[i] != (i % 251) as u8) {
            bad += 1;
        }
    }
    if bad != 0 {
        bail!("result BAD mem {bad} pages wrong");
    }
    println!("result ok mem {mib} MiB ticks={ticks} rewrites={rewrites}");
    Ok(())
}

fn cpu(secs: f64) -> Result<()> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut x = 1u64;
    let mut iters = 0u64;
    while Instant::now() < end {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        iters += 1;
    }
    println!("result ok cpu iterations={iters} x={}", x % 1000);
    Ok(())
}

fn spin(units: u64) {
    println!(
        "{}",
        migrator::workload::spin_result(units, migrator::workload::spin(units))
    );
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Threads { n, secs } => threads(n, secs),
        Cmd::Shm { secs } => shm(secs),
        Cmd::Mem { mib, secs, pct } => mem(mib, secs, pct),
        Cmd::Cpu { secs } => cpu(secs),
        Cmd::Spin { units } => {
            spin(units);
            Ok(())
        }
    }
    .context("omwork");
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            println!("{:#}", e);
            std::process::ExitCode::FAILURE
        }
    }
}
