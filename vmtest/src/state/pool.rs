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
mod tests {
    use std::collections::BTreeSet;
    use std::fs::File;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    const VERSION: u32 = <State as Document>::VERSION;

    /// Set for the copies of this test binary that `processes_never_share_a_subnet` starts: the
    /// pool directory the child leases from.
    const CHILD_DIR_VAR: &str = "VMTEST_POOL_TEST_CHILD_DIR";

    fn state(dir: &Path) -> State {
        store_at(dir).read().unwrap().0
    }

    fn net(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    /// This process, as if it had started one tick later: a process that is gone.
    fn dead() -> ProcessId {
        let mut dead = ProcessId::current().clone();
        dead.start_ticks += 1;
        dead
    }

    #[test]
    fn a_lease_has_the_addresses_a_segment_needs() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Pool::at(dir.path()).lease("vtseg1").unwrap();
        assert_eq!(lease.network(), net("10.208.0.0"));
        assert_eq!(lease.prefix(), 24);
        assert_eq!(lease.netmask(), net("255.255.255.0"));
        assert_eq!(lease.gateway(), net("10.208.0.1"));
        assert_eq!(lease.host(7), net("10.208.0.7"));
        assert_eq!(
            lease.dhcp_range(),
            (net("10.208.0.100"), net("10.208.0.199"))
        );
        assert_eq!(lease.to_string(), "10.208.0.0/24");
        let held = state(dir.path());
        assert_eq!(held.version, VERSION);
        assert_eq!(held.subnets.len(), 1);
        assert_eq!(&held.subnets[0].owner, ProcessId::current());
        assert_eq!(held.subnets[0].segment, "vtseg1");
    }

