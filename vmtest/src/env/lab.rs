//! A running environment: its keys, networks and VMs, brought up phase by phase from its
//! declaration, and taken down in reverse.
//!
//! Every network and VM is an ordinary [`Segment`] and [`Vm`], each with its own ledger entry
//! written before it exists; the environment adds one entry of its own for its directory (the
//! keys' files). So whatever ends the owner — `Env::down`, a drop, a panic, `kill -9` — the
//! teardown or the next sweep removes each of them, the same way as for any test's VMs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::file::{EnvDecl, NetworkDecl, VmDecl};
use super::graph::Node;
use super::template::Pos;
use crate::error::{Error, IoContext, Result};
use crate::net::segment::Segment;
use crate::spec::{Dhcp, Network, PxeBoot, SegmentSpec, VmSpec};
use crate::state::ledger::{Claim, Kind, Resource};
use crate::vm::keep::Keep;
use crate::vm::{Context, Vm};

mod attach;
mod keys;
mod provision;
mod reload;
mod values;

pub(crate) use attach::Published;

pub use keys::KeyPair;

/// A running environment, declared in `vmtest.toml` as `[env.NAME]` (see
/// `docs/environments.md`): keys, networks and VMs, brought up in the order their references
/// and network memberships require, independent ones at once.
///
/// ```no_run
/// # async fn t() -> vmtest::Result<()> {
/// let env = vmtest::Env::up("router-lab").await?;
/// let router = env.vm("router")?;
/// let lan1 = env.network("lan1")?;
/// println!("router at {} on {}", router.ip_on(lan1).await?, lan1.name());
/// env.down().await;
/// # Ok(()) }
/// ```
///
/// Dropping it tears everything down, VMs first, in the reverse of the order they came up.
///
/// A test can have one brought up and taken down around its body:
/// `#[vmtest(env = "router-lab")] async fn t(env: &Env)` (see `docs/environments.md`).
pub struct Env {
    name: String,
    decl: Arc<EnvDecl>,
    test: String,
    artifacts: Option<PathBuf>,
    keep: Keep,
    keys: BTreeMap<String, KeyPair>,
    /// Segments of isolated and PXE networks; user-mode networks have none.
    networks: BTreeMap<String, Segment>,
    /// In the order they came up; dropped in reverse.
    vms: Mutex<Vec<(String, Arc<Vm>)>>,
    /// The boot budget of all its declared VMs, reserved as one before the first boots
    /// (`None`: the budget is off, or the VMs are another process's).
    _budget: Option<crate::state::budget::Reservation>,
    /// The declarations of VMs started again by [`Env::reload`], and how many times each was.
    reloaded: Mutex<BTreeMap<String, (VmDecl, u32)>>,
    /// Shared by several tests (`#[vmtest(env = "NAME", shared)]`), here or from another
    /// process: nothing is added to it.
    shared: bool,
    /// The environment's directory (keys): removed last, with its ledger entry.
    _dir: EnvDir,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("name", &self.name)
            .field("networks", &self.networks.keys().collect::<Vec<_>>())
            .field("vms", &self.vm_names())
            .finish_non_exhaustive()
    }
}

/// The environment's directory and the ledger entry naming it (`None`: another process owns
/// both). Field order is drop order.
struct EnvDir {
    path: PathBuf,
    _claim: Option<Claim>,
}

