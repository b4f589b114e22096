//! Process-wide abort flag: a signal handler sets it, every lab wait checks it, so a Ctrl-C turns
//! into an `Error::Aborted` that unwinds normally and lets `Lab`'s `Drop` tear everything down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

static FLAG: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// The shared flag, for registering with a signal handler (`signal_hook::flag::register`).
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(&FLAG)
}

/// Makes every current and future wait return `Error::Aborted`.
pub fn abort() {
    FLAG.store(true, Ordering::SeqCst);
}

/// Whether an abort was requested.
pub fn is_aborted() -> bool {
    FLAG.load(Ordering::SeqCst)
}
