//! The one task behind every open dashboard: once a second it reads what the master knows,
//! builds the [`Snapshot`](super::snapshot::Snapshot), serialises it once and publishes it; every
//! [`STEP_MS`](super::history::STEP_MS) it adds a load sample to the history. Browsers only
//! subscribe, so ten of them cost the master ten socket writes a second, not ten polls of the
//! cluster. The nodes are asked for jobs and migrations only while someone is looking.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use migrator::api::MemberState;
use migrator::clock::{Clock, WallClock};
use migrator::job::record::JobView;
use migrator::jobs::client;
use migrator::key::ClusterKey;
use migrator::migration::history::{self as moves, MoveEvent};
use migrator::migration::protocol::Msg;
use migrator::observer::ObserverHandle;
use tokio::sync::{broadcast, watch};

use super::history::{History, STEP_MS, Sample};
use super::snapshot::{self, Inputs, Master};
use super::token::Token;
use crate::boot_stage::{BootStages, Stage};
use crate::live::LiveConfig;
use crate::pending::Pending;

/// Most browsers streaming at once: each holds an HTTP connection, and booting nodes need them.
pub const MAX_VIEWERS: usize = 32;
/// How often the nodes are asked for jobs and migrations while someone looks.
const ASK_EVERY: Duration = Duration::from_secs(2);
/// A plain `GET /api/dashboard` keeps the nodes being asked this long.
const INTEREST: u64 = 30_000;

/// The dashboard's shared state.
pub struct Dashboard {
    /// The control token.
    pub token: Token,
    /// The cluster key, to ask and command the nodes (`None` when not observing).
    pub key: Option<ClusterKey>,
    /// The nodes' peer port.
    pub peer_port: u16,
    /// The cluster as observed.
    pub cluster: Option<ObserverHandle>,
    /// The latest snapshot, as JSON.
    pub snapshot: watch::Sender<Arc<str>>,
    /// Each new history sample, as JSON.
    pub samples: broadcast::Sender<Arc<str>>,
    /// The last hour of samples.
    pub history: Mutex<History>,
    /// Streams open.
    pub viewers: Arc<tokio::sync::Semaphore>,
    /// Last `GET /api/dashboard`, ms since the epoch.
    pub asked_at: AtomicU64,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("peer_port", &self.peer_port)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard with nothing published yet.
    pub fn new(
        token: Token,
        key: Option<ClusterKey>,
        peer_port: u16,
        cluster: Option<ObserverHandle>,
    ) -> Self {
        Self {
            token,
            key,
            peer_port,
            cluster,
            snapshot: watch::Sender::new(Arc::from("{}")),
            samples: broadcast::Sender::new(16),
            history: Mutex::new(History::new()),
            viewers: Arc::new(tokio::sync::Semaphore::new(MAX_VIEWERS)),
            asked_at: AtomicU64::new(0),
        }
    }

    /// The peer address of the live node called `name`.
    pub fn peer_of(&self, name: &str) -> Result<SocketAddr, String> {
        let rows = self.cluster.as_ref().map(|c| c.nodes()).unwrap_or_default();
        client::peer_of(&rows, name, self.peer_port)
    }
}

/// The wall clock in ms, as the snapshots and samples are stamped.
pub fn now_ms() -> u64 {
    u64::try_from(WallClock.now().as_millis()).unwrap_or(u64::MAX)
}

/// What the nodes last reported.
#[derive(Debug, Default)]
struct Reports {
    jobs: Option<Vec<JobView>>,
    moves: Vec<MoveEvent>,
}

/// Ask every live node for its jobs and migrations.
async fn ask_nodes(dash: &Dashboard, key: &ClusterKey) -> (Vec<JobView>, Vec<MoveEvent>) {
    let rows = dash.cluster.as_ref().map(|c| c.nodes()).unwrap_or_default();
    let peers = client::live_peers(&rows, dash.peer_port);
    let wait = Duration::from_secs(3);
    let (jobs, moved) = tokio::join!(
        client::ask_all(peers.clone(), key, &Msg::ListJobs, wait),
        client::ask_all(peers, key, &Msg::ListMoves, wait),
    );
    (
        client::merge_jobs(client::job_lists(jobs)),
        moves::merge(client::move_lists(moved)),
    )
}

/// Run the feed forever.
pub async fn run(
    dash: Arc<Dashboard>,
    live: Arc<LiveConfig>,
    stages: Arc<BootStages>,
    pending: Arc<Pending>,
) {
    let config = live.get();
    let master = Master {
        name: "ombootd".into(),
        ip: config.master_ip.to_string(),
        interface: config.interface.clone(),
    };
    let reports = Arc::new(Mutex::new(Reports::default()));
    let asking = Arc::new(tokio::sync::Semaphore::new(1));
    let mut users: HashMap<u32, String> = HashMap::new();
    let (mut users_at, mut asked, mut sampled) = (0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let config = live.get();
        if now.saturating_sub(users_at) >= 60_000 {
            let dir = config.image_dir.clone();
            if let Ok(u) = tokio::task::spawn_blocking(move || super::users::of_image(&dir)).await {
                users = u;
            }
            users_at = now;
        }
        let rows = dash.cluster.as_ref().map(|c| c.nodes());
        for r in rows.iter().flatten() {
            if !r.observer
                && r.state == MemberState::Alive
                && let Some(ip) = r.ip()
            {
                stages.record_ip(ip, Stage::Omd);
            }
        }
        let watched = dash.snapshot.receiver_count() > 0
            || now.saturating_sub(dash.asked_at.load(Ordering::Relaxed)) < INTEREST;
        if let (true, Some(key)) = (watched, dash.key.clone())
            && now.saturating_sub(asked) >= ASK_EVERY.as_millis() as u64
            && let Ok(permit) = asking.clone().try_acquire_owned()
        {
            asked = now;
            let (dash, reports) = (dash.clone(), reports.clone());
            tokio::spawn(async move {
                let (jobs, moves) = ask_nodes(&dash, &key).await;
                let mut r = reports.lock().unwrap_or_else(|p| p.into_inner());
                r.jobs = Some(jobs);
                r.moves = moves;
                drop(permit);
            });
        }
        let json = {
            let r = reports.lock().unwrap_or_else(|p| p.into_inner());
            let s = snapshot::build(Inputs {
                now_ms: now,
                master: &master,
                table: &config.nodes,
                cluster: rows.as_deref(),
                stages: &stages.all(),
                jobs: r.jobs.as_deref(),
                moves: &r.moves,
                users: &users,
                pending: &pending.list(),
            });
            serde_json::to_string(&s).unwrap_or_default()
        };
        dash.snapshot.send_replace(Arc::from(json));
        if now.saturating_sub(sampled) >= STEP_MS {
            sampled = now;
            let loads: BTreeMap<String, Option<f64>> = rows
                .iter()
                .flatten()
                .filter(|r| !r.observer)
                .map(|r| {
                    let live = r.state != MemberState::Dead;
                    (r.name.clone(), r.load.filter(|_| live).map(|l| l.load))
                })
                .collect();
            let sample = Sample { t_ms: now, loads };
            let json: Arc<str> = Arc::from(serde_json::to_string(&sample).unwrap_or_default());
            dash.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sample);
            let _ = dash.samples.send(json);
        }
    }
}
