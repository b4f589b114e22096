//! QEMU compute nodes: a builder for one machine that PXE-boots from the lab bridge, and the
//! running machine with waits on its serial console and a clean power-off over QMP.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::console::{Console, ShellOutput};
use crate::error::{Error, Result, io};
use crate::firmware::Firmware;
use crate::lab::Lab;
use crate::mac::MacAddr;
use crate::marker;
use crate::nic::Nic;
use crate::process::Proc;
use crate::qmp::Qmp;
use crate::wait::{self, LineScanner};

/// How long a node may take to exit after QMP `quit`.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to look for `OMBOOT-FAILED-UNITS` after a READY whose state is not `running`.
const FAILED_UNITS_WAIT: Duration = Duration::from_secs(3);
/// The PCI slot of every node's NIC: where QEMU puts the first device after its own (host
/// bridge, PIIX, VGA), pinned because a UEFI boot option names the NIC by it.
pub(crate) const NIC_PCI_SLOT: u8 = 3;

/// A node to boot: name, NIC, firmware and machine size.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    mac: MacAddr,
    firmware: Firmware,
    memory_mib: u32,
    cpus: u32,
    kvm: bool,
    nic: Nic,
    nic_rom: bool,
    qemu: PathBuf,
    extra: Vec<OsString>,
}

/// Files of one boot of a node, inside the lab directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// The tap the NIC uses.
    pub tap: String,
    /// The serial console log (everything the node printed).
    pub serial: PathBuf,
    /// The serial console's socket, for typing commands ([`RunningNode::shell`]).
    pub console: PathBuf,
    /// The QMP socket.
    pub qmp: PathBuf,
    /// The per-node firmware file: the UEFI variable store copy, or SeaBIOS's serial-console
    /// setting.
    pub firmware_file: PathBuf,
}

impl Node {
    /// A BIOS node with 512 MiB, one CPU, TCG. `name` is 1 to 11 of `[a-z0-9-]` (it also names
    /// the tap, `tap-<name>`, which Linux limits to 15 characters).
    pub fn new(name: &str, mac: MacAddr) -> Node {
        Node {
            name: name.to_owned(),
            mac,
            firmware: Firmware::Bios,
            memory_mib: 512,
            cpus: 1,
            kvm: false,
            nic: Nic::Virtio,
            nic_rom: true,
            qemu: PathBuf::from("qemu-system-x86_64"),
            extra: Vec::new(),
        }
    }

    /// Sets the firmware.
    pub fn firmware(mut self, firmware: Firmware) -> Node {
        self.firmware = firmware;
        self
    }

    /// Sets the NIC model (virtio-net by default).
    pub fn nic(mut self, nic: Nic) -> Node {
        self.nic = nic;
        self
    }

    /// Its NIC model.
    pub fn nic_model(&self) -> Nic {
        self.nic
    }

    /// Whether the NIC carries its iPXE option ROM (the default). Without it, OVMF boots with
    /// edk2's own PXE client, which fetches `ipxe.efi` over TFTP first; SeaBIOS has no PXE client
    /// of its own, so a BIOS node without the ROM cannot network-boot.
    pub fn nic_rom(mut self, on: bool) -> Node {
        self.nic_rom = on;
        self
    }

    /// Whether the NIC carries its iPXE option ROM.
    pub fn has_nic_rom(&self) -> bool {
        self.nic_rom
    }

    /// Sets the memory size.
    pub fn memory_mib(mut self, mib: u32) -> Node {
        self.memory_mib = mib;
        self
    }

    /// Sets the CPU count.
    pub fn cpus(mut self, cpus: u32) -> Node {
        self.cpus = cpus;
        self
    }

    /// Uses KVM instead of TCG. Off by default: on the lab hosts KVM guests hang (LAB-NOTES).
    pub fn kvm(mut self, on: bool) -> Node {
        self.kvm = on;
        self
    }

    /// Uses another QEMU binary.
    pub fn qemu_binary(mut self, path: impl Into<PathBuf>) -> Node {
        self.qemu = path.into();
        self
    }

    /// Appends a raw QEMU argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Node {
        self.extra.push(arg.into());
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Its firmware.
    pub fn firmware_kind(&self) -> Firmware {
        self.firmware
    }

    /// The tap its NIC uses.
    pub fn tap_name(&self) -> String {
        format!("tap-{}", self.name)
    }

