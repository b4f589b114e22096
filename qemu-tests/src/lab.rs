//! The lab: a network namespace `omlab-<name>` holding a bridge with the master's address, taps
//! for QEMU nodes, client namespaces on veth pairs, and every process the lab starts. It is RAII:
//! creating one first clears leftovers of crashed runs; dropping it leaves nothing behind.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tempfile::TempDir;

use crate::cleanup::{self, Scope};
use crate::command;
use crate::error::{Error, Result, io};
use crate::link;
use crate::netns::{self, PREFIX};
use crate::owner;
use crate::process::{Proc, Registry};

/// The bridge every lab has.
pub const BRIDGE: &str = "ombr0";
/// The master's default address.
pub const DEFAULT_MASTER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The default prefix length of the lab subnet.
pub const DEFAULT_PREFIX: u8 = 24;

/// A second namespace joined to the lab by a veth pair, for running real clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNs {
    netns: String,
    lab_iface: String,
}

impl ClientNs {
    /// The namespace, `omlab-<lab>.<name>`; pass it to [`Lab::spawn`] or [`Lab::run`].
    pub fn netns(&self) -> &str {
        &self.netns
    }
    /// The client's interface: always `eth0`.
    pub fn iface(&self) -> &str {
        "eth0"
    }
    /// The veth end in the lab namespace (named after the client).
    pub fn lab_iface(&self) -> &str {
        &self.lab_iface
    }
    /// A UDP socket bound to `addr` inside this namespace, for a test that speaks a protocol
    /// by hand (a forged, replayed or misplaced packet).
    pub fn udp_socket(&self, addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
        netns::make_in(&self.netns, move || std::net::UdpSocket::bind(addr))
            .map_err(io(format!("bind a UDP socket to {addr} in {}", self.netns)))
    }
}

/// One lab. All methods take `&self`, so nodes can boot from several threads at once.
#[derive(Debug)]
pub struct Lab {
    name: String,
    netns: String,
    master: Ipv4Addr,
    prefix: u8,
    dir: PathBuf,
    /// `None` once the directory is to be kept.
    tempdir: Mutex<Option<TempDir>>,
    run_dir: PathBuf,
    procs: Registry,
    clients: Mutex<Vec<String>>,
    taps: Mutex<Vec<String>>,
    torn_down: bool,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded lists are only pushed to; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            name: label.to_owned(),
            reason: "a label is 1 to 64 of [A-Za-z0-9-_.]",
        })
    }
}

impl Lab {
    /// Creates lab `name` (1 to 20 of `[a-z0-9-]`) with the master at 10.77.0.1/24.
    pub fn new(name: &str) -> Result<Lab> {
        Lab::with_master(name, DEFAULT_MASTER, DEFAULT_PREFIX)
    }

