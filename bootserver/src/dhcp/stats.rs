//! Counters of what the DHCP server did with each datagram, so drops are visible, never silent.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Running counters, shared between the server loop and the status API.
#[derive(Debug, Default)]
pub struct DhcpStats {
    received: AtomicU64,
    replied: AtomicU64,
    malformed: AtomicU64,
    not_dhcp: AtomicU64,
    unknown_client: AtomicU64,
    ignored: AtomicU64,
    failed: AtomicU64,
    rate_limited: AtomicU64,
    pool_exhausted: AtomicU64,
    declined: AtomicU64,
}

/// A snapshot of [`DhcpStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DhcpCounts {
    /// Datagrams received.
    pub received: u64,
    /// Replies sent.
    pub replied: u64,
    /// Datagrams that did not parse as DHCP: dropped.
    pub malformed: u64,
    /// BOOTP without DHCP (no magic cookie, or no option 53): dropped.
    pub not_dhcp: u64,
    /// Requests from MACs not in the node table: dropped.
    pub unknown_client: u64,
    /// Well-formed requests that need no reply (RELEASE, another server selected, …).
    pub ignored: u64,
    /// Replies not sent because of a local failure (lease store, socket).
    pub failed: u64,
    /// Dropped undecoded: the sender's MAC or address spent its budget.
    pub rate_limited: u64,
    /// DISCOVERs from MACs outside the table left unanswered: every pool address was taken.
    pub pool_exhausted: u64,
    /// Addresses clients declined (another host answers for them).
    pub declined: u64,
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A datagram arrived.
    Received,
    /// A reply went out.
    Replied,
    /// Unparseable.
    Malformed,
    /// Plain BOOTP.
    NotDhcp,
    /// Not in the table.
    UnknownClient,
    /// No reply needed.
    Ignored,
    /// Local failure.
    Failed,
    /// Over the sender's rate.
    RateLimited,
    /// The pool had no address left.
    PoolExhausted,
    /// A client declined its address.
    Declined,
}

impl DhcpStats {
    /// Count one event.
    pub fn count(&self, e: Event) {
        let c = match e {
            Event::Received => &self.received,
            Event::Replied => &self.replied,
            Event::Malformed => &self.malformed,
            Event::NotDhcp => &self.not_dhcp,
            Event::UnknownClient => &self.unknown_client,
            Event::Ignored => &self.ignored,
            Event::Failed => &self.failed,
            Event::RateLimited => &self.rate_limited,
            Event::PoolExhausted => &self.pool_exhausted,
            Event::Declined => &self.declined,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Read all counters.
    pub fn snapshot(&self) -> DhcpCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DhcpCounts {
            received: r(&self.received),
            replied: r(&self.replied),
            malformed: r(&self.malformed),
            not_dhcp: r(&self.not_dhcp),
            unknown_client: r(&self.unknown_client),
            ignored: r(&self.ignored),
            failed: r(&self.failed),
            rate_limited: r(&self.rate_limited),
            pool_exhausted: r(&self.pool_exhausted),
            declined: r(&self.declined),
        }
    }
}
