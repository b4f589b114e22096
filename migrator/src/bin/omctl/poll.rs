//! Asking omd again and again from a helper thread, for the live views (`mon`, `stress`): each
//! answer, or its error as text, goes down a channel, so a slow omd never stalls the caller.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Result;

use crate::client::Omd;

/// Calls `fetch` every `period` (first after one period) until the receiver is dropped.
pub fn every<T: Send + 'static>(
    omd: Omd,
    period: Duration,
    fetch: fn(&Omd) -> Result<T>,
) -> mpsc::Receiver<Result<T, String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        loop {
            thread::sleep(period);
            let update = fetch(&omd).map_err(|e| format!("{e:#}"));
            if tx.send(update).is_err() {
                break;
            }
        }
    });
    rx
}
