//! Power: a reboot the guest does itself, and what the machine's buttons do — reset, pause and
//! resume, power off and start again. A reboot is over when SSH answers with a *new* boot id
//! (`/proc/sys/kernel/random/boot_id`), so a test never talks to the guest's old life.

use std::time::{Duration, Instant};

use super::Vm;
use crate::backend::{Machine, Power};
use crate::error::{Error, Result};

/// Reboots the guest cleanly (systemd where it runs, the init's `reboot` otherwise), detached
/// from the SSH channel so the command returns before the connection goes (no `nohup`: the
/// tiny guest's busybox has none).
const REBOOT: &str = "if [ -d /run/systemd/system ]; then r='systemctl reboot'; else r=reboot; fi
(trap '' HUP; sleep 1; $r) </dev/null >/dev/null 2>&1 &";

impl Vm {
    /// The guest kernel's boot id: a new one after every reboot or reset.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let before = vm.boot_id().await?;
    /// vm.reset().await?;
    /// assert_ne!(vm.boot_id().await?, before);
    /// # Ok(()) }
    /// ```
    pub async fn boot_id(&self) -> Result<String> {
        let out = self
            .command(["cat", "/proc/sys/kernel/random/boot_id"])
            .timeout(Duration::from_secs(30))
            .succeed()
            .await?;
        Ok(out.stdout_str().trim().to_owned())
    }

    /// Reboots the guest from inside (`systemctl reboot`, or `reboot` without systemd) and
    /// waits until SSH answers again with a new boot id; later commands, file copies and
    /// forwards use the new connection by themselves. The deadline is the VM's boot timeout
    /// (60 s unless the spec says otherwise, multiplied under TCG); see [`Vm::reboot_within`].
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.write_file("/etc/motd", "kept across reboots\n").await?;
    /// vm.reboot().await?;
    /// assert_eq!(vm.read_to_string("/etc/motd").await?, "kept across reboots\n");
    /// # Ok(()) }
    /// ```
    pub async fn reboot(&self) -> Result<()> {
        self.reboot_within(self.boot_timeout).await
    }

