//! The subjects of `#[vmtest(env = "NAME")]` tests: an environment of the test's own, or a
//! lease on a shared one (`shared`).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Run, Subject};
use crate::fixture::{EnvLease, SharedEnv};
use crate::spec::Accel;
use crate::vm::Context as VmContext;
use crate::Env;

impl Subject for Env {
    type Decl = &'static str;

    async fn obtain(name: &'static str, run: &Run<'_>) -> Result<Env, String> {
        let up = async {
            let decl = crate::env::file::load(name)?;
            let cx = VmContext {
                test: run.test.clone(),
                artifacts: run.artifacts.clone(),
                keep: run.keep,
                segment: None,
                more_segments: Vec::new(),
                prepaid: false,
            };
            Env::up_from(decl, cx).await
        };
        up.await
            .map_err(|e| format!("environment {name} did not come up: {e}"))
    }

    fn accel(&self) -> Option<Accel> {
        accel_of(self)
    }

    async fn save_artifacts(&self, failure: &str) {
        save_vms(self, self.artifacts_dir(), failure).await;
    }

    async fn release(self, run: &Run<'_>, failed: bool) {
        if run.keep.keeps(failed) {
            for (name, vm) in self.take_vms().into_iter().rev() {
                match Arc::try_unwrap(vm) {
                    Ok(vm) => run.keep(vm, failed),
                    Err(_) => tracing::warn!(
                        "could not keep VM {name} of environment {}: a handle on it outlived \
                         the test's body",
                        self.name()
                    ),
                }
            }
        }
        // What is left: every VM unless kept, then the networks and keys.
        self.down().await;
    }
}

/// What the accelerator of an environment's VMs is, for the body's time limit.
fn accel_of(env: &Env) -> Option<Accel> {
    match env.vms().first() {
        Some((_, vm)) => Some(vm.accel()),
        // No VM to ask: the one the environment's VMs would get.
        None => crate::doctor::accelerator().ok(),
    }
}

/// Saves each VM's evidence of the failure into `dir/VM`.
async fn save_vms(env: &Env, dir: Option<&std::path::Path>, failure: &str) {
    let Some(dir) = dir else {
        return;
    };
    for (name, vm) in env.vms() {
        if let Err(e) = vm
            .save_artifacts_with(&dir.join(&name), Some(failure))
            .await
        {
            tracing::warn!("{e}");
        }
    }
}

/// A test's lease on a shared environment, and where its failure's evidence goes (the test's
/// own artifacts, not those of whoever brought the environment up).
pub(super) struct Leased {
    lease: EnvLease,
    artifacts: Option<PathBuf>,
}

impl Leased {
    pub(super) fn env(&self) -> &Env {
        self.lease.env()
    }
}

impl Subject for Leased {
    type Decl = &'static SharedEnv;

    async fn obtain(shared: &'static SharedEnv, run: &Run<'_>) -> Result<Leased, String> {
        let lease = shared
            .lease(
                run.id.libtest_name(),
                run.test.clone(),
                run.artifacts.clone(),
            )
            .await
            .map_err(|e| format!("shared environment did not come up: {e}"))?;
        let artifacts =
            (run.artifacts.as_ref()).map(|a| a.join(format!("env-{}", lease.env().name())));
        Ok(Leased { lease, artifacts })
    }

    fn accel(&self) -> Option<Accel> {
        accel_of(self.env())
    }

    async fn save_artifacts(&self, failure: &str) {
        save_vms(self.env(), self.artifacts.as_deref(), failure).await;
    }

    async fn release(self, run: &Run<'_>, failed: bool) {
        // A shared environment is only given back: its VMs outlive the test, whatever `keep`.
        if run.keep.keeps(failed) {
            tracing::warn!(
                "{}: not keeping environment {}: it is shared, and goes after its last user",
                run.test,
                self.env().name()
            );
        }
    }
}
