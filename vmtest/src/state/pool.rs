//! Subnets for segments: each segment's bridge gets a /24 of its own, leased from a pool shared
//! by every test process on the host.
//!
//! The subnets only ever exist inside our own network namespaces, but two segments running at
//! once must still never share one (their captures, logs and any route a test adds between
//! them would be ambiguous). So a subnet is not derived from a name (hashing into a few
//! thousand subnets collides long before the pool is full): it is leased, lowest free first,
//! from `RUN_DIR/subnets.json`, read and changed only under an exclusive `flock` of
//! `RUN_DIR/subnets.lock` and replaced atomically (temporary file + rename), as the boot budget
//! does. Every entry names its owner process (pid + start time + boot id): entries of dead
//! owners are dropped before a subnet is picked, so a killed test process leaks nothing.
//!
//! The pool is 10.208.0.0/12 (4096 /24s) unless `VMTEST_SUBNET_POOL` names another.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::ledger::{now_unix_ms, ProcessId};
use crate::state::store::{self, Document, Newer};

/// The variable that overrides the pool.
pub(crate) const POOL_VAR: &str = "VMTEST_SUBNET_POOL";
/// The shared state, in the run directory.
const STATE_FILE: &str = "subnets.json";
/// Locked exclusively around every read-modify-write of [`STATE_FILE`].
const LOCK_FILE: &str = "subnets.lock";
/// The prefix length of every leased subnet.
const SUBNET_PREFIX: u8 = 24;
/// The first and last host number handed out by DHCP: below are free for static addresses
/// (`.1` is the gateway), above is the broadcast address's neighbourhood, left alone.
const DHCP_HOSTS: (u8, u8) = (100, 199);

/// The addresses subnets are leased from: a CIDR block of /24s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// The first address, host bits clear.
    base: u32,
    /// At most [`SUBNET_PREFIX`].
    prefix: u8,
}

impl Range {
    /// 10.208.0.0/12: 10.208.0.0/24 to 10.223.255.0/24. Inside 10/8, away from the low
    /// 10.0-10.2 blocks that home and office networks favour.
    pub const DEFAULT: Range = Range {
        base: u32::from_be_bytes([10, 208, 0, 0]),
        prefix: 12,
    };

    /// The pool `VMTEST_SUBNET_POOL` names, or [`Range::DEFAULT`] when unset or empty.
    pub fn from_env() -> Result<Range> {
        match std::env::var(POOL_VAR) {
            Ok(text) if !text.trim().is_empty() => Range::parse(&text),
            _ => Ok(Range::DEFAULT),
        }
    }

    /// Parses `A.B.C.D/N` with N at most 24 and the host bits of the address clear.
    pub fn parse(text: &str) -> Result<Range> {
        let text = text.trim();
        let bad = |why: &str| Error::Invalid {
            what: "VMTEST_SUBNET_POOL",
            message: format!(
                "`{text}`: {why}; expected an IPv4 block in CIDR form with a prefix of at most \
                 {SUBNET_PREFIX}, such as `10.208.0.0/12` (the default: 4096 /24 subnets)"
            ),
        };
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("no `/` and prefix length"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| bad("not an IPv4 address before the `/`"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= SUBNET_PREFIX)
            .ok_or_else(|| bad("the prefix length must be a number from 0 to 24"))?;
        let base = u32::from(address);
        let mask = mask(prefix);
        if base & !mask != 0 {
            return Err(bad(&format!(
                "host bits are set (did you mean `{}/{prefix}`?)",
                Ipv4Addr::from(base & mask)
            )));
        }
        Ok(Range { base, prefix })
    }

    /// How many /24 subnets the pool holds.
    pub fn len(&self) -> u32 {
        1 << (SUBNET_PREFIX - self.prefix)
    }

    /// The network address of subnet `index` (from 0).
    fn subnet(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + (index << (32 - SUBNET_PREFIX)))
    }

    /// The index of the subnet whose network address is `network`, if it is in the pool.
    fn index_of(&self, network: Ipv4Addr) -> Option<u32> {
        let n = u32::from(network);
        (n & mask(self.prefix) == self.base && n & !mask(SUBNET_PREFIX) == 0)
            .then(|| (n - self.base) >> (32 - SUBNET_PREFIX))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The netmask of a prefix length.
fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// Leases the lowest free subnet of the pool (`VMTEST_SUBNET_POOL`, else 10.208.0.0/12) for the
/// segment `segment`; dropping the lease returns it. Blocks only for the short locked update.
pub(crate) fn lease(segment: &str) -> Result<SubnetLease> {
    Pool::default()
        .with_range(Range::from_env()?)
        .lease(segment)
}

/// Drops the entries of dead owners (the sweeper's part); returns how many. Never fails: a
/// state that cannot be read or written is left to the next lease, which says why.
pub(crate) fn release_dead() -> usize {
    Pool::default().release_dead().unwrap_or_else(|e| {
        tracing::warn!("releasing the subnets of dead test processes: {e}");
        0
    })
}

/// The pool of subnets whose state lives in a directory.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    dir: PathBuf,
    range: Range,
}

impl Default for Pool {
    /// The pool in the run directory, with the default range (see [`Pool::with_range`] and
    /// [`Range::from_env`]).
    fn default() -> Pool {
        Pool::at(crate::host::paths::run_dir())
    }
}

impl Pool {
    /// The pool whose state lives in `dir` (created when first needed), with the default range.
    pub fn at(dir: impl Into<PathBuf>) -> Pool {
        Pool {
            dir: dir.into(),
            range: Range::DEFAULT,
        }
    }