    /// [`Vm::reboot`] with its own deadline (multiplied under TCG).
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use std::time::Duration;
    /// vm.reboot_within(Duration::from_secs(300)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reboot_within(&self, timeout: Duration) -> Result<()> {
        let before = self.boot_id().await?;
        self.sh(REBOOT)
            .sudo()
            .timeout(Duration::from_secs(30))
            .succeed()
            .await?;
        self.link.close().await;
        self.new_boot("reboot", Some(&before), timeout).await
    }

    /// Resets the machine (the reset button: no shutdown in the guest) and waits, as
    /// [`Vm::reboot`] does, for SSH with a new boot id; for a VM whose SSH has not been
    /// awaited (made ready by its console or a lease), it returns once the reset is done.
    pub async fn reset(&self) -> Result<()> {
        let machine = self.machine("reset")?;
        // Best effort: a guest that hangs is what a reset is for.
        let before = tokio::time::timeout(Duration::from_secs(5), self.boot_id())
            .await
            .ok()
            .and_then(|r| r.ok());
        self.press(machine, Power::Reset).await?;
        self.link.close().await;
        // A VM without SSH (yet): the test waits on the console, or `wait_for_ssh`, itself.
        if !self.link.sessions.ssh_awaited() {
            return Ok(());
        }
        self.new_boot("reset", before.as_deref(), self.boot_timeout)
            .await
    }

    /// Freezes the guest's vCPUs (its clock stops too). Commands sent meanwhile wait or time
    /// out; [`Vm::resume`] lets it run on.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.pause().await?;
    /// // ... the guest is frozen: check what a client does when it stops answering ...
    /// vm.resume().await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(&self) -> Result<()> {
        let machine = self.machine("pause")?;
        self.press(machine, Power::Pause).await
    }

    /// Runs a [paused](Vm::pause) guest again.
    pub async fn resume(&self) -> Result<()> {
        let machine = self.machine("resume")?;
        self.press(machine, Power::Resume).await
    }

    /// Powers the guest off through ACPI (forced after 30 s, multiplied under TCG) and keeps
    /// the machine — its disk, NICs, ledger entry and budget share — for [`Vm::start`]. Unlike
    /// [`Vm::shutdown`], the `Vm` stays usable.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.write_file("/data/mark", "on disk\n").await?;
    /// vm.command(["sync"]).succeed().await?;
    /// vm.power_off().await?;
    /// vm.start().await?;
    /// assert_eq!(vm.read_to_string("/data/mark").await?, "on disk\n");
    /// # Ok(()) }
    /// ```
    pub async fn power_off(&self) -> Result<()> {
        let machine = self.machine("power off")?;
        self.link.close().await;
        let grace = Duration::from_secs(30) * self.link.factor();
        self.press(machine, Power::Off { grace }).await
    }

    /// Starts a guest [powered off](Vm::power_off) from the same disk and waits until SSH
    /// answers.
    pub async fn start(&self) -> Result<()> {
        let machine = self.machine("start")?;
        self.press(machine, Power::Start).await?;
        self.new_boot("start", None, self.boot_timeout).await
    }

    /// The machine, for a power action; refused on a VM another process owns.
    fn machine(&self, action: &str) -> Result<&Machine> {
        match &self.owned {
            Some(owned) => Ok(&owned.machine),
            None => Err(Error::Invalid {
                what: "power action",
                message: format!(
                    "cannot {action} VM {}: it belongs to another process (a fixture shared \
                     across test processes), which alone drives its machine; `reboot()` works \
                     from any process",
                    self.name
                ),
            }),
        }
    }

    async fn press(&self, machine: &Machine, action: Power) -> Result<()> {
        machine.power(action).await.map_err(|e| Error::Invalid {
            what: "power action",
            message: format!(
                "{action:?} of VM {} failed: {e}; its console is {}",
                self.name,
                self.dir_path.join("console.log").display()
            ),
        })
    }

    /// Waits until SSH answers with a boot id other than `before`; fails at once if the
    /// machine ends meanwhile (a crash, a guest that powered off), and with the console's tail
    /// when the deadline passes.
    async fn new_boot(&self, what: &str, before: Option<&str>, timeout: Duration) -> Result<()> {
        let limit = timeout * self.link.factor();
        let started = Instant::now();
        let mut last;
        loop {
            self.check_crash()?;
            if let Some(how) = self.owned.as_ref().and_then(|o| o.machine.exited()) {
                return Err(Error::WaitFailed {
                    vm: self.name.clone(),
                    what: format!("the machine ended during the {what} ({how})"),
                    evidence: self.console_tail(),
                });
            }
            let attempt = async {
                let session = self.link.sessions.get(true).await?;
                let out = session.exec("cat /proc/sys/kernel/random/boot_id").await?;
                Ok::<_, Error>(out.stdout_str().trim().to_owned())
            };
            match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                Ok(Ok(id)) if !id.is_empty() && Some(id.as_str()) != before => {
                    tracing::debug!(vm = %self.name, after = ?started.elapsed(), "{what} done");
                    return Ok(());
                }
                Ok(Ok(_)) => last = "SSH answered with the old boot id: not down yet".into(),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "an SSH attempt took over 10 s".into(),
            }
            if started.elapsed() >= limit {
                self.link.close().await;
                return Err(Error::WaitTimeout {
                    vm: self.name.clone(),
                    what: format!("SSH with a new boot id after the {what}"),
                    after: started.elapsed(),
                    evidence: format!(
                        "last SSH attempt: {last}\n--- console (last lines) ---\n{}",
                        self.console_tail()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn console_tail(&self) -> String {
        super::command::tail(&self.console_log())
    }
}
