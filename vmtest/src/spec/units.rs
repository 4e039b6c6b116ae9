//! The grammars of written values — sizes, durations, recipe names — shared with the
//! attribute: `vmtest-units` is the one source of both (a proc-macro crate cannot depend on
//! this one), so `memory = "2G"` means the same in `#[vmtest]`, `vmtest.toml` and
//! `VMTEST_BUDGET_MEMORY`.

pub(crate) use vmtest_units::*;
