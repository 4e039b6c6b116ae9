//! The guest as the host knows it: its identity (keys, hostname, instance id), the cloud-init
//! seed that tells it, how to reach it ([`reach`]), SSH into it, its serial console, and what a
//! command run in it returned.

pub(crate) mod console;
pub(crate) mod identity;
pub(crate) mod output;
pub(crate) mod reach;
pub(crate) mod seed;
pub(crate) mod shell;
pub(crate) mod ssh;
