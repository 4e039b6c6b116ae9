//! What libvirtd at a URI offers: whether it answers, its version, the domain types it runs.

use virt::connect::Connect;

/// What a reachable libvirtd reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostInfo {
    /// libvirt's version, `major.minor.micro`.
    pub version: String,
    /// The hypervisor's (QEMU's) version.
    pub hypervisor: String,
    /// Domain types offered for x86_64 (`qemu` is TCG, `kvm`), in the order libvirt lists them.
    pub domain_types: Vec<String>,
}

/// Connects to `uri` and asks what it offers; the error is libvirt's message.
pub(crate) fn probe(uri: &str) -> Result<HostInfo, String> {
    // libvirt prints every error to stderr by default; ours are returned instead.
    virt::error::clear_error_callback();
    let mut conn = Connect::open(Some(uri)).map_err(|e| e.to_string())?;
    let info = (|| {
        Ok(HostInfo {
            version: dotted(conn.get_lib_version()?),
            hypervisor: dotted(conn.get_hyp_version()?),
            domain_types: domain_types(&conn.get_capabilities()?),
        })
    })()
    .map_err(|e: virt::error::Error| e.to_string());
    // virt 0.4's Connect has no Drop: an unclosed connection would live as long as the process.
    let _ = conn.close();
    info
}

/// libvirt's `major * 1_000_000 + minor * 1000 + micro` as `major.minor.micro`.
fn dotted(version: u32) -> String {
    format!(
        "{}.{}.{}",
        version / 1_000_000,
        version / 1000 % 1000,
        version % 1000
    )
}

/// The `<domain type='...'/>` of the capabilities' x86_64 guests, deduplicated. A scan, not an
/// XML parser: the capabilities document writes these elements in exactly this form.
fn domain_types(capabilities: &str) -> Vec<String> {
    let mut types = Vec::new();
    for guest in capabilities.split("<guest>").skip(1) {
        if !guest.contains("<arch name='x86_64'>") {
            continue;
        }
        for rest in guest.split("<domain type='").skip(1) {
            if let Some(end) = rest.find('\'') {
                let t = &rest[..end];
                if !types.iter().any(|known| known == t) {
                    types.push(t.to_owned());
                }
            }
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dotted() {
        assert_eq!(dotted(9_000_000), "9.0.0");
        assert_eq!(dotted(7_002_022), "7.2.22");
    }

    #[test]
    fn domain_types_of_x86_64_guests() {
        let caps = "<capabilities><host/>\
            <guest><os_type>hvm</os_type><arch name='i686'><domain type='xen'/></arch></guest>\
            <guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>\
            <domain type='qemu'/><domain type='kvm'/></arch></guest>\
            <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/></arch></guest>\
            </capabilities>";
        assert_eq!(domain_types(caps), ["qemu", "kvm"]);
    }
}
