//! Shared VMs: one VM booted once and leased to every test that names it.
//!
//! `#[vmtest::fixture] fn NAME() -> VmSpec { ... }` declares a [`Fixture`]; `#[vmtest(fixture =
//! NAME)]` tests lease it. The VM boots at the first lease and is torn down after its last user:
//! at once when the custom harness has said how many tests will use it, else after a short
//! linger with no lease (plain `cargo test` cannot know whether another test still comes), and
//! at the latest when the process exits. It is booted and owned by a runtime of its own, so a
//! test's runtime ending does not cut the fixture's connections.
//!
//! Sharing is per test process: under nextest, where every test is its own process, each test
//! boots its own VM from the fixture's spec.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::teardown::Keep;
use crate::vm::Context;
use crate::{Result, Vm, VmSpec};

/// How long a fixture VM with no lease waits for another test before it is torn down.
const LINGER: Duration = Duration::from_secs(3);

/// A VM shared by several tests; declared with `#[vmtest::fixture]`.
pub struct Fixture {
    module_path: &'static str,
    name: &'static str,
    spec: fn() -> VmSpec,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    vm: Option<Arc<Vm>>,
    /// Leases out now.
    users: usize,
    /// Leases ever given back.
    served: usize,
    /// Bumped by every lease: a linger timer only fires if nothing leased meanwhile.
    generation: u64,
    /// Set by the custom harness: tear down right after this many leases were given back.
    expected: Option<usize>,
    boots: usize,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("path", &self.path())
            .finish()
    }
}

impl Fixture {
    /// A fixture whose VM `spec` describes; what `#[vmtest::fixture]` expands to.
    pub const fn new(module_path: &'static str, name: &'static str, spec: fn() -> VmSpec) -> Self {
        Fixture {
            module_path,
            name,
            spec,
            state: Mutex::new(State {
                vm: None,
                users: 0,
                served: 0,
                generation: 0,
                expected: None,
                boots: 0,
            }),
        }
    }

    /// `crate::module::name`.
    pub fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.name)
    }

    /// The spec of the fixture's VM.
    pub fn spec(&self) -> VmSpec {
        (self.spec)()
    }

    /// How many times this process booted the fixture's VM.
    pub fn boots(&self) -> usize {
        self.lock().boots
    }

    /// The custom harness knows how many selected tests use the fixture: the VM then goes as
    /// soon as the last of them is done, with no linger.
    pub fn expect_users(&self, n: usize) {
        self.lock().expected = Some(n);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases the VM, booting it first if no test holds it.
    pub(crate) async fn lease(&'static self) -> Result<Lease> {
        tokio::task::spawn_blocking(move || self.lease_blocking())
            .await
            .unwrap_or_else(|e| {
                Err(crate::Error::Io {
                    context: format!("leasing fixture {}", self.path()),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    fn lease_blocking(&'static self) -> Result<Lease> {
        // Holding the lock while booting makes concurrent first users wait for one boot.
        let mut state = self.lock();
        let vm = match &state.vm {
            Some(vm) => vm.clone(),
            None => {
                let cx = Context {
                    test: format!("fixture {}", self.path()),
                    artifacts: crate::artifacts::dir_for(&format!("fixture::{}", self.path())),
                    keep: Keep::Never,
                };
                let mut vm = runtime().block_on(Vm::boot_in((self.spec)(), cx))?;
                vm.set_home(runtime().handle().clone());
                let vm = Arc::new(vm);
                state.vm = Some(vm.clone());
                state.boots += 1;
                live().lock().unwrap_or_else(|p| p.into_inner()).push(self);
                register_exit_teardown();
                vm
            }
        };
        state.users += 1;
        state.generation += 1;
        Ok(Lease { fixture: self, vm })
    }

    fn release(&'static self) {
        let mut state = self.lock();
        state.users -= 1;
        state.served += 1;
        if state.users > 0 {
            return;
        }
        if state.expected.is_some_and(|n| state.served >= n) {
            let vm = state.vm.take();
            drop(state);
            drop(vm);
            return;
        }
        let generation = state.generation;
        drop(state);
        std::thread::spawn(move || {
            std::thread::sleep(LINGER);
            let mut state = self.lock();
            if state.users == 0 && state.generation == generation {
                let vm = state.vm.take();
                drop(state);
                drop(vm);
            }
        });
    }
}

/// A test's hold on a fixture's VM; given back when dropped.
pub(crate) struct Lease {
    fixture: &'static Fixture,
    vm: Arc<Vm>,
}

impl Lease {
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.fixture.release();
    }
}

/// The runtime fixture VMs are booted on, alive for the whole process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vmtest-fixtures")
            .enable_all()
            .build()
            .expect("vmtest: cannot start the fixtures' runtime")
    })
}

fn live() -> &'static Mutex<Vec<&'static Fixture>> {
    static LIVE: Mutex<Vec<&'static Fixture>> = Mutex::new(Vec::new());
    &LIVE
}

/// Fixtures still up when the process exits (libtest returns from `main` without waiting for
/// linger timers) are torn down from `atexit`, synchronously: QEMU killed, files and ledger
/// entry removed.
fn register_exit_teardown() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        let fixtures: Vec<&'static Fixture> = match live().try_lock() {
            Ok(mut live) => std::mem::take(&mut *live),
            Err(_) => return,
        };
        for fixture in fixtures {
            if let Ok(mut state) = fixture.state.try_lock() {
                drop(state.vm.take());
            }
        }
    }
    ONCE.call_once(|| {
        // SAFETY: registers a plain function; it only takes locks without blocking.
        unsafe { libc::atexit(at_exit) };
    });
}