    fn check_name(&self) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 11
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(Error::BadName {
                name: self.name.clone(),
                reason: "a node name is 1 to 11 of [a-z0-9-]",
            })
        }
    }

    /// The QEMU command line (without the program) for one boot with these files.
    pub fn qemu_args(&self, paths: &NodePaths) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-name");
        push(&self.name);
        push("-accel");
        push(if self.kvm { "kvm" } else { "tcg" });
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.cpus.to_string());
        push("-boot");
        push("n");
        push("-netdev");
        push(&format!(
            "tap,id=n0,ifname={},script=no,downscript=no",
            paths.tap
        ));
        push("-device");
        let rom = if self.nic_rom { "" } else { ",romfile=" };
        push(&format!(
            "{},netdev=n0,mac={}{rom},addr={NIC_PCI_SLOT:#x}",
            self.nic.qemu_device(),
            self.mac
        ));
        push("-display");
        push("none");
        push("-monitor");
        push("none");
        // Power-offs and reboots both end the process: a node boots exactly once per Proc.
        push("-no-reboot");
        // One chardev both logs everything to the serial file and accepts typed input on a socket.
        let mut serial = OsString::from("socket,id=ser0,server=on,wait=off,path=");
        serial.push(&paths.console);
        serial.push(",logfile=");
        serial.push(&paths.serial);
        let mut qmp = OsString::from("unix:");
        qmp.push(&paths.qmp);
        qmp.push(",server=on,wait=off");
        args.extend([
            "-chardev".into(),
            serial,
            "-serial".into(),
            "chardev:ser0".into(),
            "-qmp".into(),
            qmp,
        ]);
        args.extend(self.firmware.qemu_args(&paths.firmware_file));
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Powers the node on inside `lab`: makes its tap (first boot only), fresh firmware state and
    /// a new serial log (`<name>.serial`, then `<name>.boot2.serial`, …), and starts QEMU.
    pub fn boot<'l>(&self, lab: &'l Lab) -> Result<RunningNode<'l>> {
        self.check_name()?;
        let tap = self.tap_name();
        lab.ensure_tap(&tap)?;
        let dir = lab.dir();
        let (serial, label) = next_boot_files(dir, &self.name);
        let qmp = dir.join(format!("{label}.qmp"));
        let console = dir.join(format!("{label}.console"));
        for sock in [&qmp, &console] {
            // sun_path holds 108 bytes including the NUL.
            if sock.as_os_str().len() > 107 {
                return Err(Error::Qmp {
                    path: sock.clone(),
                    reason: "socket path longer than 107 bytes".into(),
                });
            }
            let _ = std::fs::remove_file(sock);
        }
        let firmware_file = self.firmware.prepare(dir, &label, self.mac)?;
        let paths = NodePaths {
            tap,
            serial,
            console,
            qmp,
            firmware_file,
        };
        let mut cmd = Command::new(&self.qemu);
        cmd.args(self.qemu_args(&paths));
        let proc = lab.spawn(&format!("qemu-{label}"), cmd, lab.netns())?;
        Ok(RunningNode {
            lab,
            name: self.name.clone(),
            firmware: self.firmware,
            proc,
            paths,
            powered_on: Instant::now(),
            console: std::sync::Mutex::new(None),
        })
    }
}

/// The serial path and label of the next boot of `name`.
fn next_boot_files(dir: &Path, name: &str) -> (PathBuf, String) {
    let mut boot = 1;
    loop {
        let label = if boot == 1 {
            name.to_owned()
        } else {
            format!("{name}.boot{boot}")
        };
        let serial = dir.join(format!("{label}.serial"));
        if !serial.exists() {
            return (serial, label);
        }
        boot += 1;
    }
}

/// What `wait_up` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUp {
    /// The name the node reported.
    pub name: String,
    /// The address it reported.
    pub ip: Ipv4Addr,
    /// The systemd state it reported.
    pub state: String,
    /// Units listed by `OMBOOT-FAILED-UNITS`, if any.
    pub failed_units: Vec<String>,
    /// Seconds from power-on to the READY line (measured to within the 0.1 s poll).
    pub up_secs: f64,
}

/// A powered-on node.
#[derive(Debug)]
pub struct RunningNode<'l> {
    lab: &'l Lab,
    name: String,
    firmware: Firmware,
    proc: Proc,
    paths: NodePaths,
    powered_on: Instant,
    /// The console connection, opened by the first [`RunningNode::shell`].
    console: std::sync::Mutex<Option<Console>>,
}

