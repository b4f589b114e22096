//! Kernel module resolution from `modules.dep` and `modules.builtin`: which files to put in the
//! initramfs and the order `/init` must insmod them in (dependencies first).
//!
//! Pure text processing, so the same answer as `modprobe --show-depends` is testable without a kernel tree.

use std::collections::{BTreeMap, BTreeSet};

/// The module list cannot be satisfied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModulesError {
    /// A `modules.dep` line lacks the `path:` separator.
    #[error("modules.dep line {line}: expected \"path: deps\", got {text:?}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// Neither a loadable nor a built-in module of this kernel.
    #[error("kernel module {0:?} is neither in modules.dep nor in modules.builtin of this kernel")]
    Unknown(String),
    /// modules.dep names a dependency that has no line of its own.
    #[error("module {module:?} depends on {dependency}, which modules.dep does not list")]
    MissingDependency {
        /// The dependent module.
        module: String,
        /// The dependency's path.
        dependency: String,
    },
    /// A `nic_drivers` tree holds no loadable module of this kernel (a typo would otherwise leave
    /// every NIC without a driver, found only at boot).
    #[error("no module of this kernel is under {0:?} (initramfs.nic_drivers)")]
    EmptyTree(String),
    /// modules.dep is cyclic (depmod refuses to write that, so the file is damaged).
    #[error("dependency cycle through module {0:?}")]
    Cycle(String),
}

/// The canonical module name of a path or name: file name without `.ko` and compression suffix,
/// `-` folded to `_` (the kernel treats them as the same).
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let base = [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(base);
    let base = base.strip_suffix(".ko").unwrap_or(base);
    base.replace('-', "_")
}

/// A parsed `modules.dep` + `modules.builtin`.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// Module name → (relative path, paths of all its dependencies).
    loadable: BTreeMap<String, (String, Vec<String>)>,
    /// Names of modules compiled into the kernel.
    builtin: BTreeSet<String>,
}

/// What the initramfs needs for a module list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Paths relative to `/lib/modules/<version>`, each after all its dependencies.
    pub load_order: Vec<String>,
    /// Requested modules the kernel already contains (nothing to load).
    pub builtin: Vec<String>,
    /// Further files, each after its dependencies, that `/init` loads only when a device's
    /// modalias asks for them (the NIC drivers).
    pub by_modalias: Vec<String>,
}

