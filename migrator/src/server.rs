//! The control socket: one JSON request per line in, one JSON reply per line out.
//! Callers are identified by SO_PEERCRED; only uid 0 may change the node.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::api::{Reply, Request};
use crate::control;
use crate::node::NodeHandle;

/// Longest request line accepted; longer ones get an error and the connection closes.
pub const MAX_LINE: usize = 64 * 1024;

/// Bind the socket (replacing a stale one) world-connectable: reads are for everyone,
/// controls are checked per request.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

/// Serve forever.
pub async fn serve(listener: UnixListener, node: NodeHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, node.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answer one request line.
pub fn answer(line: &str, is_root: bool, node: &NodeHandle) -> Reply {
    match serde_json::from_str::<Request>(line) {
        Ok(req) => node.with_agent(|a, now| {
            let rows = a.nodes(now);
            let mut flags = a.flags();
            let reply = control::handle(&req, is_root, &rows, &mut flags);
            a.set_flags(flags);
            reply
        }),
        Err(e) => Reply::Error {
            error: format!("bad request: {e}"),
        },
    }
}

async fn client(stream: UnixStream, node: NodeHandle) {
    let is_root = stream.peer_cred().map(|c| c.uid() == 0).unwrap_or(false);
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = if line.len() > MAX_LINE {
            Reply::Error {
                error: "request line too long".into(),
            }
        } else {
            answer(line.trim(), is_root, &node)
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| {
            r#"{"result":"error","error":"internal: cannot encode reply"}"#.into()
        });
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() || line.len() > MAX_LINE {
            return;
        }
    }
}
