//! libvirtd, as vmtest talks to it: which daemon (the URI), a connection that closes when
//! dropped, what the daemon offers, and the metadata that proves a domain is vmtest's.
//!
//! The metadata is one element in vmtest's namespace, written into every domain vmtest creates:
//! `<vmtest:vm owner-pid=".." owner-start=".." owner-boot=".." session=".." test=".."
//! run-dir=".."/>`. The sweeper destroys a domain only when a ledger entry names it *and* this
//! element names the entry's owner, or, without an entry, when the element names an owner that
//! is dead and the sweeper's own run directory (domains are host-wide, ledgers are per run
//! directory): a domain of the same name made by anyone else survives every sweep.

// Without the feature only the URI is used (by the doctor's report).
#![cfg_attr(not(feature = "libvirt"), allow(dead_code))]

/// The XML namespace of vmtest's domain metadata.
pub(crate) const METADATA_NS: &str = "urn:vmtest:domain:1";
/// The prefix vmtest writes its metadata element with.
pub(crate) const METADATA_PREFIX: &str = "vmtest";

/// The libvirt connection of `VMTEST_LIBVIRT_URI`, if set.
pub(crate) fn env_uri() -> Option<String> {
    std::env::var("VMTEST_LIBVIRT_URI")
        .ok()
        .filter(|uri| !uri.is_empty())
}

/// The connection when nothing names one.
pub(crate) const DEFAULT_URI: &str = "qemu:///system";

/// `VMTEST_LIBVIRT_URI`, else [`DEFAULT_URI`]: where the sweeper looks for domains no ledger
/// entry names (an entry records its domain's connection).
pub(crate) fn uri() -> String {
    env_uri().unwrap_or_else(|| DEFAULT_URI.to_owned())
}

/// libvirtd's log of domain `name`'s QEMU (`qemu:///system`'s place for it).
pub(crate) fn log_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/var/log/libvirt/qemu").join(format!("{name}.log"))
}

/// vmtest's metadata of a domain: the attributes of its element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata(pub Vec<(String, String)>);

impl Metadata {
    /// The value of attribute `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it names the process `pid` that started `start_ticks` after boot as the
    /// domain's owner.
    pub fn names_owner(&self, pid: u32, start_ticks: u64) -> bool {
        self.get("owner-pid") == Some(pid.to_string().as_str())
            && self.get("owner-start") == Some(start_ticks.to_string().as_str())
    }
}

/// The attributes of vmtest's metadata element as libvirt hands it back (`name="value"` or
/// `name='value'`, entities decoded). A scan, not an XML parser: the element has attributes
/// only, and libvirt re-serialises it in exactly that form.
pub(crate) fn metadata_attributes(element: &str) -> Metadata {
    let mut out = Vec::new();
    let mut rest = element;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq]
            .rsplit(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap_or_default()
            .to_owned();
        let after = &rest[eq + 1..];
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(end) = after[1..].find(quote) else {
            break;
        };
        out.push((name, unescape(&after[1..1 + end])));
        rest = &after[end + 2..];
    }
    Metadata(out)
}

/// XML's predefined entities and numeric character references, decoded.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(feature = "libvirt")]
pub(crate) use connection::{delete_volumes, metadata, pool, pool_error, probe, Conn};

#[cfg(feature = "libvirt")]
mod connection {
    use virt::connect::Connect;
    use virt::storage_pool::StoragePool;
    use virt::storage_vol::StorageVol;

    use crate::error::{Error, Result};
    use virt::domain::Domain;

    /// An open connection to libvirtd, closed when dropped (virt 0.4's `Connect` has no `Drop`:
    /// an unclosed connection would live as long as the process, and with it every domain
    /// created with auto-destroy on it).
    pub(crate) struct Conn(Connect);

