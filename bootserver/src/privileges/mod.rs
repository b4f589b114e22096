//! What ombootd keeps of root once its sockets are bound: the capabilities its services use
//! while running, nothing else, and never more (no_new_privs, a trimmed bounding set).
//! Privileged acts only; the list is one constant a test compares with the systemd unit. Every
//! thread drops them, not only the caller ([`all_threads`]).

pub mod all_threads;

use caps::{CapSet, Capability, CapsHashSet};

/// Needed only to start: bind DHCP/TFTP/NFS below 1024, bind the DHCP socket to the interface.
pub const AT_START: &[Capability] = &[Capability::CAP_NET_BIND_SERVICE, Capability::CAP_NET_RAW];

/// Kept while serving, and why:
/// - NET_ADMIN: the ARP entry a DHCP reply to an unconfigured client needs (SIOCSARP);
/// - DAC_READ_SEARCH: read every file of the image, whoever owns it;
/// - DAC_OVERRIDE, FOWNER, CHOWN, FSETID: act on the cluster directory for its callers (files
///   made for them, the modes, set-group-id bits and times they may set).
pub const KEPT: &[Capability] = &[
    Capability::CAP_NET_ADMIN,
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_CHOWN,
    Capability::CAP_FSETID,
];

/// Capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
#[error("cannot drop capabilities ({what}): {source}")]
pub struct DropError {
    what: &'static str,
    source: caps::errors::CapsError,
}

/// Drop every capability but [`KEPT`] from the bounding, inheritable, permitted and effective
/// sets, and set no_new_privs, so neither this process nor anything it runs gets them back.
/// Returns what is kept (those of [`KEPT`] the process had).
pub fn drop_to_kept() -> Result<CapsHashSet, DropError> {
    let err = |what| move |source| DropError { what, source };
    let keep: CapsHashSet = KEPT.iter().copied().collect();
    let had = caps::read(None, CapSet::Permitted).map_err(err("read the permitted set"))?;
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(err("trim the bounding set"))?;
        }
    }
    let kept: CapsHashSet = had.intersection(&keep).copied().collect();
    caps::clear(None, CapSet::Inheritable).map_err(err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(err("set the permitted set"))?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes plain integers and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r != 0 {
        return Err(DropError {
            what: "set no_new_privs",
            source: caps::errors::CapsError::from(std::io::Error::last_os_error().to_string()),
        });
    }
    // The other threads (the runtime's, started before) drop the same themselves.
    let mask = |set: &CapsHashSet| set.iter().fold(0u64, |m, c| m | (1u64 << c.index()));
    let bounding = caps::all()
        .iter()
        .filter(|c| !keep.contains(c))
        .fold(0u64, |m, c| m | (1u64 << c.index()));
    all_threads::drop_everywhere(mask(&kept), bounding).map_err(|e| DropError {
        what: "drop them in every thread",
        source: caps::errors::CapsError::from(e),
    })?;
    Ok(kept)
}

/// The systemd unit shipped for ombootd.
pub const UNIT: &str = include_str!("../../systemd/ombootd.service");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_bounds_ombootd_to_exactly_what_it_uses() {
        let line = UNIT
            .lines()
            .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
            .expect("the unit sets CapabilityBoundingSet");
        let mut in_unit: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        in_unit.sort();
        let mut used: Vec<String> = AT_START
            .iter()
            .chain(KEPT)
            .map(ToString::to_string)
            .collect();
        used.sort();
        assert_eq!(in_unit, used);
        assert!(UNIT.contains("\nNoNewPrivileges=yes\n"));
    }
}
