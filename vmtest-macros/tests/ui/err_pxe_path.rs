use vmtest::{vmtest, Vm};

// Paths are relative to the crate root; trybuild's crate is TARGET/tests/trybuild/vmtest-macros.

#[vmtest(network = "pxe", pxe_kernel = "tests/pxe/vmlinuz")]
async fn missing_kernel(_vm: &Vm) {}

#[vmtest(
    network = "pxe",
    pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz",
    pxe_initrd = "../../../../vmtest-macros/tests/ui/pxe"
)]
async fn initrd_is_a_directory(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_script = "/srv/tftp/boot.ipxe")]
async fn absolute_script(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_files = "../../../../vmtest-macros/tests/ui/pxe/boot.ipxe")]
async fn files_is_a_file(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_files = "tests/pxe/files")]
async fn missing_directory(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_kernel = "")]
async fn empty(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_script = include_str!("pxe/boot.ipxe"))]
async fn not_a_literal(_vm: &Vm) {}

fn main() {}
