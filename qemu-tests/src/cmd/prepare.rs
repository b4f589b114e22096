//! What `omlab demo` and `omlab test` need before they run: the Debian packages (installed when
//! missing), the workspace binaries, and the node image (`omimage build`, cached).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// Debian packages the lab, the tests and `omimage` use.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "qemu-system-x86", // the nodes
    "ipxe-qemu",       // the NICs' iPXE ROMs
    "ovmf",            // UEFI firmware
    "ipxe",            // ipxe.efi and undionly.kpxe, served over TFTP
    "mmdebstrap",      // the node root
    "kmod",            // modprobe/depmod for the initramfs
    "busybox",         // udhcpc in the DHCP tests
    "atftp",           // TFTP client in the tests
    "curl",            // HTTP client in the tests
    "libnfs-utils",    // NFS client in the tests
    "iproute2",        // namespaces, bridges, taps
    "tmux",            // drives `omctl mon` in a real terminal in its test
    "chromium",        // the dashboard's browser tests (headless)
    "chromium-driver", // chromedriver: WebDriver for those tests
];

pub use omlab::cluster::workspace_root;

/// Prints a step header and runs it, then its duration.
pub fn step<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    println!("==> {name}");
    let t = Instant::now();
    let r = f().with_context(|| format!("step failed: {name}"));
    println!("<== {name} ({:.1} s)", t.elapsed().as_secs_f64());
    r
}

/// Installs the missing packages of [`DEBIAN_PACKAGES`] with apt-get.
pub fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        println!("all {} Debian packages present", DEBIAN_PACKAGES.len());
        return Ok(());
    }
    println!("installing: {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

/// Runs `cargo ARGS` in the workspace root.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args).current_dir(workspace_root()))
}

/// Builds the node programs (release: they are copied into every node) and the node image into
/// `<root>/build/image` (reusing the cached root when unchanged).
pub fn node_image() -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "migrator", "--bins"])?;
    let root = workspace_root();
    // The lab's consoles log root in: the tests drive the nodes through them.
    run(Command::new(root.join("target/debug/omimage"))
        .args(["build", "--console-autologin"])
        .current_dir(&root))
}

/// Runs a command with inherited output; an unsuccessful exit is an error naming it.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// What a benchmark that boots nodes needs first: the Debian packages, the workspace (debug,
/// for omlab's helpers), ombootd in release (what is measured), and the node image.
pub fn node_bench() -> anyhow::Result<()> {
    step("Debian packages", debian_packages)?;
    step("build", || cargo(&["build", "--workspace"]))?;
    step("build (release)", || {
        cargo(&["build", "--release", "-p", "bootserver"])
    })?;
    step("node image", node_image)
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}
