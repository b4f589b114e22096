//! SIGINT and SIGTERM handling: the first one sets the library's abort flag so every lab wait
//! returns and `Drop` tears the lab down; a second one exits at once (`omlab clean` then helps).

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Installs the handlers.
pub fn install() -> anyhow::Result<()> {
    let aborted = omlab::cancel::flag();
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit fires only when the flag is already set, i.e. on
        // the second signal; the plain register then sets it on the first.
        flag::register_conditional_shutdown(sig, 130, aborted.clone())
            .with_context(|| format!("cannot install the handler for signal {sig}"))?;
        flag::register(sig, aborted.clone())
            .with_context(|| format!("cannot install the handler for signal {sig}"))?;
    }
    Ok(())
}
