//! Waiting for the guest: a command that succeeds, a systemd unit, a listening port, a file.
//! Each wait polls until its deadline (multiplied under TCG like every deadline of the VM) and
//! fails with what the last check saw.

use std::time::{Duration, Instant};

use super::command::tail;
use super::Vm;
use crate::error::{Error, Result};
use crate::guest::output::Output;
use crate::guest::shell::quote;

/// Pause between two checks of a wait.
const POLL: Duration = Duration::from_millis(500);
/// The most one check may take before it counts as a failed attempt.
const ATTEMPT: Duration = Duration::from_secs(30);

impl Vm {
    /// Runs `argv` until it exits 0, and returns that run's output. Fails with
    /// [`Error::WaitTimeout`] and the last attempt's output when `timeout` passes first.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use std::time::Duration;
    /// vm.wait_until_succeeds(["test", "-e", "/run/ready"], Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_succeeds<I, S>(&self, argv: I, timeout: Duration) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let argv: Vec<String> = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let label = crate::guest::shell::quote_argv(&argv)?;
        self.poll(&format!("`{label}` succeeding"), timeout, || async {
            let out = self.command(argv.clone()).timeout(ATTEMPT).output().await;
            match out {
                Ok(out) if out.success() => Check::Done(out),
                Ok(out) => Check::Not(format!(
                    "the last attempt: {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
                    out.status(),
                    tail(&out.stderr_str()),
                    tail(&out.stdout_str())
                )),
                Err(e) => Check::Not(format!("the last attempt: {e}")),
            }
        })
        .await
    }

    /// Waits until the systemd unit `unit` is active. A unit that fails meanwhile ends the wait
    /// at once with [`Error::WaitFailed`], its `systemctl status` and its journal's tail.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use std::time::Duration;
    /// vm.wait_for_unit("nginx.service", Duration::from_secs(120)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_unit(&self, unit: &str, timeout: Duration) -> Result<()> {
        let q = quote(unit)?;
        let probe = format!(
            "command -v systemctl >/dev/null || {{ echo no-systemd; exit 0; }}; systemctl is-active {q}; true"
        );
        let evidence = format!(
            "s=; [ \"$(id -u)\" = 0 ] || s='sudo -n'; $s systemctl status --no-pager --full {q} 2>&1 | tail -n 30; \
             echo '--- journal ---'; $s journalctl --no-pager -n 30 -u {q} 2>&1; true"
        );
        let what = format!("unit {unit} active");
        self.poll(&what, timeout, || async {
            let state = match self.sh(probe.clone()).timeout(ATTEMPT).output().await {
                Ok(out) => out.stdout_str().trim().to_owned(),
                Err(e) => return Check::Not(format!("the last check: {e}")),
            };
            match state.as_str() {
                "active" => Check::Done(()),
                "no-systemd" => Check::Fail(Error::WaitFailed {
                    vm: self.name().to_owned(),
                    what: format!("cannot wait for unit {unit}: the guest has no systemd"),
                    evidence: "wait for a file or a port instead (wait_for_file, wait_for_port)"
                        .into(),
                }),
                "failed" => {
                    let evidence = self
                        .sh(evidence.clone())
                        .timeout(ATTEMPT)
                        .output()
                        .await
                        .map(|o| o.stdout_str())
                        .unwrap_or_else(|e| format!("(its status could not be read: {e})"));
                    Check::Fail(Error::WaitFailed {
                        vm: self.name().to_owned(),
                        what: format!("unit {unit} failed"),
                        evidence,
                    })
                }
                other => Check::Not(format!("the unit was last `{other}`")),
            }
        })
        .await
    }

    /// Waits until something in the guest listens on TCP `port` (on any address or the
    /// loopback) and a connection to it through the VM's SSH link succeeds — so a
    /// [`Vm::forward`] of that port works from then on.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use std::time::Duration;
    /// vm.wait_for_port(80, Duration::from_secs(60)).await?;
    /// let addr = vm.forward(80).await?;   // 127.0.0.1:PORT on the host
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_port(&self, port: u16, timeout: Duration) -> Result<()> {
        // /proc/net/tcp{,6}: `sl local rem st ...`, addresses as HEXIP:HEXPORT, LISTEN is 0A.
        let probe = format!(
            "grep -qE '^ *[0-9]+: [0-9A-F]+:{port:04X} [0-9A-F]+:[0-9A-F]+ 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null"
        );
        self.poll(&format!("a listener on port {port}"), timeout, || async {
            match self.sh(probe.clone()).timeout(ATTEMPT).output().await {
                Ok(out) if out.success() => {}
                Ok(_) => return Check::Not(format!("nothing listened on TCP port {port} in the guest at the last check")),
                Err(e) => return Check::Not(format!("the last check: {e}")),
            }
            match self.connect_port(port).await {
                Ok(_) => Check::Done(()),
                Err(e) => Check::Not(format!(
                    "port {port} is listening but a connection to 127.0.0.1:{port} in the guest failed ({e}); \
                     is it bound to another address only?"
                )),
            }
        })
        .await
    }

    /// Waits until `path` exists in the guest.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> vmtest::Result<()> {
    /// use std::time::Duration;
    /// vm.wait_for_file("/run/agent.ready", Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_file(&self, path: &str, timeout: Duration) -> Result<()> {
        let argv = ["test", "-e", path];
        self.poll(&format!("{path} existing"), timeout, || async {
            match self.command(argv).timeout(ATTEMPT).output().await {
                Ok(out) if out.success() => Check::Done(()),
                Ok(_) => Check::Not(format!("{path} did not exist at the last check")),
                Err(e) => Check::Not(format!("the last check: {e}")),
            }
        })
        .await
    }

    /// Polls `check` until it is done, fails, or the scaled `timeout` passes.
    async fn poll<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Check<T>>,
    {
        let limit = timeout * self.link.factor();
        let started = Instant::now();
        let mut last = String::from("no check finished");
        loop {
            let remaining = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, check()).await {
                Ok(Check::Done(value)) => return Ok(value),
                Ok(Check::Fail(e)) => return Err(e),
                Ok(Check::Not(seen)) => last = seen,
                Err(_) => {}
            }
            if started.elapsed() + POLL >= limit {
                return Err(Error::WaitTimeout {
                    vm: self.name().to_owned(),
                    what: what.to_owned(),
                    after: started.elapsed(),
                    evidence: last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One check of a wait.
enum Check<T> {
    Done(T),
    /// Not yet; what was seen.
    Not(String),
    /// Never: stop waiting.
    Fail(Error),
}
