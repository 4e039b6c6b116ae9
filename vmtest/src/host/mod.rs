//! The host: where things live on disk, the processes the framework supervises, the programs
//! it needs, named network namespaces, whether KVM works, and which test is running.

pub(crate) mod files;
pub(crate) mod kvm;
pub(crate) mod libvirt;
pub(crate) mod netns;
pub(crate) mod paths;
pub(crate) mod process;
pub(crate) mod remap;
pub(crate) mod test;
pub(crate) mod tools;
