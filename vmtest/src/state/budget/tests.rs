use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

const LIMITS: Limits = Limits {
    memory_mib: 1024,
    cpus: 2,
};

fn budget(dir: &tempfile::TempDir, limits: Limits) -> Budget {
    let mut budget = Budget::at(dir.path(), limits);
    budget.poll = (Duration::from_millis(5), Duration::from_millis(20));
    budget
}

fn state(dir: &tempfile::TempDir) -> State {
    Store::new(dir.path()).read().unwrap().0
}

/// This process, as if it had started one tick later: a process that is gone.
fn dead() -> ProcessId {
    let mut dead = ProcessId::current().clone();
    dead.start_ticks += 1;
    dead
}

fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    |name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn requests_are_granted_while_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    let first = b.try_acquire("a", 512, 1).unwrap().expect("fits");
    let second = b.try_acquire("b", 512, 1).unwrap().expect("fits");
    assert!(
        b.try_acquire("c", 1, 0).unwrap().is_none(),
        "no memory left"
    );
    assert!(b.try_acquire("c", 0, 1).unwrap().is_none(), "no vCPU left");
    drop(first);
    let third = b.try_acquire("c", 256, 1).unwrap().expect("fits again");
    assert_eq!(state(&dir).used(), (768, 2));
    drop((second, third));
}

#[test]
fn the_vms_of_one_test_never_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    // `vms(a, b)` of 2 vCPUs each on a budget of 2: both run, or the test never would.
    let a = b.try_acquire("t::two_vms", 512, 2).unwrap().expect("fits");
    let started = Instant::now();
    let second = b.acquire("t::two_vms", 512, 2).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "granted at once"
    );
    // Another test still waits for the budget.
    assert!(b.try_acquire("t::other", 1, 0).unwrap().is_none());
    drop((a, second));
    assert!(b.try_acquire("t::other", 1, 0).unwrap().is_some());
}

#[test]
fn a_request_larger_than_the_budget_runs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    let small = b.try_acquire("small", 128, 1).unwrap().expect("fits");
    assert!(
        b.try_acquire("big", 4096, 8).unwrap().is_none(),
        "too big to run next to another VM"
    );
    drop(small);
    let started = Instant::now();
    let big = b.acquire("big", 4096, 8).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "granted at once"
    );
    assert!(b.try_acquire("small", 1, 0).unwrap().is_none());
    drop(big);
    assert!(b.try_acquire("small", 1, 0).unwrap().is_some());
}

#[test]
fn dropping_a_reservation_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    let r = b.acquire("a", 1024, 2).unwrap();
    let held = state(&dir);
    assert_eq!(held.holders.len(), 1);
    assert_eq!(held.holders[0].vm, "a");
    assert_eq!(&held.holders[0].owner, ProcessId::current());
    assert!(held.waiting.is_empty());
    drop(r);
    let after = state(&dir);
    assert!(after.holders.is_empty() && after.waiting.is_empty());
    assert!(!dir
        .path()
        .join(format!(".{STATE_FILE}.{}.tmp", std::process::id()))
        .exists());
}

#[test]
fn a_disabled_budget_records_nothing() {
    let r = Reservation {
        held: None,
        waited: Duration::ZERO,
    };
    assert_eq!(r.waited(), Duration::ZERO);
    drop(r);
}

#[test]
fn dead_owners_hold_nothing_and_wait_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let claim = |ticket, vm: &str| Claim {
        ticket,
        owner: dead(),
        vm: vm.into(),
        memory_mib: 1024,
        cpus: 2,
        since_unix_ms: 0,
    };
    let mut leftover = State {
        next_ticket: 2,
        holders: vec![claim(0, "killed-holder")],
        waiting: vec![claim(1, "killed-waiter")],
        ..State::default()
    };
    Store::new(dir.path()).write(&mut leftover).unwrap();
    let b = budget(&dir, LIMITS);
    let r = b
        .try_acquire("a", 1024, 2)
        .unwrap()
        .expect("the dead owner's share is free, and the dead waiter is not ahead");
    let now = state(&dir);
    assert_eq!(now.holders.len(), 1);
    assert_eq!(now.holders[0].vm, "a");
    assert!(now.waiting.is_empty());
    assert_eq!(now.holders[0].ticket, 2, "tickets are never reused");
    drop(r);
}

#[test]
fn the_peak_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    assert_eq!(peak_in(dir.path()), Peak::default());
    let a = b.acquire("a", 256, 1).unwrap();
    let c = b.acquire("b", 512, 1).unwrap();
    drop((a, c));
    let big = b.acquire("big", 900, 2).unwrap();
    drop(big);
    assert_eq!(
        peak_in(dir.path()),
        Peak {
            vms: 2,
            memory_mib: 900,
            cpus: 2
        }
    );
}

#[test]
fn an_unreadable_state_is_started_afresh() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "{ not json").unwrap();
    assert_eq!(peak_in(dir.path()), Peak::default());
    let b = budget(&dir, LIMITS);
    drop(b.acquire("a", 1, 1).unwrap());
    assert_eq!(peak_in(dir.path()).vms, 1);
}

