//! Where each local process runs and where its home is, for `ps` and `top` (mps and mtop
//! showed the node of every process): a deputy (omrun) stands for its job, which may run on
//! another node; the processes of a guest job running here have another home.

use std::collections::HashMap;
use std::path::Path;

use crate::client::Omd;

/// pid → (node, home), for the pids that belong to jobs; every other process is local.
#[derive(Debug, Default)]
pub struct Places {
    map: HashMap<i32, (String, String)>,
}

impl Places {
    /// From omd's job table (empty if omd does not answer).
    pub fn load(omd: &Omd, here: &str) -> Self {
        let Ok(jobs) = omd.jobs() else {
            return Self::default();
        };
        let mut map = HashMap::new();
        for j in jobs {
            if j.home == here
                && let Some(pid) =
                    j.id.0
                        .rsplit_once('.')
                        .and_then(|(_, p)| p.parse::<i32>().ok())
            {
                map.insert(pid, (j.node.clone(), j.home.clone()));
            }
            if j.node == here && j.pid > 0 {
                for p in migrator::job::tree::descendants(Path::new("/proc"), j.pid) {
                    map.insert(p, (here.to_owned(), j.home.clone()));
                }
            }
        }
        Self { map }
    }

    /// (node, home) of `pid`.
    pub fn of(&self, pid: i32, here: &str) -> (String, String) {
        self.map
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| (here.to_owned(), here.to_owned()))
    }
}
