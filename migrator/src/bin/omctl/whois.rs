//! `omctl whois ID|NAME|IP`: one node's identity, like `mosctl whois`.
//! omd does the matching (the contract's `Whois` request), so every client matches alike.

use anyhow::{Context, Result};
use migrator::api::NodeInfo;

use crate::client::{Omd, Refused};
use crate::nodes::state_name;

/// Runs the command; an unknown node is an error (exit 1) with omd's reason.
pub fn run(omd: &Omd, who: &str, json: bool) -> Result<()> {
    let node = match omd.whois(who) {
        Ok(node) => node,
        // omd answered but knows no such node: point at the list rather than at omd.
        Err(e) if e.is::<Refused>() => {
            return Err(e.context(format!(
                "no node `{who}` in the cluster (`omctl nodes` lists them)"
            )));
        }
        Err(e) => return Err(e),
    };
    if json {
        let text = serde_json::to_string_pretty(&node).context("encoding the node")?;
        println!("{text}");
    } else {
        print!("{}", render(&node));
    }
    Ok(())
}

/// `key: value` lines, keys padded so values line up.
pub fn render(n: &NodeInfo) -> String {
    let role = if n.is_self {
        "this node"
    } else if n.observer {
        "observer"
    } else {
        "node"
    };
    let ip = n
        .addr
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| n.addr.clone(), |a| a.ip().to_string());
    format!(
        "id:      {}\nname:    {}\naddress: {}\ngossip:  {}\nstate:   {}\nrole:    {}\n",
        n.id,
        n.name,
        ip,
        n.addr,
        state_name(n.state),
        role
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::tests::sample;

    #[test]
    fn identity_lines() {
        let nodes = sample();
        assert_eq!(
            render(&nodes[0]),
            "id:      00000000000000b2\nname:    node2\naddress: 10.77.0.12\n\
             gossip:  10.77.0.12:7946\nstate:   dead\nrole:    node\n"
        );
        assert!(render(&nodes[1]).ends_with("role:    observer\n"));
        assert!(render(&nodes[2]).ends_with("role:    this node\n"));
    }

    #[test]
    fn odd_addresses_are_shown_as_given() {
        let mut n = sample().remove(0);
        n.addr = "somewhere".into();
        assert!(render(&n).contains("address: somewhere\n"));
    }
}
