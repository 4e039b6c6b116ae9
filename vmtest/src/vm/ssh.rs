//! The handle a test runs commands with: [`Ssh`], from [`Vm::ssh`].

use russh::keys::PublicKey;

use super::Vm;
use crate::error::{Error, Result};
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
