//! Starting the real ombootd inside a lab: `ombootd --config FILE` in the lab namespace, ready
//! once it prints `ombootd ready` (after one `listening for …` line per service).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result, io};
use crate::lab::Lab;
use crate::process::Proc;

/// The line ombootd prints once every listener is bound.
pub const READY_LINE: &str = "ombootd ready";
/// How long ombootd may take to get ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Lab {
    /// Starts `binary --config config` in the lab namespace (log: `<dir>/ombootd.log`) and waits
    /// for its readiness line; fails at once, with its output, if it exits first.
    pub fn start_ombootd(&self, binary: &Path, config: &Path) -> Result<Proc> {
        if !binary.is_file() {
            return Err(Error::Missing {
                what: "the ombootd binary",
                path: binary.to_owned(),
            });
        }
        let binary = std::path::absolute(binary)
            .map_err(io(format!("make {} absolute", binary.display())))?;
        let config = std::path::absolute(config)
            .map_err(io(format!("make {} absolute", config.display())))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(config);
        let proc = self.spawn("ombootd", cmd, self.netns())?;
        self.wait_for_output(&proc, READY_LINE, START_TIMEOUT)?;
        Ok(proc)
    }
}
