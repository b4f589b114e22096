//! Anchor servers for benchmarks (tftpd-hpa, atftpd, nfs-ganesha, …), unpacked from Debian
//! packages into a private directory instead of installed: installing them would start services
//! on the host's own interfaces. The lab runs the unpacked binaries inside its namespace only.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result, io};

/// Downloads `package` (`apt-get download`) into `<dir>/debs` and unpacks it into its own root
/// `<dir>/<package>` (packages may ship the same path: atftpd and tftpd-hpa both have
/// `in.tftpd`); returns that root. Reuses what an earlier call unpacked.
pub fn unpack(package: &str, dir: &Path) -> Result<PathBuf> {
    let debs = dir.join("debs");
    let root = dir.join(package);
    std::fs::create_dir_all(&debs).map_err(io(format!("create {}", debs.display())))?;
    std::fs::create_dir_all(&root).map_err(io(format!("create {}", root.display())))?;
    let stamp = root.join(".unpacked");
    if !stamp.exists() {
        let deb = match deb_of(&debs, package)? {
            Some(d) => d,
            None => {
                let download = || {
                    run(Command::new("apt-get")
                        .args(["download", "-q", package])
                        .current_dir(&debs))
                };
                // An old or empty package list: refresh it once and retry.
                let fetched = download()
                    || (run(Command::new("apt-get").args(["update", "-q"])) && download());
                if !fetched {
                    return Err(Error::Anchor(format!("apt-get download {package} failed")));
                }
                deb_of(&debs, package)?
                    .ok_or_else(|| Error::Anchor(format!("no {package}_*.deb after download")))?
            }
        };
        if !run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root)) {
            return Err(Error::Anchor(format!("cannot unpack {}", deb.display())));
        }
        std::fs::write(&stamp, b"").map_err(io(format!("write {}", stamp.display())))?;
    }
    Ok(root)
}

/// dnsmasq's package and the libraries it needs that a minimal Debian lacks.
pub const DNSMASQ_PACKAGES: [&str; 7] = [
    "dnsmasq-base",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libnftables1",
    "libnftnl11",
    "libjansson4",
    "libxtables12",
];

/// dnsmasq unpacked, ready to run in a lab namespace.
#[derive(Debug, Clone)]
pub struct Dnsmasq {
    /// The binary.
    pub bin: PathBuf,
    /// The `LD_LIBRARY_PATH` it runs with.
    pub libs: String,
}

impl Dnsmasq {
    /// dnsmasq as every lab use runs it: in the foreground, no DNS, as root, its pid and lease
    /// files `<dir>/<name>.pid` and `<dir>/<name>.leases`; the caller adds what it serves.
    pub fn command(&self, dir: &Path, name: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--keep-in-foreground",
            "--no-daemon",
            "--port=0",
            "--user=root",
        ])
        .arg(format!(
            "--pid-file={}",
            dir.join(format!("{name}.pid")).display()
        ))
        .arg(format!(
            "--dhcp-leasefile={}",
            dir.join(format!("{name}.leases")).display()
        ))
        .env("LD_LIBRARY_PATH", &self.libs);
        cmd
    }
}

/// dnsmasq unpacked in `dir` (see [`unpack`]).
pub fn dnsmasq(dir: &Path) -> Result<Dnsmasq> {
    let roots = DNSMASQ_PACKAGES
        .iter()
        .map(|p| unpack(p, dir))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    Ok(Dnsmasq {
        bin: roots[0].join("usr/sbin/dnsmasq"),
        libs: library_path(&refs),
    })
}

/// nfs-ganesha with its VFS back end, rpcbind (ganesha cannot start without registering NFSv3
/// there), and the libraries of both that a minimal Debian lacks.
pub const GANESHA_PACKAGES: [&str; 7] = [
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "libntirpc4.3",
    "liburcu8",
    "libnfsidmap1",
    "rpcbind",
    "libwrap0",
];

/// The line ganesha logs once it serves.
pub const GANESHA_READY: &str = "NFS SERVER INITIALIZED";

/// nfs-ganesha and rpcbind unpacked, ready to run in a lab namespace.
#[derive(Debug, Clone)]
pub struct Ganesha {
    /// `ganesha.nfsd`.
    pub bin: PathBuf,
    /// The directory of its FSAL modules (`libfsalvfs.so`).
    pub plugins: PathBuf,
    /// `rpcbind`.
    pub rpcbind: PathBuf,
    /// The `LD_LIBRARY_PATH` both run with.
    pub libs: String,
}

