//! omd's configuration: the TOML file as written (documented, `deny_unknown_fields`) and its
//! validation into domain types. Every field has a default, so an empty file is valid.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::agent::SwimTuning;
use crate::balance::Policy;
use crate::balance::policy::Placement;
use crate::migration::pre_dump::PreDumpPolicy;
use crate::wire::{DEFAULT_GROUP, DEFAULT_PORT, MAX_LOAD_RECORDS};

/// Where omd keeps its generation counter by default (RAM on a diskless node, reset at boot).
pub const DEFAULT_GENERATION_FILE: &str = "/run/omd/generation";
/// Where omd keeps this node's flags by default.
pub const DEFAULT_FLAGS_FILE: &str = "/run/omd/flags";

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Gossip interface name. Unset: the default-route interface, else the first non-lo
    /// interface with IPv4 (no per-node configuration needed).
    pub interface: Option<String>,
    /// UDP port for SWIM, LOAD and ANNOUNCE.
    pub port: u16,
    /// Multicast group for first contact.
    pub multicast_group: Ipv4Addr,
    /// Send and listen for multicast ANNOUNCE.
    pub multicast: bool,
    /// Cluster key file: 32+ random bytes, mode 0600. Every frame is sent under it.
    pub key_file: PathBuf,
    /// A second key file accepted (never sent with) while the cluster changes keys. Rotation,
    /// one rolling restart per step: (1) every node gets the new key here; (2) every node gets
    /// it as `key_file`, the old one here; (3) this is removed. Unset: only `key_file`.
    pub accept_key_file: Option<PathBuf>,
    /// Counter file for this node's SWIM generation. omd reads N from it (missing: 0), writes
    /// N + 1024 back and runs as generation N + 1, so each start is newer than the last and the
    /// last life's frames are dropped. The node's boot unit seeds it from ombootd's per-node
    /// boot count, so a rebooted node is newer than anything the cluster remembers.
    pub generation_file: PathBuf,
    /// This node's flags (stay, lstay, block, quiet), rewritten on every change and read at
    /// start: a restarted omd keeps what the operator set. Under /run, a reboot clears them,
    /// as it did openMosix's.
    pub flags_file: PathBuf,
    /// Control socket path.
    pub socket: PathBuf,
    /// Speed figure of this node (1000 = standard CPU; openMosix `setspeed`).
    pub speed: u32,
    /// Static first-contact addresses, `ip` or `ip:port`.
    pub seeds: Vec<String>,
    /// Join as an observer: member, no load, never a migration target.
    pub observer: bool,
    /// Records about others piggybacked on each LOAD packet.
    pub load_window: usize,
    /// SWIM timing.
    pub swim: SwimFile,
    /// TCP port of the peer protocol (migrations, stdio relays), the same on every node.
    pub peer_port: u16,
    /// Directory of the jobs this node hosts (keeper sockets, images in transit).
    pub jobs_dir: PathBuf,
    /// Migration tuning.
    pub migration: MigrationFile,
    /// Automatic load balancing.
    pub balance: BalanceFile,
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            interface: None,
            port: DEFAULT_PORT,
            multicast_group: DEFAULT_GROUP,
            multicast: true,
            key_file: "/etc/omd/cluster.key".into(),
            accept_key_file: None,
            generation_file: DEFAULT_GENERATION_FILE.into(),
            flags_file: DEFAULT_FLAGS_FILE.into(),
            socket: crate::api::DEFAULT_SOCKET.into(),
            speed: 1000,
            seeds: Vec::new(),
            observer: false,
            load_window: 8,
            swim: SwimFile::default(),
            peer_port: crate::jobs::DEFAULT_PEER_PORT,
            jobs_dir: crate::job::record::JOBS_DIR.into(),
            migration: MigrationFile::default(),
            balance: BalanceFile::default(),
        }
    }
}

/// `[migration]`: iterative pre-dump (see `migration::pre_dump`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationFile {
    /// At most this many pre-dump rounds while the job runs, before the frozen dump (0: off).
    pub pre_dump_rounds: u32,
    /// Pre-dump only jobs with at least this much resident memory, MiB.
    pub pre_dump_min_rss_mib: u64,
    /// Stop pre-dumping once a round moved less than this, MiB.
    pub pre_dump_small_round_mib: u64,
}

impl Default for MigrationFile {
    fn default() -> Self {
        let p = PreDumpPolicy::default();
        Self {
            pre_dump_rounds: p.max_rounds,
            pre_dump_min_rss_mib: p.min_rss >> 20,
            pre_dump_small_round_mib: p.small_round >> 20,
        }
    }
}

