//! Anchor servers for benchmarks (tftpd-hpa, atftpd, …), unpacked from Debian packages into a
//! private directory instead of installed: installing them would start services on the host's
//! own interfaces. The lab runs the unpacked binaries inside its namespace only.

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