    /// The same pool, leasing from `range`. Entries are keyed by network address, so processes
    /// leasing from different (even overlapping) ranges of one directory still never collide.
    pub fn with_range(self, range: Range) -> Pool {
        Pool { range, ..self }
    }

    /// See [`lease`].
    pub fn lease(&self, segment: &str) -> Result<SubnetLease> {
        let me = ProcessId::current();
        let network = self.locked(|state| {
            state.prune();
            let taken: std::collections::BTreeSet<u32> = state
                .subnets
                .iter()
                .filter_map(|e| self.range.index_of(e.network))
                .collect();
            let free = (0..self.range.len()).find(|i| !taken.contains(i));
            let Some(index) = free else {
                return Err(Error::Network {
                    what: format!("leasing a subnet for segment {segment}"),
                    message: format!(
                        "all {} /24 subnets of the pool {} are in use by running segments; end \
                         some tests, or set {POOL_VAR} to a larger or another CIDR block \
                         (prefix at most {SUBNET_PREFIX}, e.g. 10.208.0.0/12)",
                        taken.len(),
                        self.range
                    ),
                });
            };
            let network = self.range.subnet(index);
            state.subnets.push(Entry {
                network,
                owner: me.clone(),
                segment: segment.to_owned(),
                since_unix_ms: now_unix_ms(),
            });
            Ok(network)
        })??;
        Ok(SubnetLease {
            store: store_at(&self.dir),
            network,
            segment: segment.to_owned(),
        })
    }

    /// See [`release_dead`].
    pub fn release_dead(&self) -> Result<usize> {
        self.locked(State::prune)
    }

    /// Runs `change` on the state under the lock, writing it back if it changed.
    fn locked<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T> {
        store_at(&self.dir).locked(change)
    }
}

/// A /24 for one segment, held until dropped. Dropping returns it at once (a short locked
/// write; never panics); if the process dies instead, the next lease reclaims it.
#[derive(Debug)]
pub(crate) struct SubnetLease {
    store: Store,
    network: Ipv4Addr,
    segment: String,
}

impl SubnetLease {
    /// The network address, `10.208.N.0`.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length: always 24.
    pub fn prefix(&self) -> u8 {
        SUBNET_PREFIX
    }

    /// The netmask, `255.255.255.0`.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(SUBNET_PREFIX))
    }

    /// The bridge's address, `.1`: the segment's DHCP, TFTP and HTTP server.
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }

    /// Host `n` of the subnet (`.n`). Numbers below 100 are never handed out by DHCP, so
    /// 2..=99 are free for static addresses; 0 and 255 are the network and broadcast addresses.
    pub fn host(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | u32::from(n))
    }

    /// The first and last address DHCP hands out: `.100` to `.199`.
    pub fn dhcp_range(&self) -> (Ipv4Addr, Ipv4Addr) {
        (self.host(DHCP_HOSTS.0), self.host(DHCP_HOSTS.1))
    }
}

impl fmt::Display for SubnetLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, SUBNET_PREFIX)
    }
}

impl Drop for SubnetLease {
    fn drop(&mut self) {
        let me = ProcessId::current();
        let result = self.store.locked(|state| {
            state
                .subnets
                .retain(|e| !(e.network == self.network && &e.owner == me));
        });
        if let Err(e) = result {
            // The entry stays until this process is dead, then the next lease reclaims it.
            tracing::warn!("returning subnet {self} of segment {}: {e}", self.segment);
        }
    }
}

/// One leased subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The network address: the key (an index would mean different things in processes with
    /// different pools).
    network: Ipv4Addr,
    owner: ProcessId,
    segment: String,
    since_unix_ms: u64,
}

/// The content of `subnets.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct State {
    version: u32,
    subnets: Vec<Entry>,
}

impl State {
    /// Drops the entries of dead owners; returns how many.
    fn prune(&mut self) -> usize {
        let before = self.subnets.len();
        self.subnets.retain(|e| e.owner.is_alive());
        before - self.subnets.len()
    }
}

impl Document for State {
    const VERSION: u32 = 1;
    const WHAT: &'static str = "the subnet pool";
    // A newer vmtest's leases could not be honoured.
    const NEWER: Newer = Newer::Refuse;
    fn version(&self) -> u32 {
        self.version
    }
    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
}

/// The pool's state file and its lock, in a directory.
type Store = store::Store<State>;

fn store_at(dir: &Path) -> Store {
    Store::new(dir, STATE_FILE, LOCK_FILE)
}

#[cfg(test)]
mod tests;
