//! The VM on its segments: which ones, its MAC and its DHCP lease on each.

use std::time::Duration;

use super::Vm;
use crate::error::{Error, Result};
use crate::net::segment::Segment;

impl Vm {
    /// The segment of an isolated or PXE network the VM is on.
    pub fn segment(&self) -> Option<&Segment> {
        match &self.owned {
            Some(owned) => owned.segment.as_ref(),
            None => self.attached_nics.first().map(|(s, _)| s),
        }
    }

    /// The MAC address of the VM's NIC on its segment.
    pub fn mac(&self) -> Option<&str> {
        match &self.owned {
            Some(owned) => owned.mac.as_deref(),
            None => self.attached_nics.first().map(|(_, mac)| mac.as_str()),
        }
    }

    /// The segments the VM has a NIC on, its own first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        let owned = self.owned.as_ref();
        let first = owned.and_then(|o| o.segment.as_ref());
        let more = owned
            .into_iter()
            .flat_map(|o| o.more.iter().map(|(s, _)| s));
        let attached = self.attached_nics.iter().map(|(s, _)| s);
        first.into_iter().chain(more).chain(attached)
    }

    /// The MAC address of the VM's NIC on `segment` (`None`: it has none there).
    pub fn mac_on(&self, segment: &Segment) -> Option<&str> {
        let Some(owned) = self.owned.as_ref() else {
            return self
                .attached_nics
                .iter()
                .find(|(s, _)| s.name() == segment.name())
                .map(|(_, mac)| mac.as_str());
        };
        if owned
            .segment
            .as_ref()
            .is_some_and(|s| s.name() == segment.name())
        {
            return owned.mac.as_deref();
        }
        owned
            .more
            .iter()
            .find(|(s, _)| s.name() == segment.name())
            .map(|(_, mac)| mac.as_str())
    }

    /// The VM's address on `segment`, from the DHCP lease that segment's dnsmasq gave the VM's
    /// NIC there; waits for the lease (bounded: 30 s, scaled under TCG).
    pub async fn ip_on(&self, segment: &Segment) -> Result<std::net::Ipv4Addr> {
        let Some(mac) = self.mac_on(segment) else {
            return Err(Error::Invalid {
                what: "ip_on",
                message: format!(
                    "VM {} has no NIC on segment {}; its segments: {}",
                    self.name,
                    segment.name(),
                    self.segments()
                        .map(Segment::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let timeout = Duration::from_secs(30) * self.link.factor();
        Ok(segment.wait_for_lease(mac, timeout).await?.ip)
    }

    /// The VM's address on its segment, from the DHCP lease dnsmasq gave it; waits for the lease
    /// (bounded: 30 s, scaled under TCG).
    pub async fn segment_ip(&self) -> Result<std::net::Ipv4Addr> {
        let Some(segment) = self.segment() else {
            return Err(Error::Invalid {
                what: "segment_ip",
                message: format!(
                    "VM {} is on the user-mode network; ask for network = \"isolated\" or \"pxe\"",
                    self.name
                ),
            });
        };
        self.ip_on(segment).await
    }
}
