//! A VM's provisioning steps, run in order over its SSH once it is ready, each step's output
//! kept in the artifacts.

use std::path::Path;

use super::{at, Env};
use crate::env::file::{Step, VmDecl};
use crate::error::Result;
use crate::vm::Vm;

impl Env {
    /// Runs the VM's provisioning steps in order, each step's output into the artifacts.
    pub(super) async fn provision(&self, decl: &VmDecl, vm: &Vm) -> Result<()> {
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