impl ModuleIndex {
    /// Parse the two files of `/lib/modules/<version>`.
    pub fn parse(modules_dep: &str, modules_builtin: &str) -> Result<Self, ModulesError> {
        let mut loadable = BTreeMap::new();
        for (i, line) in modules_dep.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (path, deps) = line
                .split_once(':')
                .ok_or_else(|| ModulesError::Malformed {
                    line: i + 1,
                    text: line.to_owned(),
                })?;
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            loadable.insert(module_name(path), (path.trim().to_owned(), deps));
        }
        let builtin = modules_builtin
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(module_name)
            .collect();
        Ok(Self { loadable, builtin })
    }

    /// Files to load for `wanted`, dependencies first, each once.
    pub fn resolve(&self, wanted: &[String]) -> Result<Resolution, ModulesError> {
        let mut res = Resolution::default();
        let mut done = BTreeSet::new();
        for want in wanted {
            let name = module_name(want);
            if self.loadable.contains_key(&name) {
                self.visit(&name, &mut done, &mut BTreeSet::new(), &mut res.load_order)?;
            } else if self.builtin.contains(&name) {
                if !res.builtin.contains(&name) {
                    res.builtin.push(name);
                }
            } else {
                return Err(ModulesError::Unknown(want.clone()));
            }
        }
        Ok(res)
    }

    /// Names of the loadable modules under each tree of `trees`: a directory, or a module path
    /// without its `.ko` suffix. Every tree must hold at least one.
    pub fn under(&self, trees: &[String]) -> Result<Vec<String>, ModulesError> {
        let mut names = Vec::new();
        for tree in trees {
            let tree = tree.trim_end_matches('/');
            let mut found = false;
            for (name, (path, _)) in &self.loadable {
                let inside = path
                    .strip_prefix(tree)
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(".ko"));
                if inside {
                    found = true;
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
            if !found {
                return Err(ModulesError::EmptyTree(tree.to_owned()));
            }
        }
        Ok(names)
    }

    /// [`resolve`](Self::resolve) `wanted`, plus every module of `trees` (and its dependencies)
    /// as files loaded by modalias, each file listed once.
    pub fn resolve_with_trees(
        &self,
        wanted: &[String],
        trees: &[String],
    ) -> Result<Resolution, ModulesError> {
        let mut res = self.resolve(wanted)?;
        let mut done: BTreeSet<String> = res.load_order.iter().map(|p| module_name(p)).collect();
        for name in self.under(trees)? {
            self.visit(&name, &mut done, &mut BTreeSet::new(), &mut res.by_modalias)?;
        }
        Ok(res)
    }

    /// Depth-first: a module is emitted after everything it depends on.
    fn visit(
        &self,
        name: &str,
        done: &mut BTreeSet<String>,
        in_progress: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ModulesError> {
        if done.contains(name) {
            return Ok(());
        }
        if !in_progress.insert(name.to_owned()) {
            return Err(ModulesError::Cycle(name.to_owned()));
        }
        let (path, deps) = self
            .loadable
            .get(name)
            .ok_or_else(|| ModulesError::Unknown(name.to_owned()))?;
        for dep in deps {
            let dep_name = module_name(dep);
            if !self.loadable.contains_key(&dep_name) {
                return Err(ModulesError::MissingDependency {
                    module: name.to_owned(),
                    dependency: dep.clone(),
                });
            }
            self.visit(&dep_name, done, in_progress, order)?;
        }
        in_progress.remove(name);
        done.insert(name.to_owned());
        order.push(path.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like trixie's 6.12 tree (transitive dependency lists, compressed files).
    const DEP: &str = "\
kernel/net/core/failover.ko.xz:
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/net/sunrpc/sunrpc.ko.xz:
kernel/fs/nfs_common/grace.ko.xz:
kernel/fs/lockd/lockd.ko.xz: kernel/fs/nfs_common/grace.ko.xz kernel/net/sunrpc/sunrpc.ko.xz
kernel/fs/nfs/nfs.ko.xz: kernel/fs/lockd/lockd.ko.xz kernel/fs/nfs_common/grace.ko.xz kernel/fs/netfs/netfs.ko.xz kernel/net/sunrpc/sunrpc.ko.xz
kernel/fs/nfs_common/nfs_acl.ko.xz: kernel/net/sunrpc/sunrpc.ko.xz
kernel/fs/nfs/nfsv3.ko.xz: kernel/fs/nfs_common/nfs_acl.ko.xz kernel/fs/nfs/nfs.ko.xz kernel/fs/lockd/lockd.ko.xz kernel/fs/nfs_common/grace.ko.xz kernel/fs/netfs/netfs.ko.xz kernel/net/sunrpc/sunrpc.ko.xz
kernel/fs/overlayfs/overlay.ko.xz:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko.xz:
";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n";

    fn names(order: &[String]) -> Vec<String> {
        order.iter().map(|p| module_name(p)).collect()
    }

    fn wanted(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn module_names_drop_directories_suffixes_and_dashes() {
        assert_eq!(module_name("kernel/fs/nfs/nfsv3.ko.xz"), "nfsv3");
        assert_eq!(module_name("kernel/x/foo-bar.ko.zst"), "foo_bar");
        assert_eq!(module_name("kernel/x/plain.ko"), "plain");
        assert_eq!(module_name("virtio-net"), "virtio_net");
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let idx = ModuleIndex::parse(DEP, BUILTIN).expect("parse");
        let res = idx
            .resolve(&wanted(&[
                "virtio_net",
                "virtio_pci",
                "e1000",
                "nfs",
                "nfsv3",
                "overlay",
            ]))
            .expect("resolve");
        let order = names(&res.load_order);
        assert_eq!(res.builtin, ["virtio_pci"]);
        let pos = |m: &str| {
            order
                .iter()
                .position(|n| n == m)
                .unwrap_or_else(|| panic!("{m} missing from {order:?}"))
        };
        assert!(pos("failover") < pos("net_failover") && pos("net_failover") < pos("virtio_net"));
        assert!(
            pos("sunrpc") < pos("lockd")
                && pos("grace") < pos("lockd")
                && pos("lockd") < pos("nfs")
        );
        assert!(pos("nfs") < pos("nfsv3") && pos("nfs_acl") < pos("nfsv3"));
        let unique: BTreeSet<_> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "no module twice: {order:?}");
        assert_eq!(order.len(), 12);
    }

    #[test]
    fn a_tree_brings_every_module_under_it_with_its_dependencies() {
        let idx = ModuleIndex::parse(DEP, BUILTIN).expect("parse");
        let trees = wanted(&[
            "kernel/drivers/net/ethernet",
            "kernel/drivers/net/virtio_net",
        ]);
        assert_eq!(idx.under(&trees).expect("under"), ["e1000", "virtio_net"]);
        let res = idx
            .resolve_with_trees(&wanted(&["overlay"]), &trees)
            .expect("resolve");
        assert_eq!(names(&res.load_order), ["overlay"]);
        assert_eq!(
            names(&res.by_modalias),
            ["e1000", "failover", "net_failover", "virtio_net"]
        );
        // A module both requested and in a tree is loaded at boot and listed once.
        let res = idx
            .resolve_with_trees(&wanted(&["virtio_net"]), &trees)
            .expect("resolve");
        assert_eq!(names(&res.by_modalias), ["e1000"]);
        // `virtio` is no tree boundary of `virtio_net`; a prefix of a file name is no match.
        for bad in ["kernel/drivers/net/virtio", "kernel/drivers/net/ether"] {
            assert_eq!(
                idx.under(&wanted(&[bad])),
                Err(ModulesError::EmptyTree(bad.to_owned()))
            );
        }
    }

    #[test]
    fn an_unknown_module_is_an_error() {
        let idx = ModuleIndex::parse(DEP, BUILTIN).expect("parse");
        assert_eq!(
            idx.resolve(&wanted(&["nosuch"])),
            Err(ModulesError::Unknown("nosuch".into()))
        );
    }

    #[test]
    fn damaged_files_are_reported() {
        assert!(matches!(
            ModuleIndex::parse("no separator here\n", ""),
            Err(ModulesError::Malformed { line: 1, .. })
        ));
        let idx = ModuleIndex::parse("a.ko: b.ko\n", "").expect("parse");
        assert!(matches!(
            idx.resolve(&wanted(&["a"])),
            Err(ModulesError::MissingDependency { .. })
        ));
        let idx = ModuleIndex::parse("a.ko: b.ko\nb.ko: a.ko\n", "").expect("parse");
        assert!(matches!(
            idx.resolve(&wanted(&["a"])),
            Err(ModulesError::Cycle(_))
        ));
    }
}
