//! `omimage build`: root tarball (cached) → unpacked and customised root → initramfs → tftp/ →
//! manifest. Everything is written beside its final name and renamed into place at the end, so
//! ombootd serving `<out>` never sees a half-built image.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use node_image::cache::{self, Lookup};
use node_image::cluster;
use node_image::config::ImageConfig;
use node_image::customize::{self, Action, RootFacts};
use node_image::manifest::{InitramfsInfo, Manifest, ManifestInputs};
use node_image::progress::{Progress, Step};
use node_image::recipe::RecipeHash;
use node_image::{
    fsinfo, image_dir, initramfs, kernel, mmdebstrap, rootfs_edit, tarball, tftp, timestamp,
};

/// Run the whole build.
pub fn run(
    config_path: &Path,
    out: &Path,
    cache_dir: &Path,
    console_autologin: bool,
) -> anyhow::Result<()> {
    let progress = Progress::new();
    let config = ImageConfig::load(config_path)?;
    let hash = config.recipe.hash();
    progress.say(&format!(
        "omimage build: {} ({} packages), recipe {hash}, out {}, cache {}",
        config.recipe.suite,
        config.recipe.packages.len(),
        out.display(),
        cache_dir.display()
    ));

    let (tarball, cache_hit) = root_tarball(&progress, &config, &hash, cache_dir)?;

    fs::create_dir_all(out.join(image_dir::VERSIONS))
        .with_context(|| format!("cannot create the output directory {}", out.display()))?;
    // A version of its own: nodes booted from the current one keep it while this is built and
    // after; `current` switches to this one only once it is whole.
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = image_dir::new_version_name(out, unix_secs);
    let building = out.join(image_dir::VERSIONS).join(format!("{name}.new"));
    remove_tree(&building)?;
    fs::create_dir(&building).with_context(|| format!("cannot create {}", building.display()))?;
    let new_root = building.join(image_dir::ROOTFS);
    let step = progress.step("unpacking the root");
    fs::create_dir(&new_root).with_context(|| format!("cannot create {}", new_root.display()))?;
    tarball::extract(&tarball, &new_root).context("cannot unpack the cached root")?;
    step.done(&new_root.display().to_string());

    let step = progress.step("customising the root for diskless boot");
    let facts = read_facts(&new_root)?;
    let version = kernel::version_from_boot(&facts.boot_files)?;
    let mut actions =
        customize::plan(&facts, console_autologin).context("cannot plan the customisation")?;
    // The key stays beside the root, for ombootd to hand to booting nodes: never inside it.
    cluster::key(out).context("cannot get the cluster key")?;
    actions
        .extend(cluster::actions(&config.cluster).context("cannot install the cluster software")?);
    // Which image a node runs: `cat /etc/omboot-image` (the lab tells versions apart by it).
    actions.push(Action::Write {
        path: "etc/omboot-image".into(),
        mode: 0o644,
        contents: format!("{name}\n").into_bytes(),
    });
    rootfs_edit::apply(&new_root, &actions).context("cannot customise the root")?;
    step.done(&format!(
        "{} changes, kernel {version}, {} units masked",
        actions.len(),
        customize::MASKED_UNITS.len()
    ));

    let step = progress.step("building the initramfs");
    let staging = tempfile::Builder::new()
        .prefix(".initramfs-staging")
        .tempdir_in(out)
        .with_context(|| format!("cannot create a staging directory in {}", out.display()))?;
    let built = initramfs::assemble(&new_root, &version, &config.initramfs, staging.path())
        .context("cannot assemble the initramfs")?;
    let initrd_tmp = building.join(image_dir::INITRD);
    let file = fs::File::create(&initrd_tmp)
        .with_context(|| format!("cannot create {}", initrd_tmp.display()))?;
    let mut file = built
        .layout
        .write(std::io::BufWriter::new(file), config.initramfs.compression)
        .with_context(|| format!("cannot write {}", initrd_tmp.display()))?;
    file.flush()
        .with_context(|| format!("cannot write {}", initrd_tmp.display()))?;
    drop(staging);
    step.done(&format!(
        "{} entries, {} modules ({} built in), {} NIC driver files loaded by modalias, {}",
        built.layout.len(),
        built.resolution.load_order.len(),
        built.resolution.builtin.join(" "),
        built.resolution.by_modalias.len(),
        human(fs::metadata(&initrd_tmp).map(|m| m.len()).unwrap_or(0))
    ));

    let step = progress.step("copying boot loaders to tftp/");
    let copies =
        tftp::install(&config.tftp_files, &out.join("tftp")).context("cannot fill tftp/")?;
    step.done(
        &copies
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
    );

    let kernel_src = new_root.join("boot").join(format!("vmlinuz-{version}"));
    fs::copy(&kernel_src, building.join(image_dir::KERNEL))
        .with_context(|| format!("cannot copy the kernel {}", kernel_src.display()))?;

    let step = progress.step("writing manifest.json");
    let initramfs_info = InitramfsInfo {
        compression: config.initramfs.compression,
        modules: built.resolution.load_order.clone(),
        builtin_modules: built.resolution.builtin.clone(),
        modalias_modules: built.resolution.by_modalias.clone(),
    };
    let manifest = write_manifest(
        &building,
        &config,
        &hash,
        cache_hit,
        &version,
        initramfs_info,
        &progress,
    )?;
    step.done(&format!("{} packages", manifest.package_count));

    let step = progress.step("publishing the image");
    rename(&building, &image_dir::version_dir(out, &name))?;
    image_dir::switch_current(out, &name)
        .with_context(|| format!("cannot switch {} to {name}", out.join("current").display()))?;
    link_to_current(out)?;
    // Versions older than this one that no booted node uses (as ombootd last recorded) go.
    let pruned = image_dir::prune(out, &image_dir::read_in_use(out))
        .with_context(|| format!("cannot prune old versions in {}", out.display()))?;
    step.done(&format!(
        "version {name} is current; removed {}",
        if pruned.is_empty() {
            "none".to_owned()
        } else {
            pruned.join(" ")
        }
    ));

    progress.say(&format!(
        "image ready in {}: kernel {version} vmlinuz {}, initrd.img {}, rootfs {} in {} files{}",
        out.display(),
        human(manifest.vmlinuz.size),
        human(manifest.initrd.size),
        human(manifest.rootfs.bytes),
        manifest.rootfs.files,
        if cache_hit { " (root from cache)" } else { "" }
    ));
    Ok(())
}

