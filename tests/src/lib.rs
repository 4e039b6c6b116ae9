//! End-to-end tests live in `tests/`; this library holds what they share.

pub mod bench;
pub mod debian;
pub mod hands;
pub mod http;
pub mod installer;
pub mod leaks;
pub mod matrix;
pub mod private_run;
pub mod remote;
pub mod runner;
pub mod scale;
pub mod scenario;
