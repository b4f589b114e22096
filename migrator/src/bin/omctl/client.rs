//! The client side of omd's control API: one JSON request line out, one JSON reply line back,
//! over a fresh unix-socket connection per request (omd's contract in [`migrator::api`]).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use migrator::api::{Control, Flags, NodeInfo, Reply, Request};

/// How long we wait on omd: it answers from memory, so a slow reply means it is stuck.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on omd's control socket.
#[derive(Debug, Clone)]
pub struct Omd {
    socket: PathBuf,
}

impl Omd {
    /// A client for the socket at `socket` (nothing is opened yet).
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
    }

    /// Sends one request and returns omd's reply, whatever it is.
    pub fn call(&self, request: &Request) -> Result<Reply> {
        self.call_within(request, TIMEOUT)
    }

    /// [`Self::call`] with its own reply timeout (a migration takes longer than a query).
    pub fn call_within(&self, request: &Request, timeout: std::time::Duration) -> Result<Reply> {
        let path = self.socket.display();
        let stream = UnixStream::connect(&self.socket).map_err(|e| {
            let hint = match e.kind() {
                ErrorKind::PermissionDenied => "check the socket's permissions, or run as root",
                _ => "is omd running? (systemctl status omd)",
            };
            anyhow!(e).context(format!("cannot reach omd at {path}: {hint}"))
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .context("setting socket timeouts")?;

        let mut line = serde_json::to_string(request).context("encoding the request")?;
        line.push('\n');
        (&stream)
            .write_all(line.as_bytes())
            .with_context(|| format!("sending a request to omd at {path}"))?;

        let mut answer = String::new();
        BufReader::new(&stream)
            .read_line(&mut answer)
            .with_context(|| format!("waiting for omd's reply at {path}"))?;
        if answer.is_empty() {
            bail!("omd at {path} closed the connection without replying (see journalctl -u omd)");
        }
        serde_json::from_str(&answer).with_context(|| {
            format!("omd at {path} sent a reply omctl does not understand (omd and omctl versions differ?)")
        })
    }

    /// The whole node table, as omd orders it.
    pub fn nodes(&self) -> Result<Vec<NodeInfo>> {
        match self.call(&Request::Nodes)? {
            Reply::Nodes { nodes } => Ok(nodes),
            other => Err(unexpected(other)),
        }
    }

    /// One node by id, name or address; omd does the matching.
    pub fn whois(&self, who: &str) -> Result<NodeInfo> {
        let request = Request::Whois {
            who: who.to_owned(),
        };
        match self.call(&request)? {
            Reply::Node { node } => Ok(node),
            other => Err(unexpected(other)),
        }
    }

    /// Applies a node control and returns the flags as they now are.
    pub fn control(&self, action: Control) -> Result<Flags> {
        match self.call(&Request::Control { action })? {
            Reply::Done { flags } => Ok(flags),
            other => Err(unexpected(other)),
        }
    }
}

impl Omd {
    /// Every job of the cluster.
    pub fn jobs(&self) -> Result<Vec<migrator::job::record::JobView>> {
        match self.call_within(&Request::Jobs, std::time::Duration::from_secs(30))? {
            Reply::Jobs { jobs } => Ok(jobs),
            other => Err(unexpected(other)),
        }
    }

    /// The cluster's kept migrations, oldest first (omd asks every live node).
    pub fn moves(&self) -> Result<Vec<migrator::migration::history::MoveEvent>> {
        match self.call_within(&Request::Moves, std::time::Duration::from_secs(30))? {
            Reply::Moves { moves } => Ok(moves),
            other => Err(unexpected(other)),
        }
    }

    /// A job request that answers with sentences (migrate, expel, bring).
    pub fn message(&self, request: &Request) -> Result<String> {
        match self.call_within(request, std::time::Duration::from_secs(900))? {
            Reply::Message { text } => Ok(text),
            other => Err(unexpected(other)),
        }
    }
}

/// omd answered, and refused: its `error` sentence, for callers that add their own hint.
#[derive(Debug, thiserror::Error)]
#[error("omd: {0}")]
pub struct Refused(pub String);

/// An error reply carries omd's own sentence for the user; anything else is a protocol mismatch.
fn unexpected(reply: Reply) -> anyhow::Error {
    match reply {
        Reply::Error { error } => Refused(error).into(),
        other => {
            anyhow!("omd sent an unexpected reply ({other:?}): omd and omctl versions differ?")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_keep_omds_sentence() {
        let e = unexpected(Reply::Error {
            error: "not yet: expel needs process migration".into(),
        });
        assert_eq!(e.to_string(), "omd: not yet: expel needs process migration");
    }

    #[test]
    fn missing_socket_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("omctl-test-{}", std::process::id()));
        let e = Omd::new(&dir.join("nope.sock")).nodes().unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("cannot reach omd at "), "{text}");
        assert!(text.contains("systemctl status omd"), "{text}");
    }
}
