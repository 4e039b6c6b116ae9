//! A running QEMU: its process, and what it answers over QMP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::qmp::{forwarded_port, Qmp, QmpError};
use super::QMP_SOCKET;
use crate::host::process::{describe, Supervised};

/// One QEMU, owned: dropping it kills QEMU and reaps it.
#[derive(Debug)]
pub(crate) struct QemuMachine {
    process: Supervised,
    qmp_socket: PathBuf,
    pidfile: PathBuf,
}

impl QemuMachine {
    pub(super) fn new(process: Supervised, dir: &Path, pidfile: PathBuf) -> QemuMachine {
        QemuMachine {
            process,
            qmp_socket: dir.join(QMP_SOCKET),
            pidfile,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The pid file on QEMU's command line (the ledger's handle on it).
    pub fn pidfile(&self) -> &Path {
        &self.pidfile
    }

    /// How QEMU ended, if it has.
    pub fn exited(&self) -> Option<String> {
        self.process.try_status().map(describe)
    }

    /// What QEMU printed.
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// The host port QEMU bound on 127.0.0.1 for `guest_port` of the user-mode NIC, once QMP
    /// answers; `Ok(None)` while the forward is not listed yet.
    pub async fn forwarded_port(&self, guest_port: u16) -> Result<Option<u16>, QmpError> {
        let mut qmp = Qmp::connect(&self.qmp_socket).await?;
        let info = qmp.hmp("info usernet").await?;
        Ok(forwarded_port(&info, guest_port))
    }

    /// ACPI power button, then up to `grace` for the guest to power off; whether it did.
    pub async fn power_off(&self, grace: Duration) -> bool {
        let Ok(mut qmp) = Qmp::connect(&self.qmp_socket).await else {
            return false;
        };
        if qmp.execute("system_powerdown", None).await.is_err() {
            return false;
        }
        self.process.wait_exit(grace).await.is_some()
    }

    /// Asks QEMU to quit at once, bounded by `timeout`; the caller kills what is left.
    pub async fn quit(&self, timeout: Duration) {
        let quit = async {
            let mut qmp = Qmp::connect(&self.qmp_socket).await.ok()?;
            qmp.execute("quit", None).await.ok()?;
            self.process.wait_exit(timeout).await
        };
        let _ = tokio::time::timeout(timeout, quit).await;
    }

    /// Lets QEMU run on after this value is gone (a kept VM).
    pub fn detach(self) {
        self.process.detach();
    }
}
