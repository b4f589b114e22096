//! Writes the lease file off the DHCP path: every [`EVERY`] the bound leases changed since the
//! last write are taken under the store's lock and written, fsynced, without it. A crash loses at
//! most the last second of ACKs, which the nodes' next renewal restores (addresses come from the
//! node table, so nothing is handed out twice).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::LeaseStore;

/// How often the file is brought up to date.
pub const EVERY: Duration = Duration::from_secs(1);

/// Write what is due now; a failure is logged and retried at the next round.
pub async fn flush(store: &Arc<Mutex<dyn LeaseStore>>) {
    let Some(unsaved) = store.lock().ok().and_then(|mut s| s.take_unsaved()) else {
        return;
    };
    let written = tokio::task::spawn_blocking(move || unsaved.write()).await;
    let error = match written {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!("cannot write the lease file ({error}); retrying");
    if let Ok(mut s) = store.lock() {
        s.mark_unsaved();
    }
}

/// Flush every [`EVERY`], forever.
pub async fn run(store: Arc<Mutex<dyn LeaseStore>>) {
    loop {
        tokio::time::sleep(EVERY).await;
        flush(&store).await;
    }
}
