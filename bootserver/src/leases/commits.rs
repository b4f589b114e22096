//! Group commit of the lease file: an ACK is sent only once a write holding its lease is on disk,
//! so a crash at any moment loses no lease a node was told it has. Every lease change bumps the
//! store's generation; the flusher writes whatever is due as soon as it is asked and publishes the
//! generation it made durable, so one fsync carries every ACK that arrived during the last one.

use std::time::Duration;

use tokio::sync::{Notify, watch};

/// How long a reply waits for its lease to reach the disk before it is dropped (the client
/// retries; a disk this slow or failing is logged by the flusher).
pub const WAIT: Duration = Duration::from_secs(3);

/// The durable generation and the flusher's wake-up.
#[derive(Debug)]
pub struct Commits {
    durable: watch::Sender<u64>,
    wanted: Notify,
}

impl Default for Commits {
    fn default() -> Self {
        Self {
            durable: watch::Sender::new(0),
            wanted: Notify::new(),
        }
    }
}

impl Commits {
    /// The newest generation known to be on disk.
    pub fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Ask the flusher to write now (a permit is kept if it is busy, so no request is lost).
    pub fn want(&self) {
        self.wanted.notify_one();
    }

    /// Resolves when a write is wanted.
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// A write holding everything up to `generation` reached the disk.
    pub fn done(&self, generation: u64) {
        self.durable.send_if_modified(|d| {
            let newer = generation > *d;
            if newer {
                *d = generation;
            }
            newer
        });
    }

    /// A receiver of the durable generation, to learn of each write.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Wait until `generation` is durable; false when [`WAIT`] passed first. For tests: the
    /// DHCP server holds its ACKs in one queue released at each write (see [`Self::subscribe`]).
    #[cfg(test)]
    pub async fn wait(&self, generation: u64) -> bool {
        let mut rx = self.durable.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|d| *d >= generation))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_waiter_is_released_by_the_first_write_that_holds_its_generation() {
        let c = Arc::new(Commits::default());
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.wait(3).await }
        });
        c.done(2);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "generation 2 does not hold 3");
        c.done(5);
        assert!(waiter.await.unwrap());
        // Older news never moves it back.
        c.done(4);
        assert_eq!(c.durable(), 5);
        assert!(c.wait(5).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_never_comes_times_the_waiter_out() {
        let c = Commits::default();
        assert!(!c.wait(1).await);
    }

    #[tokio::test]
    async fn a_request_made_while_the_flusher_is_busy_is_kept() {
        let c = Commits::default();
        c.want();
        tokio::time::timeout(Duration::from_secs(1), c.wanted())
            .await
            .expect("the permit was kept");
    }
}
