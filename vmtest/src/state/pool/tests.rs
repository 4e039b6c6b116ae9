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
