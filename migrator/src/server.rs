//! The control socket: one JSON request per line in, one JSON reply per line out.
//! Callers are identified by SO_PEERCRED; only uid 0 may change the node. A line is bounded
//! before it is read, and connections are limited, so no local user can grow omd's memory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use tokio::net::unix::UCred;

use crate::api::{Control, Reply, Request};
use crate::control;
use crate::jobs::home::{self, Caller};
use crate::jobs::{Jobs, requests};
use crate::migration::protocol::Target;
use crate::node::NodeHandle;

/// Longest request line accepted; longer ones get an error and the connection closes.
pub const MAX_LINE: usize = 64 * 1024;
/// Most connections served at once (each `omrun` deputy holds one for its job's life); more
/// are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 1024;

/// Bind the socket (replacing a stale one) mode 0666: every local user reads the cluster's
/// state and runs jobs (`omctl`, `omrun`), as with `ps`; controls are checked per request
/// (SO_PEERCRED uid 0).
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

/// Serve forever. `jobs` is `None` on an observer (no jobs run there).
pub async fn serve(listener: UnixListener, node: NodeHandle, jobs: Option<Jobs>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (node, jobs) = (node.clone(), jobs.clone());
                    tokio::spawn(async move {
                        client(stream, node, jobs).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    tracing::debug!("control socket: too many connections");
                    tokio::spawn(async move {
                        let _ = stream
                            .write_all(error_line("omd is serving too many connections").as_bytes())
                            .await;
                    });
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "control accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answer `req` from the agent's table and flags ([`control::handle`]), keeping the flags it set.
fn on_agent(node: &NodeHandle, req: &Request, is_root: bool) -> Reply {
    node.with_agent(|a, now| {
        let rows = a.nodes(now);
        let mut flags = a.flags();
        let reply = control::handle(req, is_root, &rows, &mut flags);
        a.set_flags(flags);
        reply
    })
}

/// Answer one request line.
pub fn answer(line: &str, is_root: bool, node: &NodeHandle) -> Reply {
    match serde_json::from_str::<Request>(line) {
        Ok(req) => on_agent(node, &req, is_root),
        Err(e) => Reply::Error {
            error: format!("bad request: {e}"),
        },
    }
}

fn no_jobs() -> Reply {
    Reply::Error {
        error: "this node runs no jobs (an observer)".into(),
    }
}

fn lines_of(results: Vec<Result<String, String>>, none: &str) -> String {
    if results.is_empty() {
        return none.to_owned();
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| format!("error: {e}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Requests about jobs (they wait on the network); `None`: not a job request.
async fn answer_jobs(
    req: &Request,
    cred: Option<UCred>,
    jobs: Option<&Jobs>,
    node: &NodeHandle,
) -> Option<Reply> {
    let uid = cred.map_or(u32::MAX, |c| c.uid());
    let is_root = uid == 0;
    let reply = match req {
        Request::Jobs => match jobs {
            Some(j) => Reply::Jobs {
                jobs: requests::list(j).await,
            },
            None => no_jobs(),
        },
        Request::Moves => match jobs {
            Some(j) => Reply::Moves {
                moves: requests::moves(j).await,
            },
            None => no_jobs(),
        },
        Request::Migrate { job, to } => match jobs {
            Some(j) => {
                let target = if to == "home" {
                    Target::Home
                } else {
                    Target::Node(to.clone())
                };
                let id = requests::resolve(j, job);
                match requests::migrate(j, &id, &target, uid, true).await {
                    Ok(text) => Reply::Message { text },
                    Err(error) => Reply::Error { error },
                }
            }
            None => no_jobs(),
        },
        Request::Control {
            action: action @ (Control::Expel | Control::Bring),
        } if is_root => root_control(*action, node, jobs).await,
        _ => return None,
    };
    Some(reply)
}

/// A node control by root: from `omctl` on this node (the control socket) or from the master
/// over the peer protocol ([`Msg::Control`](crate::migration::protocol::Msg::Control)), one
/// path for both. `jobs` is `None` on an observer.
pub async fn root_control(action: Control, node: &NodeHandle, jobs: Option<&Jobs>) -> Reply {
    match (action, jobs) {
        (Control::Expel | Control::Bring, None) => no_jobs(),
        (Control::Expel, Some(j)) => {
            node.with_agent(|a, _| {
                let mut f = a.flags();
                f.block = true;
                a.set_flags(f);
            });
            Reply::Message {
                text: lines_of(
                    requests::expel(j).await,
                    "no guest jobs here; guests are now refused (block)",
                ),
            }
        }
        (Control::Bring, Some(j)) => Reply::Message {
            text: lines_of(requests::bring(j).await, "every job of this node is home"),
        },
        (other, _) => on_agent(node, &Request::Control { action: other }, true),
    }
}

/// A reply line carrying `error`.
fn error_line(error: &str) -> String {
    let mut out = serde_json::to_string(&Reply::Error {
        error: error.to_owned(),
    })
    .unwrap_or_default();
    out.push('\n');
    out
}

/// Read one line of at most [`MAX_LINE`] bytes into `line`: `Ok(false)` at the end of the
/// stream, `Err` for a longer line (it is not read past the limit).
pub(crate) async fn read_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut String,
) -> std::io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let n = r.take(MAX_LINE as u64 + 1).read_line(line).await?;
    if n > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "request line too long",
        ));
    }
    Ok(n > 0)
}

async fn client(stream: UnixStream, node: NodeHandle, jobs: Option<Jobs>) {
    let cred = stream.peer_cred().ok();
    let is_root = cred.is_some_and(|c| c.uid() == 0);
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        match read_bounded(&mut lines, &mut line).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = w.write_all(error_line(&e.to_string()).as_bytes()).await;
                return;
            }
            Err(_) => return,
        }
        let req = serde_json::from_str::<Request>(line.trim());
        if let (Ok(Request::Run(run)), Some(j), Some(c)) = (&req, &jobs, cred) {
            let caller = Caller {
                pid: c.pid().unwrap_or(0).max(0) as u32,
                uid: c.uid(),
                gid: c.gid(),
            };
            let reply = match home::start(j, run, caller).await {
                Ok((record, node)) => Reply::Started {
                    job: record.id.clone(),
                    node,
                },
                Err(error) => Reply::Error { error },
            };
            let started = matches!(reply, Reply::Started { .. });
            let mut out = serde_json::to_string(&reply).unwrap_or_default();
            out.push('\n');
            if w.write_all(out.as_bytes()).await.is_err() || !started {
                return;
            }
            if let Reply::Started { job, .. } = reply {
                home::serve_deputy(j.clone(), job, lines, w).await;
            }
            return;
        }
        let job_reply = match &req {
            Ok(r) => answer_jobs(r, cred, jobs.as_ref(), &node).await,
            _ => None,
        };
        let reply = match job_reply {
            Some(r) => r,
            None => answer(line.trim(), is_root, &node),
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| {
            r#"{"result":"error","error":"internal: cannot encode reply"}"#.into()
        });
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}
