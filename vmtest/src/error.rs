//! The one error type a test author sees. Every variant says what failed and what to do next.

use std::path::PathBuf;
use std::time::Duration;

/// Errors from booting, using or tearing down a VM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image reference is not one this version knows how to resolve.
    #[error("unknown image reference `{reference}`: {reason}\n  known references: {known}")]
    UnknownImage {
        /// The reference as written.
        reference: String,
        /// Why it could not be resolved.
        reason: String,
        /// The references that would have worked.
        known: String,
    },

    /// A local image recipe failed to build.
    #[error(
        "building image recipe `{recipe}` failed ({status})\n--- last lines of its output ---\n{output_tail}\n  rerun `{command}` to see everything"
    )]
    ImageBuild {
        /// The recipe name.
        recipe: String,
        /// How the build ended.
        status: String,
        /// The last lines the build printed.
        output_tail: String,
        /// The command that reproduces the build.
        command: String,
    },

    /// A built image's manifest is missing or malformed.
    #[error("image at {} is unusable: {reason}\n  delete that directory to have it rebuilt", dir.display())]
    BadImage {
        /// The image directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Downloading an image, or the checksum file naming its sha256, failed.
    #[error("downloading {url} failed: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What failed and what to do.
        message: String,
    },

    /// A downloaded or cached image does not have the digest it must have.
    #[error(
        "checksum mismatch for {url} ({}): expected {expected}, got {actual}\n  {hint}",
        file.display()
    )]
    ChecksumMismatch {
        /// The URL the image comes from.
        url: String,
        /// The file that was hashed (already deleted).
        file: PathBuf,
        /// The sha256 it must have.
        expected: String,
        /// The sha256 it had.
        actual: String,
        /// What happened to the file and what to do.
        hint: String,
    },

    /// A host program the framework needs is not installed.
    #[error("`{program}` was not found on this host: {hint}")]
    MissingTool {
        /// The program looked for.
        program: String,
        /// How to install it.
        hint: String,
    },

    /// The machine (its backend's process) ended before the VM became ready.
    #[error(
        "{backend} exited before VM `{vm}` was ready ({status})\n--- {backend} output ---\n{output}\n--- console tail ({}) ---\n{console_tail}",
        console.display()
    )]
    MachineExited {
        /// The VM's name.
        vm: String,
        /// The backend that ran it (`QEMU`).
        backend: &'static str,
        /// The exit status.
        status: String,
        /// What the backend's process printed.
        output: String,
        /// The serial console file.
        console: PathBuf,
        /// The last lines of the serial console.
        console_tail: String,
    },

    /// The guest kernel panicked or dropped to an emergency shell: during boot, or later (the
    /// next command after it fails with this).
    #[error(
        "VM `{vm}` crashed: the console shows `{marker}`\n--- console tail ({}) ---\n{console_tail}",
        console.display()
    )]
    GuestCrashed {
        /// The VM's name.
        vm: String,
        /// The console line that proved the crash.
        marker: String,
        /// The serial console file.
        console: PathBuf,
        /// The last lines of the serial console.
        console_tail: String,
    },

    /// The VM did not become ready before its deadline.
    #[error(
        "VM `{vm}` was not ready after {waited:.1?} ({accel}): stalled while {stage}\n  last attempt: {last_error}\n--- console tail ({}) ---\n{console_tail}",
        console.display()
    )]
    BootTimeout {
        /// The VM's name.
        vm: String,
        /// How long readiness was awaited.
        waited: Duration,
        /// The accelerator in use (timeouts are scaled under TCG).
        accel: String,
        /// The readiness stage that stalled.
        stage: String,
        /// The error of the last attempt at that stage.
        last_error: String,
        /// The serial console file.
        console: PathBuf,
        /// The last lines of the serial console.
        console_tail: String,
    },

    /// The serial console did not show what a wait expected before its deadline.
    #[error(
        "VM `{vm}`: the console did not match /{pattern}/ within {waited:.1?}\n--- console tail, escape sequences stripped ({}) ---\n{console_tail}",
        console.display()
    )]
    ConsoleTimeout {
        /// The VM's name.
        vm: String,
        /// The regular expression waited for.
        pattern: String,
        /// How long it was awaited.
        waited: Duration,
        /// The serial console file.
        console: PathBuf,
        /// The last lines of the console since the wait's start, escape sequences stripped.
        console_tail: String,
    },

    /// SSH was asked of a VM whose SSH server has not been awaited.
    #[error(
        "VM `{vm}` has no SSH yet: it was made ready by `{readiness}`, which does not wait for SSH. \
         Call `vm.wait_for_ssh()` once the guest runs an SSH server with vmtest's key (a seeded \
         image, or an installed system given `vm.authorized_key()`), or boot it with ready = \"ssh\""
    )]
    SshNotReady {
        /// The VM's name.
        vm: String,
        /// How it was made ready, as the attribute writes it.
        readiness: String,
    },

    /// The SSH server presented a host key other than the pinned one.
    #[error(
        "SSH host key mismatch for {addr}: expected the pinned key {expected}, the server offered {offered}; the connection was refused"
    )]
    HostKeyMismatch {
        /// The address connected to.
        addr: String,
        /// The pinned key (OpenSSH format).
        expected: String,
        /// The key the server offered (OpenSSH format).
        offered: String,
    },

    /// An SSH operation failed.
    #[error("SSH to {addr}: {source}")]
    Ssh {
        /// The address connected to.
        addr: String,
        /// What failed.
        #[source]
        source: SshError,
    },

    /// A command run with [`crate::Command::succeed`] (or a helper built on it) did not exit 0.
    #[error(
        "`{command}` failed in VM {vm} ({status})\n--- stderr (last lines) ---\n{stderr_tail}\n--- stdout (last lines) ---\n{stdout_tail}"
    )]
    CommandFailed {
        /// The VM's name.
        vm: String,
        /// The command, as the test gave it.
        command: String,
        /// `exit code N` or `killed by signal S`.
        status: String,
        /// The last lines of its stderr.
        stderr_tail: String,
        /// The last lines of its stdout.
        stdout_tail: String,
    },

    /// A command run with [`crate::Command::fail`] exited 0.
    #[error("`{command}` succeeded in VM {vm}, but the test expected it to fail\n--- stdout (last lines) ---\n{stdout_tail}")]
    CommandSucceeded {
        /// The VM's name.
        vm: String,
        /// The command, as the test gave it.
        command: String,
        /// The last lines of its stdout.
        stdout_tail: String,
    },

    /// A command's deadline passed; it was killed in the guest with everything it started.
    #[error(
        "`{command}` in VM {vm} did not finish within {after:.1?} and was killed in the guest; \
         raise the command's `timeout` if it is legitimately slow (deadlines are multiplied under TCG)"
    )]
    CommandTimeout {
        /// The VM's name.
        vm: String,
        /// The command, as the test gave it.
        command: String,
        /// How long it ran.
        after: Duration,
    },

    /// A wait (`wait_for_unit`, `wait_for_port`, `wait_for_file`, `wait_until_succeeds`,
    /// `reboot`) did not see its condition before its deadline.
    #[error("VM {vm}: {what} not within {after:.1?}\n{evidence}")]
    WaitTimeout {
        /// The VM's name.
        vm: String,
        /// What was waited for (`unit nginx.service active`).
        what: String,
        /// How long it waited.
        after: Duration,
        /// What the last check saw, and what to look at next.
        evidence: String,
    },

    /// A waited-for condition can no longer come true (a systemd unit failed).
    #[error("VM {vm}: {what}\n{evidence}")]
    WaitFailed {
        /// The VM's name.
        vm: String,
        /// What happened (`unit nginx.service failed`).
        what: String,
        /// The evidence: status, journal tail.
        evidence: String,
    },

    /// Copying files to or from the guest failed.
    #[error("VM {vm}: {what}: {message}")]
    Transfer {
        /// The VM's name.
        vm: String,
        /// What was being copied (`uploading ./a to /tmp/a`).
        what: String,
        /// Why it failed, and what to do.
        message: String,
    },

    /// The backend running the VM cannot do what was asked.
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The backend (`QEMU`).
        backend: &'static str,
        /// What was asked.
        operation: &'static str,
    },

    /// A snapshot (see [`VmSpec::snapshot`](crate::VmSpec::snapshot)) could not be built, or a
    /// freshly built one did not restore. A damaged or stale snapshot found in the cache is
    /// rebuilt without this error; it is returned only when that rebuild did not help.
    #[error("snapshot {}: {message}", dir.display())]
    Snapshot {
        /// The snapshot's directory in the image cache (`vmtest-runner images list`).
        dir: PathBuf,
        /// What failed, and what to do about it.
        message: String,
    },

    /// libvirtd could not be reached, or refused what the libvirt backend asked.
    #[error("libvirt at {uri}: {message}\n  {hint}")]
    Libvirt {
        /// The connection URI (`VMTEST_LIBVIRT_URI`, default `qemu:///system`).
        uri: String,
        /// libvirt's own message.
        message: String,
        /// What to do about it.
        hint: String,
    },

    /// Setting up or using an isolated / PXE network failed.
    #[error("network: {what}: {message}")]
    Network {
        /// What was being done (`ip link add ...`, `starting dnsmasq`, ...).
        what: String,
        /// What failed, and what to do about it.
        message: String,
    },

    /// A shared fixture's VM, booted by another process, could not be had.
    #[error("shared fixture {fixture}: {message}")]
    Fixture {
        /// `crate::module::name` of the fixture.
        fixture: String,
        /// What went wrong, and where the owner's log is.
        message: String,
        /// The error that caused it, when this process saw it.
        #[source]
        source: Option<Box<Error>>,
    },

    /// A shared environment, brought up by another process, could not be had.
    #[error("shared environment {env}: {message}")]
    SharedEnv {
        /// The environment's name.
        env: String,
        /// What went wrong, and where the owner's log is.
        message: String,
    },

    /// Something only the owner of a shared environment can do was asked of a handle attached
    /// to it from another test process (an attached [`Env`](crate::Env), its VMs or segments).
    #[error("{operation}: {message}")]
    Attached {
        /// What was asked.
        operation: String,
        /// Why this process cannot, and what to do instead.
        message: String,
    },

    /// A value passed to the API is invalid.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why, and what is accepted.
        message: String,
    },

    /// The project file `vmtest.toml` is malformed.
    #[error(
        "{}:{line}:{column}: {message}\n  fix the file (its keys are described in docs/images.md), or set VMTEST_CONFIG=none to ignore it",
        file.display()
    )]
    Config {
        /// The project file.
        file: PathBuf,
        /// The line of the offending key or value, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// An environment (an `[env.NAME]` table of `vmtest.toml`, or the file it names) is
    /// malformed, or refers to something it does not declare.
    #[error(
        "{}:{line}:{column}: {message}\n  fix the environment (docs/environments.md)",
        file.display()
    )]
    Environment {
        /// The file the mistake is in: the project file, or a file it names.
        file: PathBuf,
        /// The line of the offending key, value or reference, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A host I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the framework was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why an SSH operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection or the SSH handshake failed.
    #[error("connecting: {0}")]
    Connect(#[source] russh::Error),
    /// The connection from inside the segment's namespace could not be opened.
    #[error("connecting through the segment: {0}")]
    Via(#[source] std::io::Error),
    /// Authentication failed on the way.
    #[error("authenticating as {user}: {source}")]
    Auth {
        /// The user logged in as.
        user: String,
        /// The protocol error.
        #[source]
        source: russh::Error,
    },
    /// The guest does not accept the key.
    #[error("the guest refused the key for user `{user}`")]
    Refused {
        /// The user logged in as.
        user: String,
    },
    /// No session could be made in time.
    #[error("no SSH session within {0:?}")]
    Timeout(Duration),
    /// A channel could not be opened, or the command not started.
    #[error("starting `{command}`: {source}")]
    Start {
        /// The command line.
        command: String,
        /// The protocol error.
        #[source]
        source: russh::Error,
    },
    /// The guest's SSH server closed every channel opened for the command before starting it.
    #[error(
        "the guest's SSH server closed the channel of `{command}` before starting it, \
         {attempts} times; the command did not run"
    )]
    NotStarted {
        /// The command line.
        command: String,
        /// How many channels were opened for it.
        attempts: u32,
    },
    /// The connection ended before the command's exit status arrived: its output cannot be
    /// trusted.
    #[error("the connection ended before `{command}` finished")]
    Cut {
        /// The command line.
        command: String,
    },
    /// The guest's SSH server refused a port forward (a `direct-tcpip` or `tcpip-forward`).
    #[error("forwarding port {port}: {source}; the guest's SSH server must allow TCP forwarding")]
    Forward {
        /// The guest port (0: chosen by the server).
        port: u16,
        /// What the server answered.
        #[source]
        source: russh::Error,
    },
    /// The runtime that owns the connection failed.
    #[error("connecting: {0}")]
    Runtime(#[source] tokio::task::JoinError),
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what the framework was doing to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
