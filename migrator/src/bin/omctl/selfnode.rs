//! The name of the node omctl runs on, for ps's and top's NODE column: omd's self row, or the
//! kernel's host name when omd cannot answer (with a note on stderr, so scripts see why).

use crate::client::Omd;

/// This node's name, and whether omd gave it (false: the host name stood in).
pub fn name(omd: &Omd) -> (String, bool) {
    match omd.nodes() {
        Ok(nodes) => {
            if let Some(me) = nodes.into_iter().find(|n| n.is_self) {
                return (me.name, true);
            }
            eprintln!("omctl: note: omd listed no row for this node; NODE shows the host name");
        }
        Err(e) => eprintln!("omctl: note: {e:#}; NODE shows the host name"),
    }
    (hostname(), false)
}

/// The kernel's host name (what omd announces by default), or `localhost` if unreadable.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
