//! An environment shared across test processes: what its owner (a broker) publishes, and the
//! [`Env`] another test process builds from it, whose VMs and segments are attached handles.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{keys, Env, EnvDir};
use crate::env::file::EnvDecl;
use crate::error::{Error, Result};
use crate::net::segment::{Facts, Segment};
use crate::vm::keep::Keep;
use crate::vm::{Attached, Vm};

/// What a process needs to attach to a running environment it does not own.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Published {
    /// The environment's directory (its keys).
    dir: PathBuf,
    keys: Vec<String>,
    /// Its isolated and PXE networks, by name.
    networks: Vec<(String, Facts)>,
    /// Its VMs by name, in the order they came up.
    vms: Vec<(String, Attached)>,
}

impl Env {
    /// What another process needs to attach to this environment.
    pub(crate) fn publish(&self) -> Published {
        Published {
            dir: self.dir().to_owned(),
            keys: self.keys.keys().cloned().collect(),
            networks: (self.networks.iter())
                .map(|(name, segment)| (name.clone(), segment.facts()))
                .collect(),
            vms: (self.vms().into_iter())
                .map(|(name, vm)| (name, vm.attached()))
                .collect(),
        }
    }

    /// The environment another process brought up and `published`, declared as `decl`: its VMs
    /// and segments are attached handles (teardown stays with the owner), `test` names the
    /// test using it, its failures' evidence goes into `artifacts`.
    pub(crate) fn attach(
        decl: EnvDecl,
        published: Published,
        test: String,
        artifacts: Option<PathBuf>,
    ) -> Result<Env> {
        let networks: BTreeMap<String, Segment> = (published.networks.into_iter())
            .map(|(name, facts)| (name, Segment::attach(facts)))
            .collect();
        let segments: Vec<Segment> = networks.values().cloned().collect();
        let mut vms = Vec::new();
        for (name, facts) in &published.vms {
            vms.push((name.clone(), Arc::new(Vm::attach_on(facts, &segments)?)));
        }
        let mut keys = BTreeMap::new();
        for name in &published.keys {
            keys.insert(name.clone(), keys::read_key(&published.dir, name)?);
        }
        Ok(Env {
            name: decl.name.clone(),
            artifacts: artifacts.map(|a| a.join(format!("env-{}", decl.name))),
            decl: Arc::new(decl),
            test,
            keep: Keep::Never,
            keys,
            networks,
            vms: Mutex::new(vms),
            _budget: None,
            reloaded: Mutex::new(BTreeMap::new()),
            shared: true,
            _dir: EnvDir {
                path: published.dir,
                _claim: None,
            },
        })
    }

    /// Marks it shared by several tests: [`Env::add_vm`] is refused.
    pub(crate) fn share(&mut self) {
        self.shared = true;
    }

    /// Whether another process owns it.
    pub(crate) fn is_attached(&self) -> bool {
        self._dir._claim.is_none()
    }

    /// Makes new SSH connections and forwards of its VMs on `home`, a runtime that outlives the
    /// tests using them. Only right after it came up, while no other handle on a VM exists.
    pub(crate) fn set_home(&mut self, home: &tokio::runtime::Handle) {
        for (_, vm) in self.vms.get_mut().unwrap_or_else(|p| p.into_inner()) {
            if let Some(vm) = Arc::get_mut(vm) {
                vm.set_home(home.clone());
            }
        }
    }

    /// The error for `operation`, which a shared environment does not do.
    pub(super) fn refused_when_shared(&self, operation: &str) -> Error {
        let whose = if self.is_attached() {
            "it is shared with other test processes and another process (its broker) owns it"
        } else {
            "it is shared by several tests"
        };
        Error::Attached {
            operation: operation.to_owned(),
            message: format!(
                "environment {} cannot do this: {whose}, and the change would reach all of \
                 them; use a non-shared environment (drop `shared` from `#[vmtest(env = ...)]`) \
                 for a test that does this",
                self.name
            ),
        }
    }
}
