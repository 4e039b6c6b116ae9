//! The order an environment comes up in: what each key, network and VM needs to exist first,
//! grouped into phases whose members can be made at the same time.
//!
//! A VM needs the networks it has a NIC on and whatever its texts (user-data, kernel arguments,
//! provision steps) refer to; a network needs whatever its `pxe_cmdline` refers to. A reference
//! is to what exists only once it is up — another VM's address, say — so a cycle of references
//! can never be satisfied, and is refused with each reference that makes it.

use std::fmt;

use super::file::EnvDecl;
use super::template::{Pos, Ref, Text};
use crate::error::Result;

/// A key, network or VM of an environment, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Key(String),
    Network(String),
    Vm(String),
}

impl fmt::Display for Node {
    /// As references write it: `keys.deploy`, `networks.lan1`, `vms.router`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Key(k) => write!(f, "keys.{k}"),
            Node::Network(n) => write!(f, "networks.{n}"),
            Node::Vm(v) => write!(f, "vms.{v}"),
        }
    }
}

impl Node {
    /// What `r` needs to be up, if anything.
    pub(crate) fn of(r: &Ref) -> Option<Node> {
        match r {
            Ref::KeyPublic(k) | Ref::KeyPrivate(k) => Some(Node::Key(k.clone())),
            Ref::NetworkCidr(n) | Ref::NetworkGateway(n) | Ref::NetworkPrefix(n) => {
                Some(Node::Network(n.clone()))
            }
            Ref::VmIp { vm, .. } | Ref::VmMac { vm, .. } | Ref::VmHostname(vm) => {
                Some(Node::Vm(vm.clone()))
            }
            Ref::EnvName => None,
        }
    }
}

/// That a node needs another: where, and how it is said.
#[derive(Debug, Clone)]
struct Edge {
    to: Node,
    pos: Pos,
    /// A reference, rather than a NIC.
    reference: bool,
}

/// The environment's keys, networks and VMs in the order they can be made: each phase needs
/// only what earlier phases made. Within a phase, keys, then networks, then VMs, each in file
/// order.
pub(crate) fn phases(env: &EnvDecl) -> Result<Vec<Vec<Node>>> {
    let mut nodes: Vec<(Node, Vec<Edge>)> = Vec::new();
    for key in &env.keys {
        nodes.push((Node::Key(key.name.clone()), Vec::new()));
    }
    for network in &env.networks {
        nodes.push((
            Node::Network(network.name.clone()),
            edges(network.texts(), []),
        ));
    }
    for vm in &env.vms {
        let nics = vm.nics.iter().map(|(n, pos)| Edge {
            to: Node::Network(n.clone()),
            pos: pos.clone(),
            reference: false,
        });
        nodes.push((Node::Vm(vm.name.clone()), edges(vm.texts(), nics)));
    }
    // An edge to what is not declared (a hand-made declaration; a read one is checked) is
    // no dependency.
    for i in 0..nodes.len() {
        let kept: Vec<Edge> = nodes[i]
            .1
            .iter()
            .filter(|e| nodes.iter().any(|(n, _)| *n == e.to))
            .cloned()
            .collect();
        nodes[i].1 = kept;
    }

    let mut done = vec![false; nodes.len()];
    let mut phases = Vec::new();
    loop {
        let ready: Vec<usize> = (0..nodes.len())
            .filter(|&i| !done[i])
            .filter(|&i| {
                nodes[i]
                    .1
                    .iter()
                    .all(|e| done[nodes.iter().position(|(n, _)| *n == e.to).expect("kept")])
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        for &i in &ready {
            done[i] = true;
        }
        phases.push(ready.into_iter().map(|i| nodes[i].0.clone()).collect());
    }
    match done.iter().position(|d| !d) {
        None => Ok(phases),
        Some(start) => Err(cycle(&nodes, &done, start)),
    }
}

/// A node's edges: `first`, then those of the references of `texts`; one per node needed, at
/// its first mention.
fn edges<'a>(
    texts: impl Iterator<Item = &'a Text>,
    first: impl IntoIterator<Item = Edge>,
) -> Vec<Edge> {
    let refs = texts.flat_map(|t| t.refs()).filter_map(|(r, pos)| {
        Node::of(r).map(|to| Edge {
            to,
            pos: pos.clone(),
            reference: true,
        })
    });
    let mut edges: Vec<Edge> = Vec::new();
    for edge in first.into_iter().chain(refs) {
        if !edges.iter().any(|e| e.to == edge.to) {
            edges.push(edge);
        }
    }
    edges
}

/// The error for the cycle found by following, from the undone node `start`, the first edge to
/// an undone node (every undone node has one) until a node comes again.
fn cycle(nodes: &[(Node, Vec<Edge>)], done: &[bool], start: usize) -> crate::error::Error {
    let index = |node: &Node| nodes.iter().position(|(n, _)| n == node).expect("kept");
    let mut path: Vec<usize> = vec![start];
    let mut taken: Vec<&Edge> = Vec::new();
    let from = loop {
        let here = *path.last().expect("not empty");
        let edge = nodes[here]
            .1
            .iter()
            .find(|e| !done[index(&e.to)])
            .expect("an undone node waits for an undone one");
        taken.push(edge);
        let next = index(&edge.to);
        if let Some(at) = path.iter().position(|&p| p == next) {
            break at;
        }
        path.push(next);
    };
    let (path, taken) = (&path[from..], &taken[from..]);
    let first = &nodes[path[0]].0;
    let mut message = String::new();
    for (i, edge) in taken.iter().enumerate() {
        let how = if edge.reference {
            "refers to"
        } else {
            "has a NIC on"
        };
        let to = if taken.len() == 1 {
            "itself".to_owned()
        } else {
            edge.to.to_string()
        };
        if i == 0 {
            message.push_str(&format!("{first} {how} {to} ({})", edge.pos));
        } else {
            message.push_str(&format!(", which {how} {to} ({})", edge.pos));
        }
    }
    let references = taken.iter().filter(|e| e.reference).count();
    message.push_str(if taken.len() == 1 {
        ": a cycle (what it refers to is known only once it is up); remove that reference"
    } else if references == 1 {
        ": a cycle; remove the reference"
    } else {
        ": a cycle; remove one of these references"
    });
    taken[0].pos.error(message)
}

#[cfg(test)]
mod tests;
