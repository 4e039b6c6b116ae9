//! Environments: a lab of keys, networks and VMs declared in `vmtest.toml` (see
//! `docs/environments.md`), read and checked whole before anything of it exists.

pub(crate) mod file;
pub(crate) mod graph;
pub(crate) mod lab;
pub(crate) mod template;