/// Gather sizes, digests and the package list of the published image into `manifest.json`.
fn write_manifest(
    out: &Path,
    config: &ImageConfig,
    hash: &RecipeHash,
    cache_hit: bool,
    version: &str,
    initramfs: InitramfsInfo,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    let rootfs = out.join("rootfs");
    let status_path = rootfs.join("var/lib/dpkg/status");
    let status = fs::read_to_string(&status_path)
        .with_context(|| format!("cannot read {}", status_path.display()))?;
    let inputs = ManifestInputs {
        built_at: timestamp::now_rfc3339(),
        build_seconds: progress.elapsed().as_secs_f64(),
        recipe_hash: hash.to_string(),
        cache_hit,
        suite: config.recipe.suite.clone(),
        mirror: config.recipe.mirror.clone(),
        kernel_version: version.to_owned(),
        vmlinuz: fsinfo::file_info(&out.join("vmlinuz"))?,
        initrd: fsinfo::file_info(&out.join("initrd.img"))?,
        rootfs: fsinfo::tree_info(&rootfs)?,
        initramfs,
    };
    let manifest = Manifest::build(inputs, &status)
        .with_context(|| format!("cannot read the package list {}", status_path.display()))?;
    let manifest_tmp = out.join("manifest.json.tmp");
    fs::write(&manifest_tmp, manifest.to_json())
        .with_context(|| format!("cannot write {}", manifest_tmp.display()))?;
    rename(&manifest_tmp, &out.join("manifest.json"))?;
    Ok(manifest)
}