    impl std::fmt::Debug for Conn {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Conn")
        }
    }

    impl Conn {
        /// Connects to `uri`; the error is libvirt's message.
        pub fn open(uri: &str) -> Result<Conn, String> {
            // libvirt prints every error to stderr by default; ours are returned instead.
            virt::error::clear_error_callback();
            Connect::open(Some(uri))
                .map(Conn)
                .map_err(|e| e.to_string())
        }

        pub fn get(&self) -> &Connect {
            &self.0
        }

        /// The running domain `name`, if there is one.
        pub fn domain(&self, name: &str) -> Option<Domain> {
            Domain::lookup_by_name(&self.0, name).ok()
        }

        /// The names of the running domains, with vmtest's metadata where they carry it.
        pub fn running(&self) -> Result<Vec<(String, Option<super::Metadata>)>, String> {
            let domains = self
                .0
                .list_all_domains(virt_sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                .map_err(|e| e.to_string())?;
            let mut running = Vec::new();
            for mut domain in domains {
                if let Ok(name) = domain.get_name() {
                    running.push((name, metadata(&domain)));
                }
                let _ = domain.free();
            }
            Ok(running)
        }
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            let _ = self.0.close();
        }
    }

    /// vmtest's metadata of `domain`, if it has any.
    pub(crate) fn metadata(domain: &Domain) -> Option<super::Metadata> {
        domain
            .get_metadata(
                virt_sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(super::METADATA_NS),
                0,
            )
            .ok()
            .map(|element| super::metadata_attributes(&element))
    }

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
        let conn = Conn::open(uri)?;
        let conn = conn.get();
        (|| {
            Ok(HostInfo {
                version: dotted(conn.get_lib_version()?),
                hypervisor: dotted(conn.get_hyp_version()?),
                domain_types: domain_types(&conn.get_capabilities()?),
            })
        })()
        .map_err(|e: virt::error::Error| e.to_string())
    }

    /// libvirt's `major * 1_000_000 + minor * 1000 + micro` as `major.minor.micro`.
    pub(super) fn dotted(version: u32) -> String {
        format!(
            "{}.{}.{}",
            version / 1_000_000,
            version / 1000 % 1000,
            version % 1000
        )
    }

    /// The `<domain type='...'/>` of the capabilities' x86_64 guests, deduplicated. A scan, not an
    /// XML parser: the capabilities document writes these elements in exactly this form.
    pub(super) fn domain_types(capabilities: &str) -> Vec<String> {
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

    pub(crate) fn pool_error(uri: &str, pool: &str, message: String) -> Error {
        Error::Libvirt {
            uri: uri.to_owned(),
            message,
            hint: format!(
                "vmtest keeps a remote host's volumes in the storage pool {pool} \
                 (VMTEST_LIBVIRT_POOL): define it once on that host, e.g. `virsh -c '{uri}' \
                 pool-define-as {pool} dir --target /var/lib/vmtest-pool && virsh -c '{uri}' \
                 pool-build {pool} && virsh -c '{uri}' pool-start {pool} && virsh -c '{uri}' \
                 pool-autostart {pool}`"
            ),
        }
    }

    /// The active pool `name` at `uri`, refreshed (volumes made by others are seen).
    pub(crate) fn pool(conn: &Conn, uri: &str, name: &str) -> Result<StoragePool> {
        let pool = StoragePool::lookup_by_name(conn.get(), name)
            .map_err(|e| pool_error(uri, name, format!("no storage pool {name}: {e}")))?;
        if !pool.is_active().unwrap_or(false) {
            return Err(pool_error(
                uri,
                name,
                format!("the storage pool {name} is not started"),
            ));
        }
        let _ = pool.refresh(0);
        Ok(pool)
    }

    /// Deletes the volumes of VM `vm` (`VM-…`) from the pool at `uri`; what could not be.
    pub(crate) fn delete_volumes(uri: &str, pool_name: &str, vm: &str) -> Vec<String> {
        let conn = match Conn::open(uri) {
            Ok(c) => c,
            Err(e) => return vec![format!("connecting to {uri}: {e}")],
        };
        let pool = match pool(&conn, uri, pool_name) {
            Ok(p) => p,
            Err(e) => return vec![e.to_string()],
        };
        let prefix = format!("{vm}-");
        let mut failed = Vec::new();
        for name in pool.list_volumes().unwrap_or_default() {
            if !name.starts_with(&prefix) {
                continue;
            }
            if let Ok(vol) = StorageVol::lookup_by_name(&pool, &name) {
                if let Err(e) = vol.delete(0) {
                    failed.push(format!("deleting volume {name}: {e}"));
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_attributes_are_read_back_decoded() {
        let element = "<vmtest:vm xmlns:vmtest=\"urn:vmtest:domain:1\" owner-pid=\"42\" \
                       test='a::b &amp; &lt;c&gt; &#x41;&#66;'/>";
        assert_eq!(
            metadata_attributes(element).0,
            [
                ("xmlns:vmtest".to_owned(), "urn:vmtest:domain:1".to_owned()),
                ("owner-pid".to_owned(), "42".to_owned()),
                ("test".to_owned(), "a::b & <c> AB".to_owned()),
            ]
        );
    }

    #[cfg(feature = "libvirt")]
    #[test]
    fn versions_are_dotted() {
        use connection::*;
        assert_eq!(dotted(9_000_000), "9.0.0");
        assert_eq!(dotted(7_002_022), "7.2.22");
    }

    #[cfg(feature = "libvirt")]
    #[test]
    fn domain_types_of_x86_64_guests() {
        use connection::*;
        let caps = "<capabilities><host/>\
            <guest><os_type>hvm</os_type><arch name='i686'><domain type='xen'/></arch></guest>\
            <guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>\
            <domain type='qemu'/><domain type='kvm'/></arch></guest>\
            <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/></arch></guest>\
            </capabilities>";
        assert_eq!(domain_types(caps), ["qemu", "kvm"]);
    }
}
