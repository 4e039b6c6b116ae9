//! How to reach a running VM over SSH — from the test that booted it, from another test process
//! sharing it as a fixture, and from a terminal (`vmtest-runner ssh`). One description, recorded
//! in the ledger once the guest answers, so every one of them connects the same way.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ssh::Connector;

/// Where a VM's SSH server is and how to log in: address, user, key, the pinned host key, and
/// the network namespace to enter first when the address is only reachable from inside one.
///
/// Read it from [`Vm::reach`](crate::Vm::reach), or from the ledger
/// ([`vmtest::ledger`](crate::ledger)) for a VM of another process.
///
/// ```no_run
/// # fn demo(reach: &vmtest::Reach) -> std::io::Result<()> {
/// // An OpenSSH command that runs `uname -a` in the guest, with the pinned host key.
/// let status = reach.ssh_command(&["uname", "-a"]).status()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// The VM's name.
    pub vm: String,
    /// The SSH server: `127.0.0.1:PORT` through the VM's management NIC, or the guest's own
    /// address on its segment (port 22), reachable from inside [`Reach::hop`].
    pub addr: SocketAddr,
    /// The user to log in as.
    pub user: String,
    /// The private key file to log in with.
    pub key: PathBuf,
    /// The guest's host key, pinned: one OpenSSH public key line.
    pub host_key: String,
    /// A `known_hosts` file that pins [`Reach::host_key`] for [`Reach::addr`].
    pub known_hosts: PathBuf,
    /// The namespace to enter before connecting, if [`Reach::addr`] is on a segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<Hop>,
}

/// A network namespace a connection must start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Hop {
    /// A named namespace (made as root): `ip netns exec NAME ...`.
    Netns {
        /// Its name under `/run/netns`.
        name: String,
    },
    /// The namespaces of a running process: the private namespace of a segment made without
    /// root lives only as long as the processes in it (its dnsmasq).
    Process {
        /// A process inside the namespace.
        pid: u32,
        /// Whether a user namespace owns the network namespace (enter it first).
        user_namespace: bool,
    },
}

impl Reach {
    /// The `known_hosts` line that pins the host key for this address, as OpenSSH names the
    /// host: `[127.0.0.1]:PORT` for a forwarded port, the bare address for port 22.
    pub fn known_hosts_line(&self) -> String {
        let host = if self.addr.port() == 22 {
            self.addr.ip().to_string()
        } else {
            format!("[{}]:{}", self.addr.ip(), self.addr.port())
        };
        format!("{host} {}\n", self.host_key.trim())
    }

    /// An OpenSSH command that logs in with the key and the pinned host key — entering the
    /// namespace first when there is a [`Reach::hop`] — and runs `command` (a shell when it is
    /// empty), each element one argument, quoted for the guest's shell. Needs `ssh` (openssh-client), and `nsenter` or `ip` for a hop.
    pub fn ssh_command(&self, command: &[&str]) -> Command {
        let mut cmd = match &self.hop {
            None => Command::new("ssh"),
            Some(Hop::Netns { name }) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", name, "ssh"]);
                c
            }
            Some(Hop::Process {
                pid,
                user_namespace,
            }) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--target={pid}"));
                if *user_namespace {
                    c.args(["--user", "--preserve-credentials"]);
                }
                c.args(["--net", "ssh"]);
                c
            }
        };
        cmd.arg("-i")
            .arg(&self.key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
                "-p",
            ])
            .arg(self.addr.port().to_string())
            .arg(format!("{}@{}", self.user, self.addr.ip()));
        if !command.is_empty() {
            // OpenSSH joins its arguments with spaces for the guest's shell: quote each, so
            // they arrive as given, exactly as `Vm::command` sends them. (An argument with a
            // NUL byte stays as it is, and spawning the command then fails, saying so.)
            let quoted = command
                .iter()
                .map(|arg| super::shell::quote(arg).unwrap_or_else(|_| (*arg).to_owned()));
            cmd.arg("--").args(quoted);
        }
        cmd
    }

    /// Opens connections from inside [`Reach::hop`], for a process other than the segment's
    /// owner; `None` when the address is reachable directly.
    pub(crate) fn connector(&self) -> Option<Connector> {
        self.hop.clone().map(connector_through)
    }
}

