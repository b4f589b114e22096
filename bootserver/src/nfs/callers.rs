//! The AUTH_SYS credential (RFC 5531 Appendix A; RFC 1813 §4.4) of the NFS call being served.
//!
//! nfs3_server 0.11 shows the credential only to `NfsReadFileSystem::authorize`, not to the file
//! system calls that follow; it serves every RPC in its own tokio task, so we keep the credential
//! keyed by that task's id from `authorize` until the file system calls of the same task ask for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nfs3_server::nfs3_types::rpc::auth_unix;

use super::access::Caller;

/// How long a recorded credential is kept: far longer than any call takes.
const KEEP: Duration = Duration::from_secs(300);
/// At most this many are kept: more calls in flight at once than the server ever allows.
const MAX: usize = 8192;

/// Credentials of the calls in flight, by tokio task.
#[derive(Debug, Default)]
pub struct Callers {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_task: HashMap<tokio::task::Id, Caller>,
    order: VecDeque<(tokio::task::Id, Instant)>,
}

impl Callers {
    /// Record the credential of the call the current task serves (`None`: not AUTH_SYS).
    pub fn record(&self, auth: Option<&auth_unix>) {
        let Some(task) = tokio::task::try_id() else {
            return;
        };
        let caller = auth.map_or_else(Caller::nobody, |a| Caller {
            uid: a.uid,
            gid: a.gid,
            groups: a.gids.clone(),
        });
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else { return };
        while let Some(&(old, at)) = s.order.front() {
            if s.order.len() < MAX && now.duration_since(at) < KEEP {
                break;
            }
            s.order.pop_front();
            s.by_task.remove(&old);
        }
        if s.by_task.insert(task, caller).is_none() {
            s.order.push_back((task, now));
        }
    }

    /// The credential of the call the current task serves; `nobody` when there is none, so an
    /// unknown caller gets the least rights.
    pub fn current(&self) -> Caller {
        tokio::task::try_id()
            .and_then(|task| self.state.lock().ok()?.by_task.get(&task).cloned())
            .unwrap_or_else(Caller::nobody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn auth(uid: u32) -> auth_unix {
        auth_unix {
            uid,
            gid: uid + 1,
            gids: vec![7],
            ..auth_unix::default()
        }
    }

    #[tokio::test]
    async fn each_task_sees_its_own_caller() {
        let callers = Arc::new(Callers::default());
        let mut tasks = Vec::new();
        for uid in 1000..1020 {
            let c = callers.clone();
            tasks.push(tokio::spawn(async move {
                c.record(Some(&auth(uid)));
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                c.current()
            }));
        }
        for (uid, t) in (1000..1020).zip(tasks) {
            assert_eq!(
                t.await.unwrap(),
                Caller {
                    uid,
                    gid: uid + 1,
                    groups: vec![7]
                }
            );
        }
        let c = callers.clone();
        let none = tokio::spawn(async move {
            c.record(None);
            c.current()
        });
        assert_eq!(none.await.unwrap(), Caller::nobody());
        let c = callers.clone();
        let unknown = tokio::spawn(async move { c.current() });
        assert_eq!(unknown.await.unwrap(), Caller::nobody());
    }
}
