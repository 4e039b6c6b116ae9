use vmtest::{vmtest, Vm};

// Paths are relative to the crate root; trybuild's crate is TARGET/tests/trybuild/vmtest-macros.

#[vmtest(
    network = "pxe",
    pxe_initrd = "../../../../vmtest-macros/tests/ui/pxe/initrd.img"
)]
async fn initrd_without_kernel(_vm: &Vm) {}

#[vmtest(
    network = "pxe",
    pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz",
    pxe_script = "../../../../vmtest-macros/tests/ui/pxe/boot.ipxe"
)]
async fn kernel_and_script(_vm: &Vm) {}

#[vmtest(
    network = "pxe",
    pxe_script = "../../../../vmtest-macros/tests/ui/pxe/boot.ipxe",
    pxe_cmdline = "console=ttyS0"
)]
async fn script_and_cmdline(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_cmdline = "quiet\ninit=/bin/sh")]
async fn cmdline_on_two_lines(_vm: &Vm) {}

#[vmtest(network = "pxe", pxe_cmdline = ["quiet"])]
async fn cmdline_not_a_string(_vm: &Vm) {}

fn main() {}
