//! Ports: a guest port made reachable on the host's loopback ([`Vm::forward`]), and a host
//! service made reachable from the guest ([`Vm::forward_to_host`]). Both ride the VM's SSH
//! connection, so they work on every network kind — even for a guest that only lives on a
//! segment inside a namespace — and only ever bind 127.0.0.1.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::Vm;
use crate::error::{Error, IoContext, Result};

impl Vm {
    /// Makes TCP `guest_port` (on the guest's loopback) reachable at the returned address on
    /// the host's 127.0.0.1, for as long as the `Vm` lives. Each connection is carried by the
    /// VM's SSH connection (`direct-tcpip`), reconnected after a reboot. Asking again for the
    /// same port (or for one the spec declared with [`VmSpec::forward`](crate::VmSpec::forward))
    /// returns the same address.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> anyhow::Result<()> {
    /// use std::time::Duration;
    /// vm.wait_for_port(8080, Duration::from_secs(60)).await?;
    /// let addr = vm.forward(8080).await?;
    /// let mut conn = tokio::net::TcpStream::connect(addr).await?;
    /// # Ok(()) }
    /// ```
    pub async fn forward(&self, guest_port: u16) -> Result<SocketAddr> {
        self.open_forward(guest_port)
    }

    /// The forwards open now, each guest port with its address on the host's 127.0.0.1, in
    /// the order they were opened: the spec's first, then those asked for with
    /// [`Vm::forward`].
    ///
    /// ```no_run
    /// # fn t(vm: &vmtest::Vm) {
    /// for (guest_port, host) in vm.forwards() {
    ///     println!("guest port {guest_port} is {host} on the host");
    /// }
    /// # }
    /// ```
    pub fn forwards(&self) -> Vec<(u16, SocketAddr)> {
        let forwards = self.link.forwards.lock().unwrap_or_else(|p| p.into_inner());
        forwards
            .iter()
            .map(|(port, addr, _)| (*port, *addr))
            .collect()
    }

    /// Opens the forwards `ports` (the spec's), as the VM is handed to its test.
    pub(super) fn open_forwards(&self, ports: &[u16]) -> Result<()> {
        for &port in ports {
            self.open_forward(port)?;
        }
        Ok(())
    }

    fn open_forward(&self, guest_port: u16) -> Result<SocketAddr> {
        let mut forwards = self.link.forwards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, addr, _)) = forwards.iter().find(|(p, _, _)| *p == guest_port) {
            return Ok(*addr);
        }
        // Bound here, registered with tokio inside the task: the task runs where the VM's
        // connections live (a fixture's runtime outlives the test that asked for the forward).
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .context(|| format!("binding 127.0.0.1 for a forward of port {guest_port}"))?;
        let addr = listener
            .local_addr()
            .context(|| "reading a forward's address".to_owned())?;
        let sessions = Arc::clone(&self.link.sessions);
        let task = self.link.sessions.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("forward to guest port {guest_port}: {e}");
                    return;
                }
            };
            loop {
                let mut client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(e) => {
                        // Out of file descriptors and the like: pass, without spinning.
                        tracing::warn!("forward to guest port {guest_port}: accepting: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let sessions = Arc::clone(&sessions);
                tokio::spawn(async move {
                    let guest = match sessions.get(false).await {
                        Ok(s) => match s.connect_port(guest_port).await {
                            Ok(g) => Ok(g),
                            // A stale connection (the guest rebooted): once more, fresh.
                            Err(_) => match sessions.get(true).await {
                                Ok(s) => s.connect_port(guest_port).await,
                                Err(e) => Err(e),
                            },
                        },
                        Err(e) => Err(e),
                    };
                    match guest {
                        Ok(mut guest) => {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut guest).await;
                        }
                        Err(e) => tracing::warn!("forward to guest port {guest_port}: {e}"),
                    }
                });
            }
        });
        forwards.push((guest_port, addr, task));
        Ok(addr)
    }

    /// Makes `host` — a service the test runs on the host's loopback — reachable from the guest
    /// at `127.0.0.1:PORT`, returning PORT (the guest's SSH server picks it). Lasts as long as
    /// the VM's SSH connection: after a reboot, ask again.
    ///
    /// ```no_run
    /// # async fn t(vm: &vmtest::Vm) -> anyhow::Result<()> {
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let port = vm.forward_to_host(server.local_addr()?).await?;
    /// vm.command(["wget", "-qO-", &format!("http://127.0.0.1:{port}/")]).output().await?;
    /// # Ok(()) }
    /// ```
    pub async fn forward_to_host(&self, host: SocketAddr) -> Result<u16> {
        if !host.ip().is_loopback() {
            return Err(Error::Invalid {
                what: "forward_to_host",
                message: format!(
                    "{host} is not on the host's loopback; serve the guest from 127.0.0.1 only"
                ),
            });
        }
        self.link
            .sessions
            .get(false)
            .await?
            .reverse_forward(host)
            .await
    }

    /// A connection to `port` on the guest's loopback through the SSH link.
    pub(super) async fn connect_port(&self, port: u16) -> Result<()> {
        let session = self.link.sessions.get(false).await?;
        session.connect_port(port).await.map(drop)
    }
}
