//! The host: where things live on disk, the processes the framework supervises, the programs
//! it needs, named network namespaces, and whether KVM works.

pub(crate) mod files;
pub(crate) mod kvm;
pub(crate) mod netns;
pub(crate) mod paths;
pub(crate) mod process;
pub(crate) mod tools;
