use vmtest::{vmtest, Vm};

// Paths are relative to the crate root; trybuild's crate is TARGET/tests/trybuild/vmtest-macros.

#[vmtest(pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz")]
async fn no_network(_vm: &Vm) {}

#[vmtest(network = "isolated", pxe_files = "../../../../vmtest-macros/tests/ui/pxe/files")]
async fn isolated_network(_vm: &Vm) {}

#[vmtest(network = "user", pxe_cmdline = "quiet")]
async fn user_network(_vm: &Vm) {}

fn main() {}
