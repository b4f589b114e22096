//! Control API request handling as a pure function: request + table + flags → reply.
//! The socket server (`server`) only frames lines and checks the caller's uid.

use crate::api::{Control, Flags, NodeInfo, Reply, Request};

/// The answer to `expel`/`bring` where no jobs run (an observer).
pub const NOT_YET: &str = "this node runs no jobs, so it has none to expel or bring";

/// Answer one request. `rows` is the table with this node first; `flags` are this node's
/// flags and are changed by controls when `is_root`.
pub fn handle(req: &Request, is_root: bool, rows: &[NodeInfo], flags: &mut Flags) -> Reply {
    match req {
        Request::Nodes => Reply::Nodes {
            nodes: rows.to_vec(),
        },
        Request::Whois { who } => match whois(rows, who) {
            Some(node) => Reply::Node { node: node.clone() },
            None => Reply::Error {
                error: format!("no node matches {who:?} (try an id, a host name or an IP)"),
            },
        },
        Request::Run(_) | Request::Jobs | Request::Migrate { .. } | Request::Moves => {
            Reply::Error {
                error: "this node runs no jobs (an observer)".into(),
            }
        }
        Request::Control { action } => {
            if !is_root {
                return Reply::Error {
                    error: "permission denied: node controls need root".into(),
                };
            }
            match apply(*action, *flags) {
                Some(f) => {
                    *flags = f;
                    Reply::Done { flags: f }
                }
                None => Reply::Error {
                    error: NOT_YET.into(),
                },
            }
        }
    }
}

/// New flags after a control, or `None` for controls that need migration.
pub fn apply(action: Control, mut f: Flags) -> Option<Flags> {
    match action {
        Control::Stay => f.stay = true,
        Control::Nostay => {
            f.stay = false;
            f.lstay = false;
        }
        Control::Lstay => f.lstay = true,
        Control::Block => f.block = true,
        Control::Noblock => f.block = false,
        Control::Quiet => f.quiet = true,
        Control::Noquiet => f.quiet = false,
        Control::Expel | Control::Bring => return None,
    }
    Some(f)
}

/// Find a node by id (hex, case-insensitive), host name, IP or `ip:port`.
pub fn whois<'a>(rows: &'a [NodeInfo], who: &str) -> Option<&'a NodeInfo> {
    let who = who.trim();
    rows.iter()
        .find(|n| n.id.eq_ignore_ascii_case(who))
        .or_else(|| rows.iter().find(|n| n.name == who))
        .or_else(|| rows.iter().find(|n| n.addr == who))
        .or_else(|| rows.iter().find(|n| n.addr.split(':').next() == Some(who)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MemberState;

    fn row(id: &str, name: &str, addr: &str, is_self: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            name: name.into(),
            addr: addr.into(),
            state: MemberState::Alive,
            is_self,
            observer: false,
            load: None,
            load_age_ms: None,
            flags: Flags::default(),
        }
    }

    fn rows() -> Vec<NodeInfo> {
        vec![
            row("00000000000000aa", "node1", "10.0.0.1:7946", true),
            row("00000000000000bb", "node2", "10.0.0.2:7946", false),
        ]
    }

    #[test]
    fn nodes_and_whois() {
        let mut f = Flags::default();
        let r = handle(&Request::Nodes, false, &rows(), &mut f);
        assert!(matches!(r, Reply::Nodes { ref nodes } if nodes.len() == 2 && nodes[0].is_self));
        for who in ["00000000000000BB", "node2", "10.0.0.2", "10.0.0.2:7946"] {
            let r = handle(&Request::Whois { who: who.into() }, false, &rows(), &mut f);
            assert!(
                matches!(r, Reply::Node { ref node } if node.name == "node2"),
                "{who}"
            );
        }
        let r = handle(&Request::Whois { who: "x".into() }, false, &rows(), &mut f);
        assert!(matches!(r, Reply::Error { .. }));
    }

    #[test]
    fn controls_need_root_and_change_flags() {
        let mut f = Flags::default();
        let req = |action| Request::Control { action };
        let r = handle(&req(Control::Block), false, &rows(), &mut f);
        assert!(matches!(r, Reply::Error { ref error } if error.contains("root")));
        assert_eq!(f, Flags::default());
        for a in [
            Control::Stay,
            Control::Lstay,
            Control::Block,
            Control::Quiet,
        ] {
            handle(&req(a), true, &rows(), &mut f);
        }
        assert_eq!(
            f,
            Flags {
                stay: true,
                lstay: true,
                block: true,
                quiet: true
            }
        );
        let r = handle(&req(Control::Nostay), true, &rows(), &mut f);
        assert!(matches!(r, Reply::Done { flags } if !flags.stay && !flags.lstay && flags.block));
        handle(&req(Control::Noblock), true, &rows(), &mut f);
        handle(&req(Control::Noquiet), true, &rows(), &mut f);
        assert_eq!(f, Flags::default());
        for a in [Control::Expel, Control::Bring] {
            let r = handle(&req(a), true, &rows(), &mut f);
            assert_eq!(
                r,
                Reply::Error {
                    error: NOT_YET.into()
                }
            );
        }
    }

    #[test]
    fn json_lines_match_the_contract() {
        let r: Request = serde_json::from_str(r#"{"cmd":"control","action":"lstay"}"#).unwrap();
        assert_eq!(
            r,
            Request::Control {
                action: Control::Lstay
            }
        );
        let mut f = Flags::default();
        let out = serde_json::to_string(&handle(&r, true, &rows(), &mut f)).unwrap();
        assert!(out.starts_with(r#"{"result":"done""#), "{out}");
    }

    #[test]
    fn moves_contract_and_observer_answer() {
        let r: Request = serde_json::from_str(r#"{"cmd":"moves"}"#).unwrap();
        assert_eq!(r, Request::Moves);
        // A node without jobs (an observer) has no history to ask for.
        let mut f = Flags::default();
        assert!(matches!(
            handle(&r, false, &rows(), &mut f),
            Reply::Error { .. }
        ));
        let reply = Reply::Moves { moves: Vec::new() };
        let out = serde_json::to_string(&reply).unwrap();
        assert_eq!(out, r#"{"result":"moves","moves":[]}"#);
    }
}
