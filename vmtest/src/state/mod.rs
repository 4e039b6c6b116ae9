//! What outlives a process: the ledger of everything created, the boot budget and the subnet
//! pool shared by all test processes on the host, the sweeper that undoes a dead owner's
//! leftovers, and the signal handlers that undo this process's own. All of it is kept as JSON
//! files in the run directory: the ledger one file per entry written atomically
//! ([`crate::host::files`]), the budget and the pool one versioned document each in a locked
//! [`store`].

pub(crate) mod budget;
pub(crate) mod ledger;
pub(crate) mod pool;
pub(crate) mod signals;
pub(crate) mod store;
pub(crate) mod sweep;