/// Opens connections from inside `hop`'s network namespace, from any process.
pub(crate) fn connector_through(hop: Hop) -> Connector {
    Arc::new(move |addr, timeout| {
        let (user, net) = match &hop {
            Hop::Netns { name } => (None, File::open(crate::host::netns::path_of(name))?),
            Hop::Process {
                pid,
                user_namespace,
            } => {
                let user = if *user_namespace {
                    Some(File::open(format!("/proc/{pid}/ns/user"))?)
                } else {
                    None
                };
                (user, File::open(format!("/proc/{pid}/ns/net"))?)
            }
        };
        let fd = crate::host::netns::open_in(user.as_ref(), &net, move || {
            std::net::TcpStream::connect_timeout(&addr, timeout).map(std::os::fd::OwnedFd::from)
        })?;
        Ok(std::net::TcpStream::from(fd))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(addr: &str, hop: Option<Hop>) -> Reach {
        Reach {
            vm: "vtabc".into(),
            addr: addr.parse().unwrap(),
            user: "vmtest".into(),
            key: "/run/vm/id_ed25519".into(),
            host_key: "ssh-ed25519 AAAAkey root@vtabc\n".into(),
            known_hosts: "/run/vm/known_hosts".into(),
            hop,
        }
    }

    fn argv(cmd: &Command) -> Vec<String> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn known_hosts_name_the_host_as_openssh_does() {
        assert_eq!(
            reach("127.0.0.1:2222", None).known_hosts_line(),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAkey root@vtabc\n"
        );
        assert_eq!(
            reach("10.208.0.100:22", None).known_hosts_line(),
            "10.208.0.100 ssh-ed25519 AAAAkey root@vtabc\n"
        );
    }

    #[test]
    fn the_ssh_command_enters_the_hop_first() {
        let direct = argv(&reach("127.0.0.1:2222", None).ssh_command(&["true"]));
        assert_eq!(direct[0], "ssh");
        assert!(direct.ends_with(&["vmtest@127.0.0.1".into(), "--".into(), "true".into()]));
        assert!(direct.contains(&"UserKnownHostsFile=/run/vm/known_hosts".to_owned()));
        // Quoted for the guest's shell, as `Vm::command` quotes.
        let quoted = argv(&reach("127.0.0.1:2222", None).ssh_command(&["echo", "a b", "$X"]));
        assert!(quoted.ends_with(&["echo".into(), "'a b'".into(), "'$X'".into()]));
        let named = argv(
            &reach(
                "10.208.0.100:22",
                Some(Hop::Netns {
                    name: "vtseg".into(),
                }),
            )
            .ssh_command(&[]),
        );
        assert_eq!(named[..5], ["ip", "netns", "exec", "vtseg", "ssh"]);
        assert_eq!(named.last().unwrap(), "vmtest@10.208.0.100");
        let private = argv(
            &reach(
                "10.208.0.100:22",
                Some(Hop::Process {
                    pid: 42,
                    user_namespace: true,
                }),
            )
            .ssh_command(&[]),
        );
        assert_eq!(
            private[..6],
            [
                "nsenter",
                "--target=42",
                "--user",
                "--preserve-credentials",
                "--net",
                "ssh"
            ]
        );
    }

    #[test]
    fn a_reach_round_trips_through_json() {
        let r = reach(
            "10.208.0.100:22",
            Some(Hop::Netns {
                name: "vtseg".into(),
            }),
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""kind":"netns""#), "{json}");
        assert_eq!(serde_json::from_str::<Reach>(&json).unwrap(), r);
    }
}