/// `[balance]`: automatic load balancing and memory ushering (see `balance::decide`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceFile {
    /// Move jobs automatically. Off: jobs move only by `omctl migrate`, `expel` and `bring`.
    pub enabled: bool,
    /// One decision (at most one move) per period, ms.
    pub period_ms: u64,
    /// Move a job only when the target's load plus `damping` times the job's load there is
    /// still below this node's load (MOSIX's 1.3: no ping-pong between near-equal nodes).
    pub damping: f64,
    /// Jobs using less than this many CPUs' worth of run queue are not moved for load.
    pub min_demand: f64,
    /// A job that arrived by migration stays at least this long, s.
    pub residency_s: u64,
    /// A move counts on its target's load for this long while the gossip catches up, s.
    pub settle_s: u64,
    /// A job sent away counts off this node's own load for this long while its smoothed load
    /// falls, s: the next move is decided on the load left.
    pub pause_s: u64,
    /// Fixed cost of a move beyond its bytes (dump, restore, freeze), ms.
    pub move_overhead_ms: u64,
    /// Migration bandwidth assumed until moves have measured it, MiB/s.
    pub bandwidth_mib_s: f64,
    /// A move must save this many times its cost (the job's age is its expected remaining
    /// time, after Harchol-Balter and Downey).
    pub gain_factor: f64,
    /// Memory ushering: below this percentage of memory available, jobs move to nodes with
    /// room; no move may push a target below it.
    pub mem_low_pct: f64,
    /// Load records older than this are not trusted, s (a quiet or silent node).
    pub stale_s: u64,
    /// Where `omrun` starts a job given no `-h`, `--node` or `--best`: "home" (the balancer
    /// moves it if that pays) or "best" (where it would run fastest now).
    pub placement: String,
}

impl Default for BalanceFile {
    fn default() -> Self {
        let p = Policy::default();
        Self {
            enabled: p.enabled,
            period_ms: p.period.as_millis() as u64,
            damping: p.damping,
            min_demand: p.min_demand,
            residency_s: p.residency.as_secs(),
            settle_s: p.settle.as_secs(),
            pause_s: p.pause.as_secs(),
            move_overhead_ms: p.move_overhead.as_millis() as u64,
            bandwidth_mib_s: p.bandwidth_guess / 1048576.0,
            gain_factor: p.gain_factor,
            mem_low_pct: p.mem_low * 100.0,
            stale_s: p.stale.as_secs(),
            placement: "home".into(),
        }
    }
}

impl BalanceFile {
    /// Validate into a [`Policy`].
    fn validate(self) -> Result<Policy, ConfigError> {
        let placement = match self.placement.as_str() {
            "home" => Placement::Home,
            "best" => Placement::Best,
            other => {
                return Err(invalid(
                    "balance.placement",
                    format!("{other:?} is neither \"home\" nor \"best\""),
                ));
            }
        };
        if self.period_ms < 100 {
            return Err(invalid("balance.period_ms", "must be at least 100"));
        }
        if !(self.damping.is_finite() && self.damping >= 1.0) {
            return Err(invalid(
                "balance.damping",
                "must be at least 1.0 (below, two nodes could trade a job back and forth)",
            ));
        }
        for (field, v) in [
            ("balance.min_demand", self.min_demand),
            ("balance.gain_factor", self.gain_factor),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(field, "must be a number ≥ 0"));
            }
        }
        if !(self.bandwidth_mib_s.is_finite() && self.bandwidth_mib_s > 0.0) {
            return Err(invalid("balance.bandwidth_mib_s", "must be > 0"));
        }
        if !(self.mem_low_pct.is_finite() && (0.0..90.0).contains(&self.mem_low_pct)) {
            return Err(invalid(
                "balance.mem_low_pct",
                "must be 0..90 (0 turns ushering off)",
            ));
        }
        if self.stale_s == 0 {
            return Err(invalid("balance.stale_s", "must be > 0"));
        }
        Ok(Policy {
            enabled: self.enabled,
            period: Duration::from_millis(self.period_ms),
            damping: self.damping,
            min_demand: self.min_demand,
            residency: Duration::from_secs(self.residency_s),
            settle: Duration::from_secs(self.settle_s),
            pause: Duration::from_secs(self.pause_s),
            move_overhead: Duration::from_millis(self.move_overhead_ms),
            bandwidth_guess: self.bandwidth_mib_s * 1048576.0,
            gain_factor: self.gain_factor,
            mem_low: self.mem_low_pct / 100.0,
            stale: Duration::from_secs(self.stale_s),
            placement,
        })
    }
}

