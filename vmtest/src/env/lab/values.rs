//! What template references are worth in a running environment, and texts rendered with them.

use std::sync::Arc;

use super::{at, Env};
use crate::env::template::{Pos, Ref, Text, Values};
use crate::error::Result;
use crate::net::segment::Segment;
use crate::spec::Network;
use crate::vm::Vm;

impl Env {
    pub(super) async fn render_for(&self, text: &Text) -> Result<String> {
        let values = self.values_for(text).await?;
        text.render(&values)
    }

    /// The values `text` refers to, looked up now: a VM's address is its DHCP lease, waited
    /// for (that VM is up: the graph put it in an earlier phase).
    pub(super) async fn values_for(&self, text: &Text) -> Result<Known> {
        let mut known = Known::default();
        for (reference, pos) in text.refs() {
            let value = match reference {
                Ref::VmIp { vm, network } => {
                    let (vm, segment) = self.vm_on(vm, network, pos)?;
                    Some(vm.ip_on(&segment).await?.to_string())
                }
                other => self.value(other),
            };
            if let Some(value) = value {
                known.0.push((reference.clone(), value));
            }
        }
        Ok(known)
    }

    pub(super) fn render(&self, text: &Text) -> Result<String> {
        let mut known = Known::default();
        for (reference, _) in text.refs() {
            if let Some(value) = self.value(reference) {
                known.0.push((reference.clone(), value));
            }
        }
        text.render(&known)
    }

    /// A reference's value from what is up, without waiting (`None`: not known yet).
    pub(super) fn value(&self, reference: &Ref) -> Option<String> {
        let segment = |n: &str| self.networks.get(n);
        // A user-mode network is each VM's own, and the same everywhere: QEMU's defaults.
        let user = |n: &str| {
            self.decl
                .network(n)
                .is_some_and(|d| d.kind == Network::User)
                .then_some(((std::net::Ipv4Addr::new(10, 0, 2, 0), 24), "10.0.2.2"))
        };
        let subnet = |n: &str| match segment(n) {
            Some(s) => Some(s.subnet()),
            None => user(n).map(|(subnet, _)| subnet),
        };
        Some(match reference {
            Ref::KeyPublic(k) => self.keys.get(k)?.public().to_owned(),
            Ref::KeyPrivate(k) => self.keys.get(k)?.private().to_owned(),
            Ref::NetworkCidr(n) => {
                let (net, prefix) = subnet(n)?;
                format!("{net}/{prefix}")
            }
            Ref::NetworkGateway(n) => match segment(n) {
                Some(s) => s.gateway().to_string(),
                None => user(n)?.1.to_owned(),
            },
            Ref::NetworkPrefix(n) => subnet(n)?.1.to_string(),
            Ref::VmMac { vm, network } => {
                let vm = self.find_vm(vm)?;
                vm.mac_on(segment(network)?)?.to_owned()
            }
            Ref::VmHostname(vm) => self.find_vm(vm)?.name().to_owned(),
            Ref::EnvName => self.name.clone(),
            Ref::VmIp { .. } => return None,
        })
    }

    pub(super) fn vm_on(&self, vm: &str, network: &str, pos: &Pos) -> Result<(Arc<Vm>, Segment)> {
        let found = self.find_vm(vm).zip(self.networks.get(network).cloned());
        found.ok_or_else(|| {
            at(
                pos,
                format!("vms.{vm}.ip.{network} is not known yet: VM {vm} is not up"),
            )
        })
    }
}

/// Values looked up for one text.
#[derive(Default)]
pub(super) struct Known(Vec<(Ref, String)>);

impl Values for Known {
    fn value(&self, r: &Ref) -> Option<String> {
        self.0.iter().find(|(k, _)| k == r).map(|(_, v)| v.clone())
    }
}
