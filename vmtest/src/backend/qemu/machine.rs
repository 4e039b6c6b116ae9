//! A running QEMU: its process, and what it answers over QMP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::qmp::{forwarded_port, Qmp, QmpError};
use super::QMP_SOCKET;
use crate::host::process::{describe, Supervised};

/// One QEMU, owned: dropping it kills QEMU and reaps it.
#[derive(Debug)]
pub(crate) struct QemuMachine {
    process: Supervised,
    qmp_socket: PathBuf,
    pidfile: PathBuf,
    /// Boot indexes to set once the first boot started (`boot_once`): device id, new index.
    after_first_boot: Vec<(String, i64)>,
}

impl QemuMachine {
    pub(super) fn new(
        process: Supervised,
        dir: &Path,
        pidfile: PathBuf,
        after_first_boot: Vec<(String, i64)>,
    ) -> QemuMachine {
        QemuMachine {
            process,
            qmp_socket: dir.join(QMP_SOCKET),
            pidfile,
            after_first_boot,
        }
    }

    /// Moves the `boot_once` device to its place in the boot order (or out of it) for every
    /// later boot. The firmware read the boot order at its start; QEMU rewrites it at the next
    /// reset, so calling this as soon as QMP answers changes nothing for the first boot.
    pub async fn first_boot_started(&self, timeout: Duration) -> Result<(), QmpError> {
        if self.after_first_boot.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut qmp = loop {
            match Qmp::connect(&self.qmp_socket).await {
                Ok(qmp) => break qmp,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        for (id, index) in &self.after_first_boot {
            let path = format!("/machine/peripheral/{id}");
            qmp.execute(
                "qom-set",
                Some(json!({"path": path, "property": "bootindex", "value": index})),
            )
            .await?;
        }
        Ok(())
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
        // A guest powered off earlier (`halt`) sits paused: let QEMU exit this time.
        if qmp
            .execute("set-action", Some(json!({"shutdown": "poweroff"})))
            .await
            .is_err()
        {
            return false;
        }
        let off = qmp
            .execute("query-status", None)
            .await
            .is_ok_and(|s| s["status"] == "shutdown");
        let asked = if off {
            qmp.execute("quit", None).await
        } else {
            qmp.execute("system_powerdown", None).await
        };
        asked.is_ok() && self.process.wait_exit(grace).await.is_some()
    }

    /// From now on, a guest that reboots is reset instead of ending QEMU (`-no-reboot` holds
    /// only while the guest boots, so that a boot loop fails at once).
    pub async fn allow_reboots(&self) -> Result<(), QmpError> {
        self.qmp("set-action", Some(json!({"reboot": "reset"})))
            .await
            .map(drop)
    }

    /// A hard reset, as the reset button.
    pub async fn reset(&self) -> Result<(), QmpError> {
        self.qmp("system_reset", None).await.map(drop)
    }

    /// Stops the vCPUs.
    pub async fn pause(&self) -> Result<(), QmpError> {
        self.qmp("stop", None).await.map(drop)
    }

    /// Runs the vCPUs again.
    pub async fn resume(&self) -> Result<(), QmpError> {
        self.qmp("cont", None).await.map(drop)
    }

    /// Powers the guest off but keeps QEMU (and with it the disk, the NICs and the ledger's
    /// record) for [`QemuMachine::start`]: the ACPI power button with QEMU told to pause on the
    /// guest's shutdown, up to `grace` for the guest to go, then a hard stop. Whether the guest
    /// powered off by itself.
    pub async fn halt(&self, grace: Duration) -> Result<bool, QmpError> {
        let mut qmp = Qmp::connect(&self.qmp_socket).await?;
        qmp.execute("set-action", Some(json!({"shutdown": "pause"})))
            .await?;
        qmp.execute("system_powerdown", None).await?;
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if qmp.execute("query-status", None).await?["status"] == "shutdown" {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        qmp.execute("stop", None).await?;
        Ok(false)
    }

    /// Starts a guest [`QemuMachine::halt`] powered off: a reset, then the vCPUs run.
    pub async fn start(&self) -> Result<(), QmpError> {
        let mut qmp = Qmp::connect(&self.qmp_socket).await?;
        qmp.execute("set-action", Some(json!({"shutdown": "poweroff"})))
            .await?;
        qmp.execute("system_reset", None).await?;
        qmp.execute("cont", None).await.map(drop)
    }

    /// Saves the machine's memory and device state into the file `path`: the vCPUs stop
    /// first, so the state is one moment, and QEMU stays paused afterwards with its disks
    /// flushed and released (a migration's end), so the caller may take the disks away.
    pub async fn save_state(&self, path: &Path, timeout: Duration) -> Result<(), QmpError> {
        let path = path
            .to_str()
            .ok_or_else(|| QmpError::Protocol(format!("{} is not UTF-8", path.display())))?;
        let mut qmp = Qmp::connect(&self.qmp_socket).await?;
        qmp.execute("stop", None).await?;
        // QEMU throttles a migration to 128 MiB/s by default: a file takes what it can.
        qmp.execute(
            "migrate-set-parameters",
            Some(json!({"max-bandwidth": 8u64 << 30})),
        )
        .await?;
        // `exec:` runs through `sh -c`: the path goes in single quotes.
        let uri = format!("exec:cat > '{}'", path.replace('\'', "'\\''"));
        qmp.execute("migrate", Some(json!({ "uri": uri }))).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = qmp.execute("query-migrate", None).await?;
            match status["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed" | "cancelled") => return Err(QmpError::Refused(status)),
                _ if tokio::time::Instant::now() >= deadline => return Err(QmpError::NoAnswer),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Waits until QEMU has loaded the state it restores (`-incoming`), within `timeout`, then
    /// runs the vCPUs. `Err` says why the state did not load: QEMU ended (a damaged or
    /// incompatible state), or never finished.
    pub async fn finish_restore(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let ended = |this: &Self| {
            this.exited().map(|status| {
                let output = this.output();
                format!("QEMU {status} while loading it: {}", output.trim())
            })
        };
        loop {
            if let Some(ended) = ended(self) {
                return Err(ended);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("QEMU did not load it within {timeout:?}"));
            }
            let status = match self.qmp("query-status", None).await {
                Ok(status) => status,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            match status["status"].as_str() {
                Some("inmigrate") => tokio::time::sleep(Duration::from_millis(20)).await,
                Some("running") => return Ok(()),
                _ => {
                    return match self.qmp("cont", None).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(ended(self).unwrap_or_else(|| e.to_string())),
                    }
                }
            }
        }
    }

    async fn qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        Qmp::connect(&self.qmp_socket)
            .await?
            .execute(command, arguments)
            .await
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