/// `[swim]`: failure detection and dissemination timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwimFile {
    /// Probe one random member this often, ms.
    pub probe_period_ms: u64,
    /// Direct probe timeout before indirect probes, ms (< probe_period_ms).
    pub probe_rtt_ms: u64,
    /// A suspect is declared dead after this long, ms.
    pub suspect_to_down_ms: u64,
    /// Gossip membership updates this often, ms.
    pub gossip_period_ms: u64,
    /// ... to this many members.
    pub gossip_fanout: usize,
    /// Expected cluster size (sets retransmissions).
    pub cluster_size_hint: u32,
    /// Ask a random member for its member list this often, ms.
    pub announce_period_ms: u64,
    /// Right after joining, ANNOUNCE this node to this many members (0: only to whom it reached).
    pub join_fanout: usize,
}

impl Default for SwimFile {
    fn default() -> Self {
        let t = SwimTuning::default();
        Self {
            probe_period_ms: t.probe_period.as_millis() as u64,
            probe_rtt_ms: t.probe_rtt.as_millis() as u64,
            suspect_to_down_ms: t.suspect_to_down.as_millis() as u64,
            gossip_period_ms: t.gossip_period.as_millis() as u64,
            gossip_fanout: t.gossip_fanout,
            cluster_size_hint: t.cluster_size_hint,
            announce_period_ms: t.announce_period.as_millis() as u64,
            join_fanout: t.join_fanout,
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct OmdConfig {
    /// Interface name, or `None` to pick automatically.
    pub interface: Option<String>,
    /// Gossip port.
    pub port: u16,
    /// Multicast group, if multicast announce is on.
    pub multicast: Option<Ipv4Addr>,
    /// Key file.
    pub key_file: PathBuf,
    /// Key file also accepted (rotation).
    pub accept_key_file: Option<PathBuf>,
    /// Generation counter file.
    pub generation_file: PathBuf,
    /// Node flags file.
    pub flags_file: PathBuf,
    /// Control socket.
    pub socket: PathBuf,
    /// Speed figure.
    pub speed: u32,
    /// Seeds.
    pub seeds: Vec<SocketAddrV4>,
    /// Observer.
    pub observer: bool,
    /// Piggyback window.
    pub load_window: usize,
    /// SWIM timing.
    pub swim: SwimTuning,
    /// Peer protocol port.
    pub peer_port: u16,
    /// Jobs directory.
    pub jobs_dir: PathBuf,
    /// When to pre-dump.
    pub pre_dump: PreDumpPolicy,
    /// Balancing rules.
    pub balance: Policy,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot read the file.
    #[error("reading {path}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("parsing {path}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A value out of range.
    #[error("invalid `{field}`: {why}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// Explanation.
        why: String,
    },
}

fn invalid(field: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        why: why.into(),
    }
}

impl ConfigFile {
    /// Parse TOML text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Validate into domain types.
    pub fn validate(self) -> Result<OmdConfig, ConfigError> {
        if self.port == 0 {
            return Err(invalid("port", "must not be 0"));
        }
        if !self.multicast_group.is_multicast() {
            return Err(invalid(
                "multicast_group",
                format!("{} is not a multicast address", self.multicast_group),
            ));
        }
        if !(1..=1_000_000).contains(&self.speed) {
            return Err(invalid(
                "speed",
                "must be 1..=1000000 (1000 = standard CPU)",
            ));
        }
        if !(1..MAX_LOAD_RECORDS).contains(&self.load_window) {
            return Err(invalid(
                "load_window",
                format!("must be 1..{MAX_LOAD_RECORDS}"),
            ));
        }
        let s = &self.swim;
        if s.probe_rtt_ms == 0 || s.probe_rtt_ms >= s.probe_period_ms {
            return Err(invalid(
                "swim.probe_rtt_ms",
                "must be > 0 and < probe_period_ms",
            ));
        }
        if s.suspect_to_down_ms == 0
            || s.gossip_period_ms == 0
            || s.gossip_fanout == 0
            || s.announce_period_ms == 0
        {
            return Err(invalid("swim", "periods and fanout must be > 0"));
        }
        let seeds = self
            .seeds
            .iter()
            .map(|s| {
                s.parse::<SocketAddrV4>()
                    .or_else(|_| {
                        s.parse::<Ipv4Addr>()
                            .map(|ip| SocketAddrV4::new(ip, self.port))
                    })
                    .map_err(|_| {
                        invalid("seeds", format!("{s:?} is not an IPv4 address or ip:port"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.flags_file.as_os_str().is_empty() {
            return Err(invalid(
                "flags_file",
                "must name a file (default /run/omd/flags)",
            ));
        }
        if self.generation_file.as_os_str().is_empty() {
            return Err(invalid(
                "generation_file",
                "must name a file (default /run/omd/generation)",
            ));
        }
        if self.peer_port == 0 || self.peer_port == self.port {
            return Err(invalid(
                "peer_port",
                "must be a TCP port other than 0".to_owned(),
            ));
        }
        let m = &self.migration;
        if m.pre_dump_rounds > 16 {
            return Err(invalid(
                "migration.pre_dump_rounds",
                "must be 0..=16 (0 turns pre-dump off)",
            ));
        }
        let pre_dump = PreDumpPolicy {
            max_rounds: m.pre_dump_rounds,
            min_rss: m.pre_dump_min_rss_mib.saturating_mul(1 << 20),
            small_round: m.pre_dump_small_round_mib.saturating_mul(1 << 20),
        };
        let balance = self.balance.validate()?;
        Ok(OmdConfig {
            interface: self.interface.filter(|i| !i.is_empty()),
            port: self.port,
            multicast: self.multicast.then_some(self.multicast_group),
            key_file: self.key_file,
            accept_key_file: self.accept_key_file.filter(|p| !p.as_os_str().is_empty()),
            generation_file: self.generation_file,
            flags_file: self.flags_file,
            socket: self.socket,
            speed: self.speed,
            seeds,
            observer: self.observer,
            load_window: self.load_window,
            swim: SwimTuning {
                probe_period: Duration::from_millis(s.probe_period_ms),
                probe_rtt: Duration::from_millis(s.probe_rtt_ms),
                suspect_to_down: Duration::from_millis(s.suspect_to_down_ms),
                gossip_period: Duration::from_millis(s.gossip_period_ms),
                gossip_fanout: s.gossip_fanout,
                cluster_size_hint: s.cluster_size_hint.max(1),
                announce_period: Duration::from_millis(s.announce_period_ms),
                join_fanout: s.join_fanout,
            },
            peer_port: self.peer_port,
            jobs_dir: self.jobs_dir,
            pre_dump,
            balance,
        })
    }
}

/// Read, parse and validate a config file.
pub fn load(path: &Path) -> Result<OmdConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    ConfigFile::parse(&text, path)?.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<OmdConfig, ConfigError> {
        ConfigFile::parse(s, Path::new("t.toml"))?.validate()
    }

    #[test]
    fn shipped_config_is_valid_and_defaults_apply() {
        let shipped = include_str!("../../configs/omd.toml");
        let c = parse(shipped).unwrap();
        assert_eq!(c.port, 7946);
        assert_eq!(c.multicast, Some(DEFAULT_GROUP));
        assert_eq!(c.interface, None);
        assert!(!c.observer);
        assert_eq!(
            parse("").unwrap(),
            c,
            "the shipped file only spells out the defaults"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(parse("bogus = 1"), Err(ConfigError::Parse { .. })));
        assert!(parse("multicast_group = \"10.0.0.1\"").is_err());
        assert!(parse("speed = 0").is_err());
        assert!(parse("[swim]\nprobe_rtt_ms = 900").is_err());
        assert_eq!(
            parse("[swim]\njoin_fanout = 0").unwrap().swim.join_fanout,
            0
        );
        assert!(parse("seeds = [\"nope\"]").is_err());
        assert!(parse("[migration]\npre_dump_rounds = 99").is_err());
        assert!(parse("[migration]\npre_dump_round = 2").is_err());
        assert!(parse("[balance]\nplacement = \"random\"").is_err());
        assert!(parse("[balance]\ndamping = 0.9").is_err());
        assert!(parse("[balance]\nmem_low_pct = 95").is_err());
        assert!(parse("[balance]\nperiod = 2").is_err());
        let b = parse("[balance]\nenabled = false\nplacement = \"best\"\nmem_low_pct = 20")
            .unwrap()
            .balance;
        assert!(!b.enabled);
        assert_eq!(b.placement, Placement::Best);
        assert!((b.mem_low - 0.2).abs() < 1e-9);
        assert!(parse("generation_file = \"\"").is_err());
        assert!(parse("flags_file = \"\"").is_err());
        assert_eq!(parse("").unwrap().accept_key_file, None);
        let c = parse("accept_key_file = \"/etc/omd/next.key\"\ngeneration_file = \"/g\"").unwrap();
        assert_eq!(c.accept_key_file, Some("/etc/omd/next.key".into()));
        assert_eq!(c.generation_file, PathBuf::from("/g"));
        assert_eq!(
            parse("[migration]\npre_dump_rounds = 0")
                .unwrap()
                .pre_dump
                .max_rounds,
            0
        );
        let c = parse("seeds = [\"127.0.0.2\", \"127.0.0.3:9000\"]").unwrap();
        assert_eq!(c.seeds[0], "127.0.0.2:7946".parse().unwrap());
        assert_eq!(c.seeds[1], "127.0.0.3:9000".parse().unwrap());
    }
}