/// One read-only export of a directory over NFSv3 on TCP, its NFS and MOUNT services on ports
/// of their own (a client names both: `port=`, `mountport=`, `mountproto=tcp`).
#[derive(Debug, Clone)]
pub struct GaneshaExport {
    /// The directory exported; NFSv3 clients mount it by this path.
    pub path: PathBuf,
    /// The address ganesha listens on.
    pub bind: Ipv4Addr,
    /// The NFS port.
    pub nfs_port: u16,
    /// The MOUNT port.
    pub mount_port: u16,
}

impl Ganesha {
    /// ganesha's configuration for `export`: NFSv3 over TCP only, no NLM, RQUOTA, UDP or
    /// Kerberos, root not squashed (as ombootd treats a node's root), NFSv4 state (unused) in
    /// `state`.
    pub fn config(&self, export: &GaneshaExport, state: &Path) -> String {
        format!(
            r#"NFS_CORE_PARAM {{
    Protocols = 3;
    Bind_addr = {bind};
    NFS_Port = {nfs};
    MNT_Port = {mnt};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = "{plugins}";
}}
NFS_KRB5 {{
    Active_krb5 = false;
}}
NFSv4 {{
    Graceless = true;
    RecoveryRoot = "{recovery}";
    UseGetpwnam = true;
    Only_Numeric_Owners = true;
}}
EXPORT {{
    Export_Id = 1;
    Path = "{path}";
    Pseudo = "/export";
    Access_Type = RO;
    Squash = No_Root_Squash;
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    FSAL {{
        Name = VFS;
    }}
}}
LOG {{
    Default_Log_Level = EVENT;
}}
"#,
            bind = export.bind,
            nfs = export.nfs_port,
            mnt = export.mount_port,
            plugins = self.plugins.display(),
            recovery = state.join("recovery").display(),
            path = export.path.display(),
        )
    }

    /// The command that serves `export`, for [`crate::Lab::spawn`] in the lab's namespace: rpcbind
    /// and ganesha in the foreground, in a mount namespace of their own (`unshare -m`, private
    /// propagation) where a tmpfs covers /run (rpcbind's socket and lock, ganesha's pid file,
    /// and no way to the host's D-Bus or rpcbind) and copies of /etc/passwd and /etc/group
    /// holding the `_rpc` user rpcbind switches to are bound over the real ones. The host's
    /// files stay as they are; the namespace and its mounts end with the two processes, which
    /// share one process group: rpcbind is a child of the shell that then becomes ganesha, so
    /// the PID of the spawned process is ganesha's. Writes its files into `dir`; ganesha logs to
    /// stderr (wait for [`GANESHA_READY`]).
    pub fn command(&self, dir: &Path, export: &GaneshaExport) -> Result<Command> {
        let state = dir.join("ganesha");
        std::fs::create_dir_all(state.join("recovery"))
            .map_err(io(format!("create {}", state.display())))?;
        let write = |name: &str, text: String| -> Result<PathBuf> {
            let path = state.join(name);
            std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
            Ok(path)
        };
        let read = |path: &str| std::fs::read_to_string(path).map_err(io(format!("read {path}")));
        let (passwd, group) = with_rpc_user(&read("/etc/passwd")?, &read("/etc/group")?);
        let passwd = write("passwd", passwd)?;
        let group = write("group", group)?;
        let config = write("ganesha.conf", self.config(export, &state))?;
        // $1 passwd, $2 group, $3 rpcbind, $4 ganesha.nfsd, $5 its config.
        let script = r#"set -e
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] || { echo "omlab: not in a mount namespace of our own" >&2; exit 1; }
mount -t tmpfs -o mode=0755 omlab-run /run
mount --bind "$1" /etc/passwd
mount --bind "$2" /etc/group
"$3" -f &
i=0
while [ ! -S /run/rpcbind.sock ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || { echo "omlab: rpcbind did not start" >&2; exit 1; }
    sleep 0.1
done
exec "$4" -F -L STDERR -f "$5" -p /run/ganesha.pid
"#;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args([&passwd, &group, &self.rpcbind, &self.bin, &config])
        .env("LD_LIBRARY_PATH", &self.libs);
        Ok(cmd)
    }
}

