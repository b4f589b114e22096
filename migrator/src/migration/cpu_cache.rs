//! CRIU's description of this node's CPU, and its checks of other nodes' descriptions, made
//! once each: a node's CPU does not change while it runs, and every one is a criu run on a
//! move's path (0.3–0.8 s on a TCG node) before the job is even frozen. Wraps any [`Criu`].

use std::collections::HashSet;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Mutex;

use super::criu::{Criu, CriuError, NodeCheck};

/// Distinct CPU descriptions remembered as runnable here (one per kind of node; a bound, not a
/// working limit).
const MAX_KNOWN: usize = 64;

/// A [`Criu`] that remembers `cpuinfo` and the `cpuinfo_check`s that passed.
#[derive(Debug)]
pub struct CpuCache<C> {
    inner: C,
    mine: Mutex<Option<Vec<u8>>>,
    runnable: Mutex<HashSet<Vec<u8>>>,
}

impl<C: Criu> CpuCache<C> {
    /// Wrap `inner`.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            mine: Mutex::new(None),
            runnable: Mutex::new(HashSet::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C: Criu> Criu for CpuCache<C> {
    fn pre_dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError> {
        self.inner.pre_dump(pid, dir, parent)
    }

    fn dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError> {
        self.inner.dump(pid, dir, parent)
    }

    fn restore(&self, dir: &Path, inherit: &[(RawFd, u64)]) -> Result<i32, CriuError> {
        self.inner.restore(dir, inherit)
    }

    fn check(&self) -> NodeCheck {
        self.inner.check()
    }

    fn cpuinfo(&self, dir: &Path) -> Result<Vec<u8>, CriuError> {
        if let Some(c) = lock(&self.mine).as_ref() {
            return Ok(c.clone());
        }
        // Two first moves at once may both run criu; either result is the same.
        let c = self.inner.cpuinfo(dir)?;
        *lock(&self.mine) = Some(c.clone());
        Ok(c)
    }

    fn cpuinfo_check(&self, dir: &Path, image: &[u8]) -> Result<(), CriuError> {
        if lock(&self.runnable).contains(image) {
            return Ok(());
        }
        // Failures are not remembered: each refusal says why, from criu itself.
        self.inner.cpuinfo_check(dir, image)?;
        let mut known = lock(&self.runnable);
        if known.len() < MAX_KNOWN {
            known.insert(image.to_vec());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the CPU runs; checks pass only for images starting with 1.
    #[derive(Default)]
    struct Counting {
        runs: AtomicUsize,
    }

    impl Criu for Counting {
        fn pre_dump(&self, _: i32, _: &Path, _: Option<&Path>) -> Result<(), CriuError> {
            Ok(())
        }
        fn dump(&self, _: i32, _: &Path, _: Option<&Path>) -> Result<(), CriuError> {
            Ok(())
        }
        fn restore(&self, _: &Path, _: &[(RawFd, u64)]) -> Result<i32, CriuError> {
            Ok(1)
        }
        fn check(&self) -> NodeCheck {
            NodeCheck {
                ok: true,
                reason: None,
                version: String::new(),
                track_mem: true,
            }
        }
        fn cpuinfo(&self, _: &Path) -> Result<Vec<u8>, CriuError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            Ok(vec![1, 2, 3])
        }
        fn cpuinfo_check(&self, _: &Path, image: &[u8]) -> Result<(), CriuError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if image.first() == Some(&1) {
                Ok(())
            } else {
                Err(CriuError::Failed {
                    op: "cpuinfo check",
                    reason: "cpu mismatch".into(),
                })
            }
        }
    }

    #[test]
    fn each_cpu_is_asked_once_and_refusals_are_asked_again() {
        let c = CpuCache::new(Counting::default());
        let d = Path::new("/nonexistent");
        assert_eq!(c.cpuinfo(d).unwrap(), vec![1, 2, 3]);
        assert_eq!(c.cpuinfo(d).unwrap(), vec![1, 2, 3]);
        assert_eq!(c.inner.runs.load(Ordering::SeqCst), 1);
        c.cpuinfo_check(d, &[1, 9]).unwrap();
        c.cpuinfo_check(d, &[1, 9]).unwrap();
        assert_eq!(c.inner.runs.load(Ordering::SeqCst), 2);
        assert!(c.cpuinfo_check(d, &[2]).is_err());
        assert!(c.cpuinfo_check(d, &[2]).is_err());
        assert_eq!(c.inner.runs.load(Ordering::SeqCst), 4);
    }
}
