//! Writes the lease file off the DHCP path: as soon as a change is waiting (and at least every
//! [`EVERY`]), the bound leases changed since the last write are taken under the store's lock and
//! written, fsynced, without it; then the generation written is published to [`Commits`], which
//! releases the ACKs waiting for it. ACKs arriving during a write go in the next one together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::LeaseStore;
use super::commits::Commits;

/// The longest a change waits when nobody asked for a write (a RELEASE, a config edit).
pub const EVERY: Duration = Duration::from_secs(1);

/// Write what is due now; a failure is logged and retried at the next round.
pub async fn flush(store: &Arc<Mutex<dyn LeaseStore>>, commits: &Commits) {
    let Some(unsaved) = store.lock().ok().and_then(|mut s| s.take_unsaved()) else {
        return;
    };
    let generation = unsaved.generation;
    let written = tokio::task::spawn_blocking(move || unsaved.write()).await;
    let error = match written {
        Ok(Ok(())) => {
            commits.done(generation);
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!("cannot write the lease file ({error}); ACKs wait, retrying");
    if let Ok(mut s) = store.lock() {
        s.mark_unsaved();
    }
}

/// Flush whenever asked, and every [`EVERY`], forever.
pub async fn run(store: Arc<Mutex<dyn LeaseStore>>, commits: Arc<Commits>) {
    loop {
        tokio::select! {
            () = commits.wanted() => {}
            () = tokio::time::sleep(EVERY) => {}
        }
        flush(&store, &commits).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::{FileLeases, Lease, LeaseState};
    use crate::mac::MacAddr;

    #[tokio::test]
    async fn a_write_publishes_the_generation_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<Mutex<dyn LeaseStore>> =
            Arc::new(Mutex::new(FileLeases::open(dir.path()).unwrap()));
        let commits = Arc::new(Commits::default());
        let mac: MacAddr = "52:54:00:77:00:01".parse().unwrap();
        let generation = {
            let mut s = store.lock().unwrap();
            s.put(
                mac,
                Lease {
                    mac: mac.to_string(),
                    ip: "10.77.0.11".parse().unwrap(),
                    name: "node1".into(),
                    state: LeaseState::Bound,
                    expires: 99,
                },
            )
            .unwrap();
            s.generation()
        };
        assert!(generation > commits.durable());
        let flusher = tokio::spawn(run(store.clone(), commits.clone()));
        commits.want();
        assert!(commits.wait(generation).await, "never written");
        // Durable means readable by the next ombootd.
        let reopened = FileLeases::open(dir.path()).unwrap();
        assert_eq!(
            reopened.get(mac).map(|l| l.ip.to_string()).as_deref(),
            Some("10.77.0.11")
        );
        flusher.abort();
    }
}
