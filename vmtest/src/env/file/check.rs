//! Every reference of an environment's texts names what the environment declares: a key, a
//! network, a VM — and for a VM's address or MAC on a network, a network it has a NIC on.

use super::EnvDecl;
use crate::env::template::{Pos, Ref};
use crate::error::Result;

/// Checks the references of every text of `env`.
pub(super) fn references(env: &EnvDecl) -> Result<()> {
    let texts = env
        .networks
        .iter()
        .flat_map(|n| n.texts())
        .chain(env.vms.iter().flat_map(|v| v.texts()));
    for text in texts {
        for (r, pos) in text.refs() {
            reference(env, r, pos)?;
        }
    }
    Ok(())
}

fn reference(env: &EnvDecl, r: &Ref, pos: &Pos) -> Result<()> {
    let unknown = |kind: &str, plural: &str, name: &str, declared: Vec<&str>| {
        let declared = if declared.is_empty() {
            format!("it declares no {plural}")
        } else {
            format!("declared {plural}: {}", declared.join(", "))
        };
        pos.error(format!(
            "`{{{{ {r} }}}}`: environment `{}` has no {kind} `{name}`; {declared}",
            env.name
        ))
    };
    let key = |name: &str| match env.key(name) {
        Some(_) => Ok(()),
        None => Err(unknown(
            "key",
            "keys",
            name,
            env.keys.iter().map(|k| k.name.as_str()).collect(),
        )),
    };
    let network = |name: &str| match env.network(name) {
        Some(_) => Ok(()),
        None => Err(unknown(
            "network",
            "networks",
            name,
            env.networks.iter().map(|n| n.name.as_str()).collect(),
        )),
    };
    let vm = |name: &str| match env.vm(name) {
        Some(vm) => Ok(vm),
        None => Err(unknown(
            "VM",
            "VMs",
            name,
            env.vms.iter().map(|v| v.name.as_str()).collect(),
        )),
    };
    match r {
        Ref::KeyPublic(k) | Ref::KeyPrivate(k) => key(k),
        Ref::NetworkCidr(n) | Ref::NetworkGateway(n) | Ref::NetworkPrefix(n) => network(n),
        Ref::VmHostname(v) => vm(v).map(drop),
        Ref::VmIp { vm: v, network: n } | Ref::VmMac { vm: v, network: n } => {
            let decl = vm(v)?;
            network(n)?;
            if decl.has_nic(n) {
                return Ok(());
            }
            let nics: Vec<&str> = decl.nics.iter().map(|(n, _)| n.as_str()).collect();
            let nics = if nics.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its NICs are on {}", nics.join(", "))
            };
            Err(pos.error(format!(
                "`{{{{ {r} }}}}`: VM `{v}` has no NIC on network `{n}` ({nics}): add `{n}` to \
                 its `nics`, or name a network it is on"
            )))
        }
        Ref::EnvName => Ok(()),
    }
}