/// The root tarball for the recipe: from the cache, or made by mmdebstrap and cached.
fn root_tarball(
    progress: &Progress,
    config: &ImageConfig,
    hash: &RecipeHash,
    cache_dir: &Path,
) -> anyhow::Result<(PathBuf, bool)> {
    match cache::lookup(cache_dir, hash)? {
        Lookup::Hit(path) => {
            progress.say(&format!("reusing cached root {hash} ({})", path.display()));
            Ok((path, true))
        }
        Lookup::Miss {
            partial,
            final_path,
        } => {
            let step = progress.step(format!(
                "mmdebstrap {} (no cached root {hash})",
                config.recipe.suite
            ));
            let log_path = final_path.with_extension("log");
            let log = fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            step.detail(&format!("full output in {}", log_path.display()));
            let filter = Mutex::new(OutputFilter {
                log,
                last_shown: None,
                hidden: 0,
            });
            let on_line = |line: &str| {
                if let Ok(mut f) = filter.lock() {
                    f.line(&step, line);
                }
            };
            mmdebstrap::run(&config.recipe, &partial, &on_line)
                .context("cannot build the Debian root")?;
            cache::commit(&partial, &final_path, &config.recipe)?;
            let size = fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0);
            step.done(&format!(
                "cached as {} ({})",
                final_path.display(),
                human(size)
            ));
            Ok((final_path, false))
        }
    }
}

/// Summarises mmdebstrap's output: its own `I:`/`W:`/`E:` lines are shown, apt and dpkg chatter
/// at most every few seconds (to show progress), and everything goes to the log file.
struct OutputFilter {
    log: fs::File,
    last_shown: Option<Instant>,
    hidden: u64,
}

impl OutputFilter {
    const CHATTER_EVERY: Duration = Duration::from_secs(5);

    fn line(&mut self, step: &Step<'_>, line: &str) {
        // The log is best effort: a full disk shows up as the build failing elsewhere.
        let _ = writeln!(self.log, "{line}");
        let own = ["I: ", "W: ", "E: "].iter().any(|p| line.starts_with(p));
        let due = self
            .last_shown
            .is_none_or(|t| t.elapsed() >= Self::CHATTER_EVERY);
        if own || due {
            if !own && self.hidden > 0 {
                step.detail(&format!("... ({} more lines) {line}", self.hidden));
            } else {
                step.detail(line);
            }
            self.hidden = 0;
            self.last_shown = Some(Instant::now());
        } else {
            self.hidden += 1;
        }
    }
}

/// Facts the customisation plan needs, read from the unpacked root.
fn read_facts(root: &Path) -> anyhow::Result<RootFacts> {
    let read = |rel: &str| {
        let p = root.join(rel);
        fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let shadow = if root.join("etc/shadow").exists() {
        read("etc/shadow")?
    } else {
        String::new()
    };
    let usr = root.join("usr");
    let meta =
        fs::symlink_metadata(&usr).with_context(|| format!("cannot stat {}", usr.display()))?;
    let usr_mtime_nsec = u128::try_from(meta.mtime()).unwrap_or(0) * 1_000_000_000
        + u128::try_from(meta.mtime_nsec()).unwrap_or(0);
    let names = |dir: &Path, symlinks_only: bool| -> anyhow::Result<Vec<String>> {
        let mut v = Vec::new();
        for e in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let is_link = e.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            if !symlinks_only || is_link {
                v.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        v.sort();
        Ok(v)
    };
    Ok(RootFacts {
        passwd: read("etc/passwd")?,
        shadow,
        usr_mtime_nsec,
        boot_files: names(&root.join("boot"), false)?,
        top_level_symlinks: names(root, true)?,
    })
}

/// `<out>/{vmlinuz, initrd.img, rootfs, manifest.json}` as links into `current`, replacing the
/// files and root of the layout before versions.
fn link_to_current(out: &Path) -> anyhow::Result<()> {
    for name in [
        image_dir::KERNEL,
        image_dir::INITRD,
        image_dir::ROOTFS,
        image_dir::MANIFEST,
    ] {
        let at = out.join(name);
        let want = Path::new(image_dir::CURRENT).join(name);
        if fs::read_link(&at).is_ok_and(|t| t == want) {
            continue;
        }
        remove_tree(&at)?;
        std::os::unix::fs::symlink(&want, &at)
            .with_context(|| format!("cannot link {}", at.display()))?;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to)
        .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

/// Remove a directory tree left by an earlier run; missing is fine. Never follows symlinks.
fn remove_tree(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// Bytes as MiB with one decimal.
fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
