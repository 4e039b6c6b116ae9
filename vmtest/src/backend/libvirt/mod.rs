//! The libvirt backend (cargo feature `libvirt`): machines run by libvirtd, through the `virt`
//! crate. So far only the connection and what the host offers; see `docs/backends.md`.

mod host;

pub(crate) use host::probe;