    /// Creates lab `name` with the master at `master`/`prefix`. Removes leftovers of crashed
    /// runs first; fails if a live process already owns a lab of that name.
    pub fn with_master(name: &str, master: Ipv4Addr, prefix: u8) -> Result<Lab> {
        let name_ok = !name.is_empty()
            && name.len() <= 20
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(Error::BadName {
                name: name.to_owned(),
                reason: "a lab name is 1 to 20 of [a-z0-9-]",
            });
        }
        if !(8..=30).contains(&prefix) {
            return Err(Error::BadName {
                name: format!("{master}/{prefix}"),
                reason: "the prefix must be 8 to 30",
            });
        }
        let netns = format!("{PREFIX}{name}");
        netns::check_name(&netns)?;
        cleanup::remove_leftovers(Scope::Stale)?;
        let run_dir = owner::run_dir();
        if netns::exists(&netns)? {
            let pid = owner::owner(&run_dir, &netns).map_or(0, |o| o.pid);
            return Err(Error::InUse { netns, pid });
        }
        let base = std::env::var_os("OMLAB_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let tempdir = tempfile::Builder::new()
            .prefix(&format!("omlab-{name}-"))
            .tempdir_in(&base)
            .map_err(io(format!("create a lab directory in {}", base.display())))?;
        owner::claim(&run_dir, &netns)?;
        if let Err(e) = netns::add(&netns) {
            owner::release(&run_dir, &netns);
            return Err(e);
        }
        // From here on Drop cleans up whatever the next steps fail to finish.
        let lab = Lab {
            name: name.to_owned(),
            netns,
            master,
            prefix,
            dir: tempdir.path().to_owned(),
            tempdir: Mutex::new(Some(tempdir)),
            run_dir,
            procs: Registry::default(),
            clients: Mutex::new(Vec::new()),
            taps: Mutex::new(Vec::new()),
            torn_down: false,
        };
        link::add_bridge(&lab.netns, BRIDGE)?;
        link::add_addr(&lab.netns, BRIDGE, &format!("{master}/{prefix}"))?;
        Ok(lab)
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its namespace, `omlab-<name>`.
    pub fn netns(&self) -> &str {
        &self.netns
    }
    /// Its bridge, `ombr0`.
    pub fn bridge(&self) -> &str {
        BRIDGE
    }
    /// The master's address on the bridge.
    pub fn master_ip(&self) -> Ipv4Addr {
        self.master
    }
    /// The subnet in CIDR form, such as `10.77.0.0/24`.
    pub fn subnet(&self) -> String {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(self.master) & mask),
            self.prefix
        )
    }
    /// The work directory for logs, configs and sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the work directory after teardown (it is kept anyway when a panic or a teardown
    /// failure ends the lab). Its path is printed on stderr then.
    pub fn keep_dir(&self) {
        if let Some(t) = locked(&self.tempdir).take() {
            let _ = t.keep();
        }
    }

    /// Ends the lab after a run that gave `result`: its directory kept when the run failed,
    /// then torn down; the run's error comes first, then the teardown's.
    pub fn close<T, E: From<Error>>(
        self,
        result: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if result.is_err() {
            self.keep_dir();
        }
        let down = self.teardown();
        let t = result?;
        down?;
        Ok(t)
    }

    fn owns_netns(&self, ns: &str) -> bool {
        ns == self.netns || locked(&self.clients).iter().any(|c| c == ns)
    }

    /// Creates tap `name` in the lab namespace, attached to the bridge and up.
    pub fn add_tap(&self, name: &str) -> Result<String> {
        link::check_ifname(name)?;
        link::add_tap(&self.netns, name, BRIDGE)?;
        locked(&self.taps).push(name.to_owned());
        Ok(name.to_owned())
    }

    /// Creates tap `name` unless this lab already made it.
    pub(crate) fn ensure_tap(&self, name: &str) -> Result<()> {
        if locked(&self.taps).iter().any(|t| t == name) {
            return Ok(());
        }
        self.add_tap(name).map(drop)
    }

    /// Creates namespace `omlab-<lab>.<name>` joined by a veth pair: `eth0` in the client
    /// namespace, `name` in the lab namespace. With `on_bridge` the lab end joins the bridge;
    /// without, it stays a separate interface with no address (an interface ombootd must not
    /// serve).
    pub fn add_client_ns(&self, name: &str, on_bridge: bool) -> Result<ClientNs> {
        link::check_ifname(name)?;
        let ns = format!("{}.{name}", self.netns);
        netns::check_name(&ns)?;
        owner::claim(&self.run_dir, &ns)?;
        if let Err(e) = netns::add(&ns) {
            owner::release(&self.run_dir, &ns);
            return Err(e);
        }
        locked(&self.clients).push(ns.clone());
        link::add_veth(&self.netns, name, &ns, "eth0", on_bridge.then_some(BRIDGE))?;
        Ok(ClientNs {
            netns: ns,
            lab_iface: name.to_owned(),
        })
    }

    /// Gives the master (the bridge) an IPv6 address as well, such as `fd77::1/64`, the one
    /// ombootd's `ipv6_boot` names. Adding the same address again changes nothing.
    pub fn add_master_ipv6(&self, cidr: &str) -> Result<()> {
        link::replace_addr6(&self.netns, BRIDGE, cidr)
    }

    /// Gives a client's `eth0` a static address, such as `10.77.0.50/24`.
    pub fn add_client_addr(&self, client: &ClientNs, cidr: &str) -> Result<()> {
        link::add_addr(&client.netns, client.iface(), cidr)
    }

    fn in_own_ns(&self, cmd: &Command, ns: &str) -> Result<Command> {
        if !self.owns_netns(ns) {
            return Err(Error::BadName {
                name: ns.to_owned(),
                reason: "not a namespace of this lab",
            });
        }
        Ok(netns::exec(ns, cmd))
    }

    /// Starts `cmd` inside namespace `ns` (the lab's or one of its clients'), in its own process
    /// group, stdout and stderr appended to `<dir>/<label>.log`. The lab stops it at teardown.
    pub fn spawn(&self, label: &str, cmd: Command, ns: &str) -> Result<Proc> {
        check_label(label)?;
        let wrapped = self.in_own_ns(&cmd, ns)?;
        self.procs
            .spawn(label, wrapped, self.dir.join(format!("{label}.log")))
    }

    /// Runs a short command inside `ns` to completion and returns its output whatever its exit
    /// status; kills its process group after `timeout`.
    pub fn run(&self, cmd: Command, ns: &str, timeout: Duration) -> Result<Output> {
        command::output(self.in_own_ns(&cmd, ns)?, timeout)
    }

    /// A spawned process's exit status, once it has exited.
    pub fn status(&self, p: &Proc) -> Option<ExitStatus> {
        self.procs.status(p)
    }

    /// Waits up to `timeout` for a spawned process to exit by itself.
    pub fn wait_exit(&self, p: &Proc, timeout: Duration) -> Result<ExitStatus> {
        self.procs.wait_exit(p, timeout)
    }

    /// Stops a spawned process's group: SIGTERM, up to 5 s, SIGKILL.
    pub fn stop(&self, p: &Proc) -> Result<ExitStatus> {
        self.procs.stop(p)
    }

    /// Kills a spawned process's group with SIGKILL at once (a crash: no handler runs).
    pub fn crash(&self, p: &Proc) -> Result<ExitStatus> {
        self.procs.crash(p)
    }

    /// Waits for a line containing `needle` in a spawned process's output (since that spawn);
    /// fails at once, with the log tail, if the process exits first.
    pub fn wait_for_output(&self, p: &Proc, needle: &str, timeout: Duration) -> Result<String> {
        self.procs.wait_for_line(p, needle, timeout)
    }

    /// Tears the lab down and reports anything that survived. Dropping the lab does the same
    /// but can only print (and panic, outside an unwinding panic) on failure.
    pub fn teardown(mut self) -> Result<()> {
        self.torn_down = true;
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<()> {
        let mut lingering = self.procs.stop_all();
        let mut namespaces = std::mem::take(&mut *locked(&self.clients));
        namespaces.push(self.netns.clone());
        let mut failures = Vec::new();
        for ns in &namespaces {
            // Anything still inside escaped its process group (a daemon that forked away):
            // kill it by PID, and count it as lingering so the test notices.
            match cleanup::kill_inside(ns) {
                Ok(pids) if !pids.is_empty() => {
                    lingering.push(format!("processes {pids:?} in {ns}"))
                }
                Ok(_) => {}
                Err(e) => failures.push(e.to_string()),
            }
            match netns::delete(ns) {
                Ok(()) => owner::release(&self.run_dir, ns),
                Err(e) => failures.push(e.to_string()),
            }
        }
        lingering.extend(failures);
        let failed = !lingering.is_empty();
        if failed || std::thread::panicking() {
            self.keep_dir();
        }
        if locked(&self.tempdir).take().is_none() {
            eprintln!(
                "omlab: lab {}: work directory kept at {}",
                self.name,
                self.dir.display()
            );
        }
        if failed {
            return Err(Error::Lingering {
                lab: self.name.clone(),
                what: lingering.join("; "),
            });
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if let Err(e) = self.teardown_inner() {
            eprintln!("omlab: {e}");
            // Fail the test that leaked, unless a panic is already unwinding (a second panic
            // would abort and hide the first).
            if !std::thread::panicking() {
                panic!("{e}");
            }
        }
    }
}
