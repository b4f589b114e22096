//! The peer listener (TCP, [`DEFAULT_PEER_PORT`](super::DEFAULT_PEER_PORT)): every connection
//! authenticates, then its first message says what it is for.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::Reply;
use crate::jobs::{Jobs, home, requests};
use crate::migration::history;
use crate::migration::protocol::Msg;
use crate::migration::session::Session;
use crate::migration::target;

/// Most peer connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// Bind the listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve forever.
pub async fn serve(jobs: Jobs, l: TcpListener) {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((s, from)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let session =
                match tokio::time::timeout(Duration::from_secs(5), Session::server(s, &jobs.0.key))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(%from, error = %e, "peer connection refused");
                        return;
                    }
                    Err(_) => return,
                };
            handle(jobs, session, from).await;
        });
    }
}

async fn handle(jobs: Jobs, mut s: Session, from: SocketAddr) {
    let first = match tokio::time::timeout(Duration::from_secs(10), s.recv::<Msg>()).await {
        Ok(Ok(Some(m))) => m,
        _ => return,
    };
    match first {
        Msg::Offer {
            mid,
            record,
            rss,
            cpuinfo,
            load,
        } => target::receive(jobs, s, mid, record, rss, cpuinfo.into_vec(), load).await,
        Msg::Attach {
            job,
            epoch,
            node,
            pid,
        } => {
            let Session { reader, writer, .. } = s;
            home::attach(jobs, reader, writer, job, epoch, node, pid).await;
        }
        Msg::Outcome { mid, .. } => {
            let outcome = jobs.0.outcomes.settle(mid);
            let _ = s.send(&Msg::OutcomeIs { outcome }).await;
        }
        Msg::Start { record } => {
            let reply = if !record.id.is_valid() {
                Msg::Refuse {
                    reason: "bad job id".into(),
                }
            } else if jobs.0.node.flags().block {
                Msg::Refuse {
                    reason: format!("{} refuses guests (block)", jobs.0.cfg.name),
                }
            } else {
                match home::start_here(&jobs, &record).await {
                    Ok(()) => Msg::Started,
                    Err(reason) => Msg::Refuse { reason },
                }
            };
            let _ = s.send(&reply).await;
        }
        Msg::Migrate { job, to, uid } => {
            let result = requests::migrate(&jobs, &job, &to, uid, false).await;
            let _ = s.send(&Msg::Result { result }).await;
        }
        Msg::ListJobs => {
            let _ = s.send(&Msg::Jobs { jobs: jobs.views() }).await;
        }
        Msg::ListMoves => {
            let moves = history::for_wire(jobs.0.history.all());
            let _ = s.send(&Msg::Moves { moves }).await;
        }
        Msg::Control { action } => {
            let name = &jobs.0.cfg.name;
            let reply = crate::server::root_control(action, &jobs.0.node, Some(&jobs)).await;
            let result = match reply {
                Reply::Done { flags } => {
                    let names = flags.names();
                    Ok(if names.is_empty() {
                        format!("{name}: no flags set")
                    } else {
                        format!("{name}: {}", names.join(" "))
                    })
                }
                Reply::Message { text } => Ok(text),
                Reply::Error { error } => Err(error),
                other => Err(format!("unexpected answer {other:?}")),
            };
            tracing::info!(peer = %from, ?action, ?result, "node control from a cluster key holder");
            let _ = s.send(&Msg::Result { result }).await;
        }
        _ => {}
    }
}