#[test]
fn the_environment_sizes_the_budget() {
    let limits = |pairs: &[(&str, &str)]| Limits::from_vars(vars(pairs));
    assert_eq!(
        limits(&[("VMTEST_BUDGET_MEMORY", "8G"), ("VMTEST_BUDGET_CPUS", "3")]).unwrap(),
        Some(Limits {
            memory_mib: 8192,
            cpus: 3
        })
    );
    for (text, mib) in [
        ("512M", 512),
        ("2048", 2048),
        ("4096MiB", 4096),
        ("2GiB", 2048),
        ("3g", 3072),
        (" 1 G ", 1024),
    ] {
        let got = limits(&[("VMTEST_BUDGET_MEMORY", text)]).unwrap().unwrap();
        assert_eq!(got.memory_mib, mib, "{text}");
    }
    let host = Limits::host();
    assert!(host.cpus >= 1 && host.memory_mib > 0);
    assert_eq!(limits(&[]).unwrap(), Some(host));
    assert_eq!(limits(&[("VMTEST_BUDGET", "")]).unwrap(), Some(host));
    assert_eq!(limits(&[("VMTEST_BUDGET", "on")]).unwrap(), Some(host));
    assert_eq!(limits(&[("VMTEST_BUDGET", "off")]).unwrap(), None);
    assert_eq!(
        limits(&[("VMTEST_BUDGET", "off"), ("VMTEST_BUDGET_CPUS", "bad")]).unwrap(),
        None,
        "off means off"
    );
}

#[test]
fn bad_values_say_what_is_accepted() {
    let error = |pairs: &[(&str, &str)]| {
        Limits::from_vars(vars(pairs))
            .expect_err("a bad value")
            .to_string()
    };
    for text in [
        "8T",
        "G",
        "-1",
        "1.5G",
        "0",
        "0G",
        "lots",
        "99999999999999999999",
    ] {
        let e = error(&[("VMTEST_BUDGET_MEMORY", text)]);
        assert!(e.contains("VMTEST_BUDGET_MEMORY"), "{e}");
        assert!(e.contains(&format!("`{}`", text.trim())), "{e}");
        assert!(e.contains("\"8G\"") && e.contains("\"4096M\""), "{e}");
    }
    for text in ["0", "two", "-2", "1.5"] {
        let e = error(&[("VMTEST_BUDGET_CPUS", text)]);
        assert!(e.contains("VMTEST_BUDGET_CPUS"), "{e}");
        assert!(e.contains("at least 1"), "{e}");
    }
    let e = error(&[("VMTEST_BUDGET", "maybe")]);
    assert!(e.contains("`off`"), "{e}");
}

#[test]
fn threads_never_hold_more_than_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(
        &dir,
        Limits {
            memory_mib: u64::MAX,
            cpus: 2,
        },
    );
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (b, now, most) = (b.clone(), Arc::clone(&now), Arc::clone(&most));
            std::thread::spawn(move || {
                let r = b.acquire(&format!("vm{i}"), 64, 1).unwrap();
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(running, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                now.fetch_sub(1, Ordering::SeqCst);
                drop(r);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2, "{most:?}");
    let peak = peak_in(dir.path());
    assert_eq!((peak.vms, peak.cpus), (2, 2), "{peak:?}");
    let end = state(&dir);
    assert!(end.holders.is_empty() && end.waiting.is_empty(), "{end:?}");
}

#[test]
fn first_come_first_served() {
    let dir = tempfile::tempdir().unwrap();
    let b = budget(&dir, LIMITS);
    let small = b.acquire("small", 128, 1).unwrap();
    let big = {
        let b = b.clone();
        std::thread::spawn(move || b.acquire("big", 512, 2).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&dir).waiting.is_empty() {
        assert!(Instant::now() < deadline, "the big request never queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        b.try_acquire("late", 128, 1).unwrap().is_none(),
        "fits, but an earlier request waits"
    );
    drop(small);
    let big = big.join().unwrap();
    assert!(big.waited() > Duration::ZERO);
    assert_eq!(state(&dir).holders[0].vm, "big");
    assert!(b.try_acquire("late", 128, 1).unwrap().is_none());
    drop(big);
    assert!(b.try_acquire("late", 128, 1).unwrap().is_some());
}

#[test]
fn a_waiter_that_gives_up_leaves_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let queued = Queued {
        store: store.clone(),
        ticket: 7,
        armed: true,
    };
    let mut waiting = State {
        next_ticket: 8,
        waiting: vec![Claim {
            ticket: 7,
            owner: ProcessId::current().clone(),
            vm: "a".into(),
            memory_mib: 1,
            cpus: 1,
            since_unix_ms: 0,
        }],
        ..State::default()
    };
    store.write(&mut waiting).unwrap();
    drop(queued);
    assert!(state(&dir).waiting.is_empty());
}

#[test]
fn the_waiting_line_says_why_and_what_to_do() {
    let line = waiting_line("vt1", 512, 1, &LIMITS, 1024, 2, 3);
    assert!(line.starts_with("vmtest: VM vt1 waits for the boot budget (1024 MiB, 2 vCPUs in use of 1024 MiB, 2 vCPUs"), "{line}");
    assert!(
        line.contains("VMTEST_BUDGET=off") && !line.contains('\n'),
        "{line}"
    );
}

#[test]
fn jitter_stays_in_range() {
    for _ in 0..100 {
        let d = jittered(POLL);
        assert!(d >= POLL.0 && d <= POLL.1, "{d:?}");
    }
}
