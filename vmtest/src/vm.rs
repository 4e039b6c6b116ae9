//! The handle a test gets: one running VM.

/// A running VM. Torn down (QEMU stopped, overlay, seed, sockets and keys removed) when dropped.
pub struct Vm {
    _private: (),
}

impl Vm {
    /// SSH access to the guest, as the seeded user, with the injected host key pinned.
    pub fn ssh(&self) -> crate::ssh::Ssh<'_> {
        todo!()
    }
}
