//! The mosctl node controls (`stay`, `block`, `quiet`, … `expel`, `bring`): one request to omd,
//! then the node's flags as omd now has them; `expel`/`bring` print what moved.

use anyhow::{Result, bail};
use migrator::api::{Control, Flags};

use crate::client::Omd;

/// Runs one control. Root is checked here first for a clear message; omd checks again
/// (SO_PEERCRED), which is the check that counts.
pub fn run(omd: &Omd, action: Control) -> Result<()> {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "`omctl {}` needs root: it changes this node's behaviour (try sudo omctl {})",
            name(action),
            name(action)
        );
    }
    if matches!(action, Control::Expel | Control::Bring) {
        let text = omd.message(&migrator::api::Request::Control { action })?;
        println!("{text}");
        return Ok(());
    }
    let flags = omd.control(action)?;
    println!("{}", flags_line(&flags));
    Ok(())
}

/// The subcommand word for a control.
pub fn name(action: Control) -> &'static str {
    match action {
        Control::Stay => "stay",
        Control::Nostay => "nostay",
        Control::Lstay => "lstay",
        Control::Block => "block",
        Control::Noblock => "noblock",
        Control::Quiet => "quiet",
        Control::Noquiet => "noquiet",
        Control::Expel => "expel",
        Control::Bring => "bring",
    }
}

/// Every flag with its value, so the line reads the same whatever changed.
pub fn flags_line(f: &Flags) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "stay={} lstay={} block={} quiet={}",
        on(f.stay),
        on(f.lstay),
        on(f.block),
        on(f.quiet)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_line() {
        let f = Flags {
            stay: true,
            quiet: true,
            ..Flags::default()
        };
        assert_eq!(flags_line(&f), "stay=on lstay=off block=off quiet=on");
    }

    #[test]
    fn names_match_the_wire_format() {
        for c in [
            Control::Stay,
            Control::Lstay,
            Control::Noquiet,
            Control::Expel,
        ] {
            let wire = serde_json::to_string(&c).unwrap();
            assert_eq!(wire, format!("\"{}\"", name(c)));
        }
    }
}
