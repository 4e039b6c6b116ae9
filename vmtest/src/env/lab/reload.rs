//! Starting one VM of a running environment again from its file as it is now, and the
//! declaration each VM was last started from.

use std::sync::Arc;

use super::{find, in_vm, Env};
use crate::env::file::VmDecl;
use crate::error::{Error, Result};
use crate::vm::Vm;

impl Env {
    /// The declaration VM `name` was last started from: the file's at `up`, or at its last
    /// [`Env::reload`].
    pub(super) fn vm_decl(&self, name: &str) -> Result<VmDecl> {
        if let Some((decl, _)) = self.reloaded.lock().unwrap().get(name) {
            return Ok(decl.clone());
        }
        self.decl
            .vms
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| Error::Invalid {
                what: "vm",
                message: format!(
                    "VM {name} of environment {} was added at run time (Env::add_vm): it has no \
                     declaration to provision or reload it from",
                    self.name
                ),
            })
    }

    /// Starts VM `name` again from the environment's file as it is now (`vmtest-runner reload
    /// VM`): the whole file is read and checked first, and the VM's new declaration rendered
    /// against the running environment, so a mistake leaves the running VM alone. Then the VM
    /// is destroyed, booted from its new declaration in its place (same networks by name, same
    /// position in the teardown order) and provisioned. Returns the new handle.
    ///
    /// Only that VM changes: its networks and keys are the running environment's (take the
    /// environment down and up for those), and VMs whose declarations refer to it keep what they
    /// were given (reload them too). No handle to the old VM may be held elsewhere: the call
    /// refuses rather than leave a VM running outside the environment. Not on a shared
    /// environment (`#[vmtest(env = "NAME", shared)]`): an error says so.
    ///
    /// ```no_run
    /// # async fn t(env: &vmtest::Env) -> vmtest::Result<()> {
    /// // After editing the client's user-data in vmtest.toml:
    /// let client = env.reload("client").await?;
    /// client.sh("cloud-init status --wait").succeed().await?;
    /// # Ok(()) }
    /// ```
    pub async fn reload(&self, name: &str) -> Result<Arc<Vm>> {
        if self.shared {
            return Err(self.refused_when_shared("starting a VM again (Env::reload)"));
        }
        // Declared, not added at run time: only those have a declaration to follow.
        self.vm_decl(name)?;
        let fresh = crate::env::file::read(&self.decl.pos.file, &self.name)?;
        crate::env::graph::phases(&fresh)?;
        let decl = find(&fresh.vms, name, |v| &v.name)
            .map_err(|_| Error::Invalid {
                what: "vm",
                message: format!(
                    "{} no longer declares VM {name} in environment {}; its VMs there: {}",
                    fresh.pos.file.display(),
                    self.name,
                    fresh
                        .vms
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?
            .clone();
        let lives = self
            .reloaded
            .lock()
            .unwrap()
            .get(name)
            .map_or(1, |(_, n)| n + 1);
        let (spec, cx) = self
            .prepare_vm(&decl, &format!("{name}.{}", lives + 1))
            .await?;
        let index = self.take_for_reload(name).await?;
        let vm = match Vm::boot_in(spec, cx).await {
            Ok(vm) => Arc::new(vm),
            Err(e) => return Err(in_vm(&decl, e)),
        };
        {
            let mut vms = self.vms.lock().unwrap();
            let at = index.min(vms.len());
            vms.insert(at, (name.to_owned(), vm.clone()));
        }
        self.reloaded
            .lock()
            .unwrap()
            .insert(name.to_owned(), (decl.clone(), lives));
        self.run_provisioning(&decl, &vm).await?;
        Ok(vm)
    }

    /// Takes VM `name` out of the environment and destroys it; returns where it was in the
    /// order the VMs came up.
    async fn take_for_reload(&self, name: &str) -> Result<usize> {
        let (index, old) = {
            let mut vms = self.vms.lock().unwrap();
            let Some(index) = vms.iter().position(|(n, _)| n == name) else {
                return Err(Error::Invalid {
                    what: "vm",
                    message: format!("environment {} has no VM {name} now", self.name),
                });
            };
            if Arc::strong_count(&vms[index].1) > 1 {
                return Err(Error::Invalid {
                    what: "vm",
                    message: format!(
                        "VM {name} of environment {} is still in use elsewhere (a handle from \
                         Env::vm or Env::vms is held): drop it before reloading the VM",
                        self.name
                    ),
                });
            }
            (index, vms.remove(index).1)
        };
        match Arc::try_unwrap(old) {
            Ok(vm) => vm.destroy().await,
            Err(vm) => drop(vm),
        }
        Ok(index)
    }
}
