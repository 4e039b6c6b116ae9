//! The handle a test runs commands with: [`Ssh`], from [`Vm::ssh`].

use russh::keys::PublicKey;

use super::Vm;
use crate::error::{Error, IoContext, Result};
use crate::guest::output::Output;
use crate::guest::ssh::quote_argv;

/// SSH access to one VM; get it from [`Vm::ssh`].
#[derive(Debug)]
pub struct Ssh<'vm> {
    vm: &'vm Vm,
    host_key: Option<PublicKey>,
}

impl<'vm> Ssh<'vm> {
    pub(super) fn new(vm: &'vm Vm) -> Ssh<'vm> {
        Ssh { vm, host_key: None }
    }
}

impl Ssh<'_> {
    /// Expect this host key (an OpenSSH public key line) instead of the one injected at boot,
    /// e.g. after the guest rotated its keys. A server presenting any other key is refused with
    /// [`Error::HostKeyMismatch`].
    pub fn with_host_key(mut self, openssh_public_key: &str) -> Result<Self> {
        self.host_key = Some(crate::guest::identity::parse_public(openssh_public_key)?);
        Ok(self)
    }

    /// Runs `argv` in the guest and collects exit status, stdout and stderr.
    ///
    /// Each element is one argument: it is quoted for the guest's shell, so spaces, quotes and
    /// `$` arrive verbatim. For shell syntax, run `["sh", "-c", "..."]`. A non-zero exit is not
    /// an error: check [`Output::success`].
    pub async fn run<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let line = quote_argv(argv)?;
        let sessions = &self.vm.link.sessions;
        if let Some(key) = &self.host_key {
            return sessions.connect(key).await?.exec(&line).await;
        }
        match sessions.get(false).await?.exec(&line).await {
            // The cached connection may have been closed by the guest (sshd restarted, idle
            // timeout): one fresh connection, then give up.
            Err(Error::Ssh { .. }) => sessions.get(true).await?.exec(&line).await,
            other => other,
        }
    }
}

impl Ssh<'_> {
    /// [`Ssh::run`] for synchronous test bodies (`#[vmtest] fn t(vm: &Vm)`): blocks until the
    /// command has finished. Needs a multi-threaded tokio runtime on this thread, which
    /// `#[vmtest]` provides; from async code, `.await` [`Ssh::run`] instead.
    pub fn run_blocking<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::Invalid {
            what: "call",
            message: "run_blocking needs a tokio runtime on this thread: call it from a \
                      #[vmtest] test body, or await `run` in async code"
                .into(),
        })?;
        tokio::task::block_in_place(|| handle.block_on(self.run(argv)))
    }
}

/// SSH awaited after boot: for a VM made ready another way (its console, a lease), or a guest
/// that became another system (an installer rebooted into what it installed).
impl Vm {
    /// Waits until the guest's SSH server completes a round-trip as vmtest's user with the
    /// pinned host key, then makes the SSH side (commands, files, ports) usable. Bounded by the
    /// VM's boot timeout (scaled under TCG); fails at once if the machine stops or the guest
    /// panics. Where SSH is: through the management NIC, or at the guest's leased address on
    /// its segment.
    ///
    /// The guest must accept vmtest's key for its user ([`Vm::authorized_key`]) and present
    /// the pinned host key: the seeded one (an installed system that reads the same seed), or
    /// one the test pins first with [`Vm::pin_host_key`].
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// vm.wait_for_console(r"installation complete", std::time::Duration::from_secs(600)).await?;
    /// vm.wait_for_ssh().await?;
    /// vm.command(["cat", "/etc/os-release"]).succeed().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_ssh(&self) -> Result<()> {
        let Some(owned) = &self.owned else {
            return Err(Error::Invalid {
                what: "wait_for_ssh",
                message: format!(
                    "VM {} belongs to another process (a shared fixture): its owner waits for it",
                    self.name
                ),
            });
        };
        let target = self.link.sessions.target();
        let console = self.dir_path.join("console.log");
        let booting = super::ready::Booting {
            name: &self.name,
            machine: &owned.machine,
            console: &console,
            accel: self.accel,
            user: &target.user,
            client_key: &target.client_key,
            host_key: self.link.sessions.host_key(),
            lan: owned.segment.as_ref().zip(owned.mac.as_deref()),
            management: owned.management,
        };
        let timeout = self.boot_timeout * self.accel.timeout_factor();
        let (target, session) = super::ready::ssh(&booting, timeout).await?;
        self.link.ready(target, session).await;
        let reach = self.link.reach();
        std::fs::write(&reach.known_hosts, reach.known_hosts_line())
            .context(|| "writing known_hosts".into())?;
        let mut claim = owned.claim.lock().unwrap_or_else(|p| p.into_inner());
        claim.update(|e| e.reach = Some(reach))
    }

    /// Expects `openssh_public_key` (a line like `ssh-ed25519 AAAA…`) as the guest's host key
    /// from now on, instead of the one seeded at boot: for an installed system that made its
    /// own keys, read from its console or the installer's output. Any other key is refused
    /// with [`Error::HostKeyMismatch`].
    pub async fn pin_host_key(&self, openssh_public_key: &str) -> Result<()> {
        let key = crate::guest::identity::parse_public(openssh_public_key)?;
        let line = key.to_openssh().unwrap_or_default();
        self.link.pin(key, line).await;
        Ok(())
    }

    /// The host key the guest's SSH server presents now, read without logging in (like
    /// `ssh-keyscan`): for a test that accepts an installed system's new key explicitly, after
    /// checking it as it sees fit, with [`Vm::pin_host_key`]. Waits for the server up to the
    /// VM's boot timeout (scaled under TCG).
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// let key = vm.scan_host_key().await?;
    /// assert!(key.starts_with("ssh-ed25519 "));
    /// vm.pin_host_key(&key).await?;
    /// vm.wait_for_ssh().await?;
    /// # Ok(()) }
    /// ```
    pub async fn scan_host_key(&self) -> Result<String> {
        let sessions = &self.link.sessions;
        let deadline = std::time::Instant::now() + self.boot_timeout * self.accel.timeout_factor();
        let mut target = sessions.target();
        loop {
            // A guest only on its segment: its address comes from its lease.
            if target.addr.ip().is_unspecified() {
                if let Some(owned) = &self.owned {
                    if let (Some(segment), Some(mac)) = (&owned.segment, &owned.mac) {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        let lease = segment.wait_for_lease(mac, left).await?;
                        target.addr = std::net::SocketAddr::from((lease.ip, 22));
                    }
                }
            }
            let attempt = std::time::Duration::from_secs(5);
            match crate::guest::ssh::Session::scan(&target, attempt).await {
                Ok(key) => return Ok(key.to_openssh().unwrap_or_default()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
    }

    /// vmtest's SSH public key for this VM, as an `authorized_keys` line: what an installer
    /// must give the installed system's user for [`Vm::wait_for_ssh`] to log in.
    pub fn authorized_key(&self) -> String {
        let key = self.link.sessions.target().client_key.public_key().clone();
        key.to_openssh().unwrap_or_default()
    }
}
