//! A VM's provisioning steps, run in order over its SSH once it is ready, each step's output
//! kept in the artifacts.

use std::path::Path;

use super::{at, Env};
use crate::env::file::{Step, VmDecl};
use crate::error::Result;
use crate::vm::Vm;

impl Env {
    /// Runs the provisioning steps declared for VM `name` again, in order, on the running VM
    /// (`vmtest-runner provision VM`): for steps being written, or to put back what a test
    /// changed. Each step's output goes to the artifacts, as at `up`; the first step that fails
    /// ends it with an error naming the step's position. The declaration used is the one the VM
    /// was started from (see [`Env::reload`] to start it again from the file as it is now).
    ///
    /// ```no_run
    /// # async fn t(env: &vmtest::Env) -> vmtest::Result<()> {
    /// env.vm("client")?.sh("rm -f /etc/motd").succeed().await?;
    /// env.provision("client").await?; // its steps put it back
    /// # Ok(()) }
    /// ```
    pub async fn provision(&self, name: &str) -> Result<()> {
        let vm = self.vm(name)?;
        let decl = self.vm_decl(name)?;
        self.run_provisioning(&decl, &vm).await
    }

    /// Runs the VM's provisioning steps in order, each step's output into the artifacts.
    pub(super) async fn run_provisioning(&self, decl: &VmDecl, vm: &Vm) -> Result<()> {
        for (i, step) in decl.provision.iter().enumerate() {
            let n = i + 1;
            let log = self
                .artifacts
                .as_ref()
                .map(|a| a.join(&decl.name).join(format!("provision-{n}.log")));
            let result = match step {
                Step::Run { script, sudo, .. } => {
                    let script = self.render_for(script).await?;
                    let mut command = vm.sh(script);
                    if *sudo {
                        command = command.sudo();
                    }
                    match command.output().await {
                        Ok(out) => {
                            if let Some(log) = &log {
                                write_log(log, &out.stdout, &out.stderr);
                            }
                            if out.success() {
                                Ok(())
                            } else {
                                Err(format!(
                                    "exited with {}: {}",
                                    out.exit_code
                                        .map_or_else(|| "a signal".into(), |c| c.to_string()),
                                    crate::vm::tail(&out.stderr_str())
                                ))
                            }
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Step::Copy { from, to, sudo, .. } => {
                    let to = self.render_for(to).await?;
                    let copied = if *sudo {
                        vm.upload_as_root(from, &to).await
                    } else {
                        vm.upload(from, &to).await
                    };
                    copied.map_err(|e| e.to_string())
                }
            };
            if let Err(why) = result {
                let pos = step.pos();
                let output = log.map_or_else(String::new, |l| {
                    format!("; its output is in {}", l.display())
                });
                return Err(at(
                    pos,
                    format!(
                        "provisioning step {n} of VM {} failed: {why}{output}",
                        decl.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn write_log(path: &Path, stdout: &[u8], stderr: &[u8]) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut text = b"== stdout\n".to_vec();
    text.extend_from_slice(stdout);
    text.extend_from_slice(b"\n== stderr\n");
    text.extend_from_slice(stderr);
    let _ = std::fs::write(path, text);
}