/// `passwd` and `group` with a `_rpc` user and group added when they have none: rpcbind runs as
/// `_rpc` and exits, saying so only to syslog, when that user does not exist.
fn with_rpc_user(passwd: &str, group: &str) -> (String, String) {
    let ids = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect()
    };
    let has = |text: &str| text.lines().any(|l| l.starts_with("_rpc:"));
    let mut passwd = passwd.to_owned();
    let mut group = group.to_owned();
    for text in [&mut passwd, &mut group] {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let gid = match group.lines().find(|l| l.starts_with("_rpc:")) {
        Some(l) => l
            .split(':')
            .nth(2)
            .and_then(|g| g.parse().ok())
            .unwrap_or(65534),
        None => {
            let used = ids(&group);
            let gid = (100..1000).find(|g| !used.contains(g)).unwrap_or(65533);
            group.push_str(&format!("_rpc:x:{gid}:\n"));
            gid
        }
    };
    if !has(&passwd) {
        let used = ids(&passwd);
        let uid = (100..1000).find(|u| !used.contains(u)).unwrap_or(65533);
        passwd.push_str(&format!(
            "_rpc:x:{uid}:{gid}::/run/rpcbind:/usr/sbin/nologin\n"
        ));
    }
    (passwd, group)
}

/// nfs-ganesha and rpcbind unpacked in `dir` (see [`unpack`]).
pub fn ganesha(dir: &Path) -> Result<Ganesha> {
    let roots = GANESHA_PACKAGES
        .iter()
        .map(|p| unpack(p, dir).map(|r| (*p, r)))
        .collect::<Result<std::collections::BTreeMap<_, _>>>()?;
    let refs: Vec<&Path> = roots.values().map(PathBuf::as_path).collect();
    let mut libs = library_path(&refs);
    // libganesha_nfsd sits in ganesha's private directory (the binary's RUNPATH, /usr/lib/ganesha).
    libs.push_str(&format!(
        ":{}",
        roots["nfs-ganesha"].join("usr/lib/ganesha").display()
    ));
    Ok(Ganesha {
        bin: roots["nfs-ganesha"].join("usr/bin/ganesha.nfsd"),
        plugins: roots["nfs-ganesha-vfs"].join("usr/lib/x86_64-linux-gnu/ganesha"),
        rpcbind: roots["rpcbind"].join("sbin/rpcbind"),
        libs,
    })
}

/// The `LD_LIBRARY_PATH` that lets unpacked binaries find the libraries of unpacked `roots`.
pub fn library_path(roots: &[&Path]) -> String {
    roots
        .iter()
        .flat_map(|r| ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"].map(|p| r.join(p)))
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The downloaded `<package>_<version>_<arch>.deb` in `dir`, if any.
fn deb_of(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    Ok(std::fs::read_dir(dir)
        .map_err(io(format!("list {}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        }))
}

fn run(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_user_is_added_once_with_free_ids() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nsys:x:100:100::/:/bin/false";
        let group = "root:x:0:\nusers:x:100:\n";
        let (p, g) = with_rpc_user(passwd, group);
        assert!(p.starts_with(passwd) && g.starts_with(group));
        assert!(
            p.ends_with("_rpc:x:101:101::/run/rpcbind:/usr/sbin/nologin\n"),
            "{p}"
        );
        assert!(g.ends_with("_rpc:x:101:\n"), "{g}");
        // Already there: nothing changes.
        assert_eq!(with_rpc_user(&p, &g), (p.clone(), g.clone()));
    }

    #[test]
    fn ganesha_config_names_the_export_and_ports() {
        let g = Ganesha {
            bin: "/a/ganesha.nfsd".into(),
            plugins: "/a/fsal".into(),
            rpcbind: "/a/rpcbind".into(),
            libs: String::new(),
        };
        let export = GaneshaExport {
            path: "/img/rootfs".into(),
            bind: Ipv4Addr::new(10, 77, 0, 1),
            nfs_port: 12049,
            mount_port: 12048,
        };
        let c = g.config(&export, Path::new("/s"));
        for want in [
            "Bind_addr = 10.77.0.1;",
            "NFS_Port = 12049;",
            "MNT_Port = 12048;",
            "Path = \"/img/rootfs\";",
            "Plugins_Dir = \"/a/fsal\";",
            "Access_Type = RO;",
        ] {
            assert!(c.contains(want), "{want} in {c}");
        }
    }
}
