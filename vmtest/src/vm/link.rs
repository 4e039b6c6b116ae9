//! The VM's SSH side: where it is, the pinned host key, the connection kept between commands
//! ([`Sessions`]), and the port forwards riding on it.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use russh::keys::PublicKey;
use tokio::task::AbortHandle;

use crate::error::{Error, Result, SshError};
use crate::guest::reach::Reach;
use crate::guest::ssh::{Session, Target};
use crate::spec::Accel;

/// The SSH link of one VM. Dropping it stops its forwards and closes its connection.
pub(super) struct Link {
    pub sessions: Arc<Sessions>,
    /// How to reach the guest by hand; its address and host key change when SSH is awaited
    /// again ([`crate::Vm::wait_for_ssh`], [`crate::Vm::pin_host_key`]).
    pub reach: RwLock<Reach>,
    /// The [`crate::Vm::forward`]s: guest port, host address, accept loop (stopped with the
    /// link).
    pub forwards: Mutex<Vec<(u16, std::net::SocketAddr, AbortHandle)>>,
}

/// The connections kept between commands, shared with the tasks of port forwards (which must be
/// able to reconnect after a reboot without holding the `Vm`).
///
/// A command gets a connection no other command is using, and a new one is made when all are
/// busy (up to [`MAX_CONNECTIONS`]): commands run at once each on a connection of their own.
/// Dropbear (2022.83 to 2024.85, the tiny image's) closes a new channel when a child of another
/// channel of the same connection exits just before the command request arrives, and then
/// aborts the whole connection once that command writes (dropbear issue #321): commands that
/// share a connection cannot be made safe from here, commands on separate ones are.
pub(crate) struct Sessions {
    pool: tokio::sync::Mutex<Vec<Arc<Session>>>,
    target: RwLock<Target>,
    host_key: RwLock<PublicKey>,
    /// `Some(readiness)` while SSH has not been awaited (a VM made ready another way): every
    /// connection fails at once, naming it.
    not_ready: RwLock<Option<String>>,
    vm: String,
    /// Deadlines are multiplied by this under TCG.
    pub timeout_factor: u32,
    /// The runtime new SSH connections (and forwards) are made on, when the VM outlives the
    /// runtimes of the tests using it (a fixture's): a connection's task must not die with
    /// one test.
    home: OnceLock<tokio::runtime::Handle>,
}

impl Link {
    pub fn new(
        target: Target,
        host_key: PublicKey,
        reach: Reach,
        accel: Accel,
        session: Option<Session>,
    ) -> Link {
        Link {
            sessions: Arc::new(Sessions {
                pool: tokio::sync::Mutex::new(session.map(Arc::new).into_iter().collect()),
                vm: reach.vm.clone(),
                target: RwLock::new(target),
                host_key: RwLock::new(host_key),
                not_ready: RwLock::new(None),
                timeout_factor: accel.timeout_factor(),
                home: OnceLock::new(),
            }),
            reach: RwLock::new(reach),
            forwards: Mutex::new(Vec::new()),
        }
    }

    /// A link whose SSH side has not been awaited: every connection fails at once, naming
    /// `readiness`, until [`Link::ready`].
    pub fn not_ready(self, readiness: String) -> Link {
        *write(&self.sessions.not_ready) = Some(readiness);
        self
    }

    /// SSH answered at `target` with the pinned key: connections go there from now on.
    pub async fn ready(&self, target: Target, session: Session) {
        let addr = target.addr;
        *write(&self.sessions.target) = target;
        write(&self.reach).addr = addr;
        *self.sessions.pool.lock().await = vec![Arc::new(session)];
        *write(&self.sessions.not_ready) = None;
    }

    /// Pins another host key: the next connections expect it.
    pub async fn pin(&self, key: PublicKey, openssh: String) {
        *write(&self.sessions.host_key) = key;
        write(&self.reach).host_key = openssh;
        self.close().await;
    }

    /// How to reach the guest by hand, now.
    pub fn reach(&self) -> Reach {
        self.reach.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The timeout factor of the VM's accelerator.
    pub fn factor(&self) -> u32 {
        self.sessions.timeout_factor
    }

    /// Makes new connections and forwards on `home` from now on.
    pub fn set_home(&self, home: tokio::runtime::Handle) {
        let _ = self.sessions.home.set(home);
    }

    /// Closes the kept connections (the next command reconnects; running ones keep theirs).
    pub async fn close(&self) {
        self.sessions.pool.lock().await.clear();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for (_, _, task) in self
            .forwards
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// How many connections one VM keeps for commands at once; more commands at once share them.
const MAX_CONNECTIONS: usize = 8;

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    /// Where SSH goes now.
    pub fn target(&self) -> Target {
        self.target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The pinned host key now.
    pub fn host_key(&self) -> PublicKey {
        self.host_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether SSH has been awaited (at boot or since).
    pub fn ssh_awaited(&self) -> bool {
        self.not_ready
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Fails while SSH has not been awaited.
    fn check_ready(&self) -> Result<()> {
        match &*self.not_ready.read().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(readiness) => Err(Error::SshNotReady {
                vm: self.vm.clone(),
                readiness: readiness.clone(),
            }),
        }
    }

    /// A kept connection no command is using, or a new one when all are busy or closed, or
    /// when `fresh` asks (the kept ones are then dropped: a guest that rebooted does not keep
    /// half-open connections of ours; commands running on them keep theirs until they end).
    pub async fn get(&self, fresh: bool) -> Result<Arc<Session>> {
        self.check_ready()?;
        let mut pool = self.pool.lock().await;
        if fresh {
            pool.clear();
        }
        pool.retain(|s| !s.is_closed());
        // Held by the pool alone: no command, copy or forward is using it.
        if let Some(idle) = pool.iter().find(|s| Arc::strong_count(s) == 1) {
            return Ok(idle.clone());
        }
        if pool.len() >= MAX_CONNECTIONS {
            let least = pool.iter().min_by_key(|s| Arc::strong_count(s));
            return Ok(least.expect("a full pool").clone());
        }
        let session = Arc::new(self.connect(&self.host_key()).await?);
        pool.push(session.clone());
        Ok(session)
    }

    /// A new connection expecting `host_key`, made on the link's home runtime if it has one.
    pub async fn connect(&self, host_key: &PublicKey) -> Result<Session> {
        self.check_ready()?;
        let timeout = Duration::from_secs(30) * self.timeout_factor;
        let target = self.target();
        match self.home.get() {
            None => Session::connect(&target, host_key, timeout).await,
            Some(home) => {
                let (addr, key) = (target.addr, host_key.clone());
                home.spawn(async move { Session::connect(&target, &key, timeout).await })
                    .await
                    .map_err(|e| Error::Ssh {
                        addr: addr.to_string(),
                        source: SshError::Runtime(e),
                    })?
            }
        }
    }

    /// Spawns `task` where the VM's connections live, or on the current runtime; not at all
    /// outside any runtime (nothing could run it).
    pub fn spawn_detached<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(home) = self.home.get() {
            home.spawn(task);
        } else if let Ok(current) = tokio::runtime::Handle::try_current() {
            current.spawn(task);
        }
    }

    /// Spawns `task` where the VM's connections live.
    pub fn spawn<F>(&self, task: F) -> AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.home.get() {
            Some(home) => home.spawn(task).abort_handle(),
            None => tokio::spawn(task).abort_handle(),
        }
    }
}