impl RunningNode<'_> {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Plugs or pulls the node's network cable: its tap on the lab bridge up or down.
    pub fn set_link(&self, up: bool) -> Result<()> {
        let tap = format!("tap-{}", self.name);
        let state = if up { "up" } else { "down" };
        let mut ip = Command::new("ip");
        ip.args(["link", "set", &tap, state]);
        let out = self
            .lab
            .run(ip, self.lab.netns(), Duration::from_secs(10))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::CommandFailed {
            command: format!("ip link set {tap} {state}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
    /// Its firmware.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }
    /// The QEMU process (its log holds QEMU's own messages).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }
    /// This boot's files.
    pub fn paths(&self) -> &NodePaths {
        &self.paths
    }
    /// The serial console log.
    pub fn serial_log(&self) -> &Path {
        &self.paths.serial
    }
    /// When QEMU was started.
    pub fn powered_on_at(&self) -> Instant {
        self.powered_on
    }

    fn failure_detail(&self) -> String {
        let mut d = wait::tail_detail(&self.paths.serial);
        let qemu_log = wait::tail(self.proc.log(), 10);
        if !qemu_log.is_empty() {
            d.push_str(&format!(
                "\nQEMU said ({}):\n{qemu_log}",
                self.proc.log().display()
            ));
        }
        d
    }

    /// Waits for the first new serial line matching `pred`, failing at once if QEMU exits.
    /// Returns the line and the time since power-on.
    fn wait_serial_with(
        &self,
        scanner: &mut LineScanner,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<(String, Duration)> {
        wait::until(
            what,
            timeout,
            || self.failure_detail(),
            || {
                if let Some(line) = scanner.find(&mut pred)? {
                    return Ok(Some((line, self.powered_on.elapsed())));
                }
                match self.lab.status(&self.proc) {
                    Some(status) => match scanner.find(&mut pred)? {
                        Some(line) => Ok(Some((line, self.powered_on.elapsed()))),
                        None => Err(Error::Exited {
                            label: self.proc.label().to_owned(),
                            status: status.to_string(),
                            what: what.to_owned(),
                            detail: self.failure_detail(),
                        }),
                    },
                    None => Ok(None),
                }
            },
        )
    }

    /// Waits for a serial line containing `needle`; returns it and the time since power-on.
    /// On timeout the error holds the serial tail.
    pub fn wait_serial(&self, needle: &str, timeout: Duration) -> Result<(String, Duration)> {
        let mut scanner = LineScanner::new(&self.paths.serial, 0);
        let what = format!("{needle:?} on the serial console of {}", self.name);
        self.wait_serial_with(&mut scanner, &what, timeout, |l| l.contains(needle))
    }

    /// Waits for `OMBOOT-READY` on the serial console, then (for a state other than `running`)
    /// briefly for `OMBOOT-FAILED-UNITS`.
    pub fn wait_up(&self, timeout: Duration) -> Result<NodeUp> {
        let mut scanner = LineScanner::new(&self.paths.serial, 0);
        let what = format!("{} on the serial console of {}", marker::READY, self.name);
        let (line, elapsed) = self.wait_serial_with(&mut scanner, &what, timeout, |l| {
            marker::parse_ready(l).is_some()
        })?;
        let ready = match marker::parse_ready(&line) {
            Some(parsed) => parsed?,
            None => {
                return Err(Error::Marker {
                    line,
                    reason: "marker vanished between reads".into(),
                });
            }
        };
        let mut failed_units = Vec::new();
        if ready.state != "running" {
            let what = format!(
                "{} on the serial console of {}",
                marker::FAILED_UNITS,
                self.name
            );
            match self.wait_serial_with(&mut scanner, &what, FAILED_UNITS_WAIT, |l| {
                marker::parse_failed_units(l).is_some()
            }) {
                Ok((l, _)) => failed_units = marker::parse_failed_units(&l).unwrap_or_default(),
                Err(Error::Timeout { .. } | Error::Exited { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(NodeUp {
            name: ready.name,
            ip: ready.ip,
            state: ready.state,
            failed_units,
            up_secs: elapsed.as_secs_f64(),
        })
    }

    /// Runs `command` in the root shell on the node's serial console and returns its output and
    /// exit status. The node must be up (the console logs root in once multi-user is reached).
    pub fn shell(&self, command: &str, timeout: Duration) -> Result<ShellOutput> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut slot = self
            .console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(
                Console::connect(&self.paths.console)
                    .map_err(io(format!("connect to {}", self.paths.console.display())))?,
            );
        }
        let console = slot
            .as_mut()
            .ok_or_else(|| Error::Panicked("console".into()))?;
        let started = Instant::now();
        console
            .run(n, command, timeout)
            .map_err(|waiting_for| Error::Timeout {
                what: format!(
                    "{waiting_for} for `{command}` on the console of {}",
                    self.name
                ),
                secs: started.elapsed().as_secs_f64(),
                detail: self.failure_detail(),
            })
    }

    /// Presses the ACPI power button (the guest decides what to do).
    pub fn press_power_button(&self) -> Result<()> {
        Qmp::connect(&self.paths.qmp)?
            .execute("system_powerdown")
            .map(drop)
    }

    /// Powers the node off at once (QMP `quit`) and waits for QEMU to exit; falls back to
    /// stopping the process group when QMP does not answer.
    pub fn power_off(self) -> Result<()> {
        if self.lab.status(&self.proc).is_some() {
            return Ok(());
        }
        let quit = Qmp::connect(&self.paths.qmp).and_then(|mut q| q.execute("quit"));
        match quit.and_then(|_| self.lab.wait_exit(&self.proc, QUIT_TIMEOUT)) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.lab.stop(&self.proc)?;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::LabMac;

    fn args_of(node: &Node, firmware_file: &str) -> Vec<String> {
        let paths = NodePaths {
            tap: node.tap_name(),
            serial: "/l/n.serial".into(),
            console: "/l/n.console".into(),
            qmp: "/l/n.qmp".into(),
            firmware_file: firmware_file.into(),
        };
        node.qemu_args(&paths)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn bios_node_command_line() {
        let node = Node::new("node1", MacAddr::lab(1));
        let args = args_of(&node, "/l/n.sercon-port").join(" ");
        assert!(args.contains("-accel tcg -m 512 "), "{args}");
        assert!(args.contains("-boot n"), "{args}");
        assert!(
            args.contains("-netdev tap,id=n0,ifname=tap-node1,script=no,downscript=no"),
            "{args}"
        );
        assert!(
            args.contains("-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01,addr=0x3 "),
            "{args}"
        );
        assert!(
            args.contains(
                "-chardev socket,id=ser0,server=on,wait=off,path=/l/n.console,logfile=/l/n.serial \
                 -serial chardev:ser0 -qmp unix:/l/n.qmp,server=on,wait=off"
            ),
            "{args}"
        );
        assert!(
            args.contains("-no-reboot") && !args.contains("pflash"),
            "{args}"
        );
    }

    #[test]
    fn uefi_kvm_node_command_line() {
        let node = Node::new("node2", MacAddr::lab(2))
            .firmware(Firmware::Uefi)
            .kvm(true)
            .memory_mib(1024);
        let args = args_of(&node, "/l/node2.OVMF_VARS.fd").join(" ");
        assert!(args.contains("-accel kvm -m 1024 "), "{args}");
        assert!(args.contains(
            "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        ));
        assert!(
            args.contains("-drive if=pflash,format=raw,file=/l/node2.OVMF_VARS.fd"),
            "{args}"
        );
    }

    #[test]
    fn an_ipv6_http_boot_node_waits_before_it_boots_and_has_no_pxe() {
        let node = Node::new("node5", MacAddr::lab(5))
            .firmware(Firmware::UefiHttpIpv6)
            .nic_rom(false);
        let args = args_of(&node, "/l/node5.OVMF_VARS.fd").join(" ");
        assert!(
            args.contains("mac=52:54:00:77:00:05,romfile=,addr=0x3 "),
            "{args}"
        );
        assert!(
            args.contains("-boot n ") && args.contains("-boot menu=on,splash-time=5000"),
            "{args}"
        );
        for knob in ["IPv4PXESupport", "IPv6PXESupport"] {
            assert!(
                args.contains(&format!("-fw_cfg name=opt/org.tianocore/{knob},string=n")),
                "{args}"
            );
        }
    }

    #[test]
    fn node_names_fit_a_tap() {
        assert!(
            Node::new("node-number1", MacAddr::lab(1))
                .check_name()
                .is_err()
        );
        assert!(Node::new("Node1", MacAddr::lab(1)).check_name().is_err());
        assert!(
            Node::new("node-numbr1", MacAddr::lab(1))
                .check_name()
                .is_ok()
        );
    }

    #[test]
    fn boot_files_do_not_overwrite_earlier_boots() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (first, label) = next_boot_files(dir.path(), "n1");
        assert_eq!(
            (first.file_name(), label.as_str()),
            (Some("n1.serial".as_ref()), "n1")
        );
        std::fs::write(&first, "").expect("write");
        let (second, label) = next_boot_files(dir.path(), "n1");
        assert_eq!(
            (second.file_name(), label.as_str()),
            (Some("n1.boot2.serial".as_ref()), "n1.boot2")
        );
    }
}
