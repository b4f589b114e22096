//! A minimal QMP client over QEMU's unix socket: enough to power a node off (`quit`) or press
//! its power button (`system_powerdown`). Every read has a timeout.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Read and write timeout of one exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A QMP session in command mode.
#[derive(Debug)]
pub(crate) struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capability negotiation.
    pub fn connect(path: &Path) -> Result<Qmp> {
        let err = |reason: String| Error::Qmp {
            path: path.to_owned(),
            reason,
        };
        let stream = UnixStream::connect(path).map_err(|e| err(format!("cannot connect: {e}")))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| err(e.to_string()))?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| err(e.to_string()))?;
        let writer = stream.try_clone().map_err(|e| err(e.to_string()))?;
        let mut qmp = Qmp {
            path: path.to_owned(),
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp
            .read()?
            .ok_or_else(|| err("closed before its greeting".into()))?;
        if greeting.get("QMP").is_none() {
            return Err(err(format!("unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Option<Value>> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| self.err(format!("read failed: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| self.err(format!("bad JSON {line:?}: {e}")))
    }

    fn err(&self, reason: String) -> Error {
        Error::Qmp {
            path: self.path.clone(),
            reason,
        }
    }

    /// Runs a command without arguments. Returns its `return` value, or `None` when QEMU closed
    /// the socket first (as it may after `quit`).
    pub fn execute(&mut self, command: &str) -> Result<Option<Value>> {
        let request = json!({ "execute": command }).to_string() + "\n";
        self.writer
            .write_all(request.as_bytes())
            .map_err(|e| self.err(format!("{command}: write failed: {e}")))?;
        // Asynchronous events (SHUTDOWN, …) may come before the answer; skip them.
        while let Some(msg) = self.read()? {
            if let Some(ret) = msg.get("return") {
                return Ok(Some(ret.clone()));
            }
            if let Some(e) = msg.get("error") {
                return Err(self.err(format!("{command}: {e}")));
            }
        }
        Ok(None)
    }
}