    #[test]
    fn two_leases_differ_and_a_returned_subnet_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::at(dir.path());
        let a = pool.lease("a").unwrap();
        let b = pool.lease("b").unwrap();
        assert_eq!(
            (a.network(), b.network()),
            (net("10.208.0.0"), net("10.208.1.0"))
        );
        drop(a);
        assert_eq!(state(dir.path()).subnets.len(), 1);
        let c = pool.lease("c").unwrap();
        assert_eq!(c.network(), net("10.208.0.0"), "the lowest free subnet");
        drop((b, c));
        assert!(state(dir.path()).subnets.is_empty());
        assert!(!dir
            .path()
            .join(format!(".{STATE_FILE}.{}.tmp", std::process::id()))
            .exists());
    }

    #[test]
    fn a_dead_owners_subnet_is_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let mut leftover = State {
            version: VERSION,
            subnets: vec![
                Entry {
                    network: net("10.208.0.0"),
                    owner: dead(),
                    segment: "killed".into(),
                    since_unix_ms: 0,
                },
                Entry {
                    network: net("10.208.1.0"),
                    owner: ProcessId::current().clone(),
                    segment: "alive".into(),
                    since_unix_ms: 0,
                },
            ],
        };
        store_at(dir.path()).write(&mut leftover).unwrap();
        let lease = Pool::at(dir.path()).lease("new").unwrap();
        assert_eq!(lease.network(), net("10.208.0.0"));
        let segments: Vec<String> = state(dir.path())
            .subnets
            .into_iter()
            .map(|e| e.segment)
            .collect();
        assert_eq!(segments, ["alive", "new"]);
    }

    #[test]
    fn release_dead_drops_only_dead_owners() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::at(dir.path());
        let live = pool.lease("live").unwrap();
        let mut s = state(dir.path());
        s.subnets.push(Entry {
            network: net("10.208.5.0"),
            owner: dead(),
            segment: "killed".into(),
            since_unix_ms: 0,
        });
        store_at(dir.path()).write(&mut s).unwrap();
        assert_eq!(pool.release_dead().unwrap(), 1);
        assert_eq!(pool.release_dead().unwrap(), 0);
        assert_eq!(state(dir.path()).subnets.len(), 1);
        drop(live);
    }

    #[test]
    fn an_exhausted_pool_says_how_many_are_used_and_how_to_widen_it() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::at(dir.path()).with_range(Range::parse("10.99.0.0/23").unwrap());
        let a = pool.lease("a").unwrap();
        let b = pool.lease("b").unwrap();
        assert_eq!(
            (a.network(), b.network()),
            (net("10.99.0.0"), net("10.99.1.0"))
        );
        let e = pool.lease("c").unwrap_err().to_string();
        assert!(
            e.contains("all 2 /24 subnets of the pool 10.99.0.0/23"),
            "{e}"
        );
        assert!(
            e.contains("VMTEST_SUBNET_POOL") && e.contains("segment c"),
            "{e}"
        );
        drop(a);
        assert_eq!(pool.lease("c").unwrap().network(), net("10.99.0.0"));
    }

    #[test]
    fn pools_sharing_a_directory_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let wide = Pool::at(dir.path());
        let narrow = Pool::at(dir.path()).with_range(Range::parse("10.208.0.0/23").unwrap());
        let a = wide.lease("a").unwrap();
        let b = narrow.lease("b").unwrap();
        assert_eq!(b.network(), net("10.208.1.0"));
        assert!(narrow.lease("c").is_err());
        drop((a, b));
    }

    #[test]
    fn the_pool_range_is_parsed_strictly() {
        let range = |t: &str| Range::parse(t);
        assert_eq!(range("10.208.0.0/12").unwrap(), Range::DEFAULT);
        assert_eq!(Range::DEFAULT.len(), 4096);
        assert_eq!(Range::DEFAULT.to_string(), "10.208.0.0/12");
        assert_eq!(
            Range::DEFAULT.subnet(4095),
            net("10.223.255.0"),
            "the last subnet"
        );
        assert_eq!(range(" 192.168.7.0/24 ").unwrap().len(), 1);
        assert_eq!(range("172.16.0.0/16").unwrap().len(), 256);
        for text in [
            "10.208.0.0",
            "10.208.0.0/25",
            "10.208.0.0/x",
            "10.208.0/12",
            "10.209.0.0/12",
            "fd00::/64",
            "",
        ] {
            let e = range(text).unwrap_err().to_string();
            assert!(e.contains("VMTEST_SUBNET_POOL"), "{e}");
            assert!(
                e.contains("`10.208.0.0/12`"),
                "names the accepted form: {e}"
            );
        }
        let e = range("10.209.0.0/12").unwrap_err().to_string();
        assert!(e.contains("did you mean `10.208.0.0/12`"), "{e}");
    }

    #[test]
    fn index_of_maps_only_pool_subnets() {
        let r = Range::parse("10.208.0.0/22").unwrap();
        assert_eq!(r.index_of(net("10.208.3.0")), Some(3));
        assert_eq!(r.index_of(net("10.208.4.0")), None);
        assert_eq!(r.index_of(net("10.208.1.5")), None);
        assert_eq!(r.index_of(net("10.207.255.0")), None);
    }

    #[test]
    fn threads_leasing_at_once_get_distinct_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::at(dir.path());
        let leases: Vec<SubnetLease> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|t| {
                    let pool = &pool;
                    s.spawn(move || {
                        (0..4)
                            .map(|i| pool.lease(&format!("t{t}-{i}")).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: BTreeSet<Ipv4Addr> = leases.iter().map(|l| l.network()).collect();
        assert_eq!(distinct.len(), 64);
        assert_eq!(state(dir.path()).subnets.len(), 64);
        drop(leases);
        assert!(state(dir.path()).subnets.is_empty());
    }

    #[test]
    fn a_lease_waits_for_a_lock_held_through_another_open_file() {
        // Another process's flock is another open file description: one of our own stands in.
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::at(dir.path());
        drop(pool.lease("create the files").unwrap());
        let other = File::options()
            .write(true)
            .open(dir.path().join(LOCK_FILE))
            .unwrap();
        other.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let leasing = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let lease = pool.lease("waits").unwrap();
                tx.send(()).unwrap();
                lease
            })
        };
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "leased while another open file held the lock"
        );
        other.unlock().unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("leased once the lock was released");
        drop(leasing.join().unwrap());
    }

    /// Run as a child of `processes_never_share_a_subnet` (and a no-op otherwise): leases three
    /// subnets, prints them, and holds them until its stdin is closed.
    #[test]
    fn child_process_holds_leases() {
        let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
            return;
        };
        let pool = Pool::at(PathBuf::from(dir));
        let leases: Vec<SubnetLease> = (0..3)
            .map(|i| pool.lease(&format!("child-{i}")).unwrap())
            .collect();
        for lease in &leases {
            println!("LEASED {}", lease.network());
        }
        let _ = std::io::stdin().lines().count();
        drop(leases);
    }

    /// Child processes, killed and reaped however the test ends.
    struct Children(Vec<Child>);

    impl Drop for Children {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    #[test]
    fn processes_never_share_a_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let spawn = || -> Child {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "state::pool::tests::child_process_holds_leases",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR_VAR, dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut children = Children((0..4).map(|_| spawn()).collect());
        // Each child's output is read on a thread of its own, so that a child that never
        // prints fails the test at the timeout below instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        for child in &mut children.0 {
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in stdout.lines().map_while(|l| l.ok()) {
                    // libtest's "test NAME ... " may start the first line.
                    if let Some((_, address)) = line.split_once("LEASED ") {
                        let _ = tx.send(net(address.trim()));
                    }
                }
            });
        }
        let pool = Pool::at(dir.path());
        let mine: Vec<SubnetLease> = (0..3)
            .map(|i| pool.lease(&format!("parent-{i}")).unwrap())
            .collect();
        let mut all: Vec<Ipv4Addr> = mine.iter().map(|l| l.network()).collect();
        for _ in 0..12 {
            let leased = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the children did not all lease three subnets within a minute");
            all.push(leased);
        }
        // Every child holds its three now, and so do we.
        let distinct: BTreeSet<Ipv4Addr> = all.iter().copied().collect();
        assert_eq!(distinct.len(), 15, "{all:?}");
        assert_eq!(state(dir.path()).subnets.len(), 15);

        // A child killed while holding its leases leaks nothing: the next lease reclaims them.
        let mut killed = children.0.pop().unwrap();
        killed.kill().unwrap();
        killed.wait().unwrap();
        assert_eq!(pool.release_dead().unwrap(), 3);
        // The others return theirs when told to end (their stdin closes).
        for child in &mut children.0 {
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "a child never exited");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert_eq!(
            state(dir.path()).subnets.len(),
            3,
            "the children returned theirs"
        );
        drop(mine);
        assert!(state(dir.path()).subnets.is_empty());
    }
}