impl Drop for EnvDir {
    fn drop(&mut self) {
        if self._claim.is_some() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Env {
    /// Brings up the environment `name` of the project file (`vmtest.toml`, found as for
    /// images): checks the whole declaration first (nothing is created if any part is wrong),
    /// then keys, networks and VMs phase by phase, each VM provisioned once ready. On any
    /// error, what was created so far is torn down (unless `VMTEST_KEEP` keeps it) and the
    /// error names the resource or provisioning step that failed.
    pub async fn up(name: &str) -> Result<Env> {
        let decl = super::file::load(name)?;
        Env::up_from(decl, Context::guess()?).await
    }

    /// [`Env::up`] for the environment `name` declared in the file at `path` (a project file
    /// of another directory, or one written by a test), whatever the project file is.
    pub async fn up_from_file(path: impl AsRef<Path>, name: &str) -> Result<Env> {
        let decl = super::file::read(path.as_ref(), name)?;
        Env::up_from(decl, Context::guess()?).await
    }

    /// [`Env::up_from_file`], recording `label` as the test of every ledger entry of the
    /// environment (its VMs, segments and directory) instead of the test running on this
    /// thread: a process that owns an environment outside any test (`vmtest-runner up`) names
    /// it so that `vmtest-runner list` and a sweep's report say whose it is. The label is also
    /// the name of its artifacts directory.
    ///
    /// ```no_run
    /// # async fn t() -> vmtest::Result<()> {
    /// let env = vmtest::Env::up_from_file_as(
    ///     "/src/project/vmtest.toml",
    ///     "lab",
    ///     "env lab of /src/project/vmtest.toml",
    /// )
    /// .await?;
    /// let names: Vec<String> = env.vms().iter().map(|(_, vm)| vm.name().to_owned()).collect();
    /// println!("ledger names: {names:?}");
    /// env.down().await;
    /// # Ok(()) }
    /// ```
    pub async fn up_from_file_as(path: impl AsRef<Path>, name: &str, label: &str) -> Result<Env> {
        let decl = super::file::read(path.as_ref(), name)?;
        let mut cx = Context::guess()?;
        cx.test = label.to_owned();
        cx.artifacts = crate::host::test::artifacts_dir(label);
        Env::up_from(decl, cx).await
    }

    /// The environments the project file at `path` declares (its `[env.NAME]` tables), in the
    /// order they are written. Only the names are read: a mistake inside an environment's body
    /// is reported when that environment comes up.
    ///
    /// ```no_run
    /// # fn t() -> vmtest::Result<()> {
    /// for name in vmtest::Env::declared("vmtest.toml")? {
    ///     println!("{name}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn declared(path: impl AsRef<Path>) -> Result<Vec<String>> {
        super::file::names(path.as_ref())
    }

    pub(crate) async fn up_from(decl: EnvDecl, cx: Context) -> Result<Env> {
        let phases = super::graph::phases(&decl)?;
        let decl = Arc::new(decl);
        let artifacts = cx.artifacts.map(|a| a.join(format!("env-{}", decl.name)));
        let budget = reserve_all(&decl, &cx.test).await?;
        let dir = EnvDir::create(&decl.name, &cx.test)?;
        let mut env = Env {
            name: decl.name.clone(),
            decl: decl.clone(),
            test: cx.test,
            artifacts,
            keep: cx.keep,
            keys: BTreeMap::new(),
            networks: BTreeMap::new(),
            vms: Mutex::new(Vec::new()),
            _budget: budget,
            reloaded: Mutex::new(BTreeMap::new()),
            shared: false,
            _dir: dir,
        };
        for phase in phases {
            env.start_phase(&phase).await?;
        }
        Ok(env)
    }

    /// Starts the nodes of one phase at once: none depends on another.
    async fn start_phase(&mut self, phase: &[Node]) -> Result<()> {
        let mut segments = tokio::task::JoinSet::new();
        let mut vms = tokio::task::JoinSet::new();
        for node in phase {
            match node {
                Node::Key(name) => {
                    let decl = find(&self.decl.keys, name, |k| &k.name)?;
                    let key = keys::make_key(&self._dir.path, name, decl.kind).await?;
                    self.keys.insert(name.clone(), key);
                }
                Node::Network(name) => {
                    let decl = find(&self.decl.networks, name, |n| &n.name)?;
                    let Some(spec) = self.segment_spec(decl)? else {
                        continue;
                    };
                    let (test, artifacts) = (self.test.clone(), self.artifacts.clone());
                    let name = name.clone();
                    segments.spawn(async move {
                        (name, Segment::start_for(spec, test, artifacts).await)
                    });
                }
                Node::Vm(name) => {
                    let decl = find(&self.decl.vms, name, |v| &v.name)?.clone();
                    let (spec, cx) = self.prepare_vm(&decl, &decl.name).await?;
                    vms.spawn(async move {
                        let vm = Vm::boot_in(spec, cx).await;
                        (decl, vm)
                    });
                }
            }
        }
        let mut first_error = None;
        while let Some(joined) = segments.join_next().await {
            match joined.map_err(runtime_error).and_then(|(n, s)| Ok((n, s?))) {
                Ok((name, segment)) => {
                    self.networks.insert(name, segment);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        while let Some(joined) = vms.join_next().await {
            match joined.map_err(runtime_error) {
                Ok((decl, Ok(vm))) => {
                    let vm = Arc::new(vm);
                    self.vms.lock().unwrap().push((decl.name.clone(), vm));
                }
                Ok((decl, Err(e))) => {
                    first_error.get_or_insert(in_vm(&decl, e));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // Provisioning after the whole phase is up: a later phase may refer to what it set up.
        let started: Vec<(String, Arc<Vm>)> = self.vms.lock().unwrap().clone();
        for node in phase {
            if let Node::Vm(name) = node {
                let decl = find(&self.decl.vms, name, |v| &v.name)?;
                let vm = started
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, vm)| vm.clone())
                    .expect("a VM of this phase came up");
                self.run_provisioning(decl, &vm).await?;
            }
        }
        Ok(())
    }

    /// What a network's segment is made of (`None`: the user-mode network, which is each
    /// VM's own).
    fn segment_spec(&self, decl: &NetworkDecl) -> Result<Option<SegmentSpec>> {
        let mut spec = match decl.kind {
            Network::User => return Ok(None),
            Network::Isolated => SegmentSpec::isolated(),
            Network::Pxe => {
                let pxe = decl.pxe.as_ref();
                let mut payload = match pxe.map(|p| (&p.kernel, &p.initrd, &p.script)) {
                    Some((Some(kernel), Some(initrd), _)) => PxeBoot::kernel(kernel, initrd),
                    Some((Some(kernel), None, _)) => PxeBoot::kernel_only(kernel),
                    Some((None, _, Some(script))) => {
                        let text = std::fs::read_to_string(script)
                            .context(|| format!("reading the iPXE script {}", script.display()))?;
                        PxeBoot::script(text)
                    }
                    _ => PxeBoot::image(),
                };
                if let Some(files) = pxe.and_then(|p| p.files.as_ref()) {
                    payload = payload.dir(files);
                }
                if let Some(cmdline) = pxe.and_then(|p| p.cmdline.as_ref()) {
                    for arg in self.render(cmdline)?.split_whitespace() {
                        payload = payload.cmdline(arg);
                    }
                }
                SegmentSpec::pxe(payload)
            }
        };
        spec = spec
            .capture(decl.capture)
            .dhcp(Dhcp::new().router(decl.dhcp_router).dns(decl.dhcp_dns));
        Ok(Some(spec))
    }

    /// The VM's spec and context, its texts rendered with what is known now; `artifacts` names
    /// its directory in the environment's artifacts.
    async fn prepare_vm(&self, decl: &VmDecl, artifacts: &str) -> Result<(VmSpec, Context)> {
        let mut spec = VmSpec::new()
            .image(decl.image.clone())
            .management(decl.management)
            .readiness(decl.ready.clone());
        if let Some(mib) = decl.memory_mib {
            spec = spec.memory_mib(mib);
        }
        if let Some(cpus) = decl.cpus {
            spec = spec.cpus(cpus);
        }
        if let Some(mib) = decl.disk_mib {
            spec = spec.disk_mib(mib);
        }
        for &mib in &decl.disks {
            spec = spec.blank_disk(mib);
        }
        if let Some(timeout) = decl.boot_timeout {
            spec = spec.boot_timeout(timeout);
        }
        for &port in &decl.forwards {
            spec = spec.forward(port);
        }
        if let Some(user_data) = &decl.user_data {
            let values = self.values_for(user_data).await?;
            spec = spec.user_data(user_data.pos().to_string(), user_data.render(&values)?);
        }
        for arg in &decl.kernel_args {
            let values = self.values_for(arg).await?;
            spec = spec.kernel_arg(arg.render(&values)?);
        }
        let mut segments = Vec::new();
        for (network, pos) in &decl.nics {
            match self.networks.get(network) {
                Some(segment) => segments.push(segment.clone()),
                None => {
                    return Err(at(
                        pos,
                        format!("network {network} of VM {} is not up", decl.name),
                    ))
                }
            }
        }
        Ok(self.on_segments(artifacts, spec, segments))
    }

    /// The spec and context of a VM with a NIC on each of `segments` (the first its own), or on
    /// the user-mode network only; `artifacts` names its directory in the artifacts.
    fn on_segments(
        &self,
        artifacts: &str,
        spec: VmSpec,
        segments: Vec<Segment>,
    ) -> (VmSpec, Context) {
        let mut segments = segments.into_iter();
        let segment = segments.next();
        let spec = spec.network(segment.as_ref().map_or(Network::User, Segment::kind));
        let cx = Context {
            test: self.test.clone(),
            artifacts: self.artifacts.as_ref().map(|a| a.join(artifacts)),
            keep: self.keep,
            segment,
            more_segments: segments.collect(),
            // Its share is in the environment's reservation. A VM added at run time boots
            // within it too: waiting for a share of its own beside it would wait on the
            // environment itself, which holds what it reserved until it goes.
            prepaid: true,
        };
        (spec, cx)
    }

    fn find_vm(&self, name: &str) -> Option<Arc<Vm>> {
        let vms = self.vms.lock().unwrap();
        vms.iter()
            .find(|(n, _)| n == name)
            .map(|(_, vm)| vm.clone())
    }

    fn vm_names(&self) -> Vec<String> {
        let vms = self.vms.lock().unwrap();
        vms.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The environment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM declared (or added) as `name`: the same [`Vm`] handle as everywhere.
    pub fn vm(&self, name: &str) -> Result<Arc<Vm>> {
        self.find_vm(name).ok_or_else(|| Error::Invalid {
            what: "vm",
            message: format!(
                "environment {} has no VM {name}; its VMs: {}",
                self.name,
                self.vm_names().join(", ")
            ),
        })
    }

    /// The VMs, in the order they came up, by their names in the environment.
    pub fn vms(&self) -> Vec<(String, Arc<Vm>)> {
        self.vms.lock().unwrap().clone()
    }

    /// Takes the VMs out of the environment, in the order they came up: its teardown no longer
    /// touches them (`#[vmtest(env)]` keeps them this way).
    pub(crate) fn take_vms(&self) -> Vec<(String, Arc<Vm>)> {
        std::mem::take(&mut *self.vms.lock().unwrap())
    }

    /// Where its evidence goes: `env-NAME` in the test's artifacts, a directory a VM.
    pub(crate) fn artifacts_dir(&self) -> Option<&Path> {
        self.artifacts.as_deref()
    }

    /// The segment of the isolated or PXE network `name`: leases, requests, capture.
    pub fn network(&self, name: &str) -> Result<&Segment> {
        self.networks.get(name).ok_or_else(|| Error::Invalid {
            what: "network",
            message: format!(
                "environment {} has no isolated or PXE network {name}; its segments: {}",
                self.name,
                self.networks.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// The isolated and PXE networks by name, each with its segment, in name order
    /// (`kind = "user"` networks have none: each VM's user-mode network is its own).
    ///
    /// ```no_run
    /// # async fn t(env: &vmtest::Env) -> vmtest::Result<()> {
    /// for (vm_name, vm) in env.vms() {
    ///     for (network, segment) in env.networks() {
    ///         if vm.mac_on(segment).is_some() {
    ///             println!("{vm_name} on {network}: {}", vm.ip_on(segment).await?);
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn networks(&self) -> Vec<(&str, &Segment)> {
        self.networks.iter().map(|(n, s)| (n.as_str(), s)).collect()
    }

    /// The environment's own directory on the host (mode 0700, in the run directory,
    /// `vmtest::dirs::run()`): its generated keys live here. It is a resource of the
    /// environment's ledger entry, so it is removed with the environment — by
    /// [`Env::down`], a drop, or the sweep after its owner died — which makes it the place for
    /// whatever else should last exactly as long as the environment (`vmtest-runner up` writes
    /// its `state.json` here).
    ///
    /// ```no_run
    /// # fn t(env: &vmtest::Env) -> std::io::Result<()> {
    /// std::fs::write(env.dir().join("notes.txt"), "up\n")?;
    /// # Ok(()) }
    /// ```
    pub fn dir(&self) -> &Path {
        &self._dir.path
    }

    /// The key pair `name`.
    pub fn key(&self, name: &str) -> Result<&KeyPair> {
        self.keys.get(name).ok_or_else(|| Error::Invalid {
            what: "key",
            message: format!(
                "environment {} has no key {name}; its keys: {}",
                self.name,
                self.keys.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Boots one more VM into the running environment, with a NIC on each of `networks` (names
    /// of its isolated or PXE networks, in order). It joins the environment's teardown.
    ///
    /// ```no_run
    /// # async fn t(env: &vmtest::Env) -> vmtest::Result<()> {
    /// let extra = env.add_vm("extra", vmtest::VmSpec::new(), &["lan1"]).await?;
    /// extra.sh("ip -4 addr").succeed().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Not on a shared environment (`#[vmtest(env = "NAME", shared)]`): the VM would join every
    /// test's environment; an error says so.
    pub async fn add_vm(&self, name: &str, spec: VmSpec, networks: &[&str]) -> Result<Arc<Vm>> {
        if self.shared {
            return Err(self.refused_when_shared("adding a VM (Env::add_vm)"));
        }
        if self.find_vm(name).is_some() {
            return Err(Error::Invalid {
                what: "vm",
                message: format!("environment {} has a VM {name} already", self.name),
            });
        }
        let mut segments = Vec::new();
        for network in networks {
            segments.push(self.network(network)?.clone());
        }
        let (spec, cx) = self.on_segments(name, spec, segments);
        let vm = Arc::new(Vm::boot_in(spec, cx).await?);
        self.vms.lock().unwrap().push((name.to_owned(), vm.clone()));
        Ok(vm)
    }

    /// Tears the environment down: VMs in the reverse of the order they came up, then the
    /// networks, then its keys. Dropping it does the same.
    pub async fn down(self) {
        for (_, vm) in self.take_vms().into_iter().rev() {
            if let Ok(vm) = Arc::try_unwrap(vm) {
                vm.destroy().await;
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for vm in self.take_vms().into_iter().rev() {
            drop(vm);
        }
        // Networks after the VMs whose taps they hold; the directory last (field order).
        std::mem::take(&mut self.networks);
    }
}

impl EnvDir {
    fn create(env: &str, test: &str) -> Result<EnvDir> {
        let run_dir = crate::host::paths::run_dir();
        let claim = Claim::new(Kind::Env, test, |name| {
            vec![Resource::Dir {
                path: run_dir.join(name),
            }]
        })?;
        let path = run_dir.join(claim.name());
        std::fs::create_dir(&path)
            .context(|| format!("creating the directory of environment {env}"))?;
        crate::host::files::restrict(&path)?;
        Ok(EnvDir {
            path,
            _claim: Some(claim),
        })
    }
}

/// The boot budget of every VM `decl` declares, reserved as one request (waiting, if it must,
/// until all of them fit at once): VMs booted one by one could leave two environments each
/// holding part of what it needs and waiting for the rest, forever.
async fn reserve_all(
    decl: &EnvDecl,
    test: &str,
) -> Result<Option<crate::state::budget::Reservation>> {
    if crate::state::budget::Limits::from_env()?.is_none() {
        return Ok(None);
    }
    let (mut memory_mib, mut cpus) = (0u64, 0u32);
    for vm in &decl.vms {
        let mut spec = VmSpec::new().image(vm.image.clone());
        if let Some(mib) = vm.memory_mib {
            spec = spec.memory_mib(mib);
        }
        if let Some(n) = vm.cpus {
            spec = spec.cpus(n);
        }
        let (mib, n) = crate::vm::budget_of(&spec).await?;
        memory_mib += u64::from(mib);
        cpus += n;
    }
    let label = format!("environment {} of {test}", decl.name);
    crate::vm::blocking(move || crate::state::budget::acquire(&label, memory_mib, cpus))
        .await
        .map(Some)
}

fn find<'a, T>(items: &'a [T], name: &str, key: impl Fn(&T) -> &String) -> Result<&'a T> {
    items
        .iter()
        .find(|t| key(t) == name)
        .ok_or_else(|| Error::Invalid {
            what: "environment",
            message: format!("{name} is not declared"),
        })
}

fn at(pos: &Pos, message: String) -> Error {
    Error::Environment {
        file: pos.file.clone(),
        line: pos.line,
        column: pos.column,
        message,
    }
}

fn in_vm(decl: &VmDecl, e: Error) -> Error {
    tracing::error!(vm = %decl.name, "VM {} of the environment did not come up: {e}", decl.name);
    e
}

fn runtime_error(e: tokio::task::JoinError) -> Error {
    Error::Io {
        context: "a task of the environment's start".into(),
        source: std::io::Error::other(e.to_string()),
    }
}
