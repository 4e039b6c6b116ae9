use vmtest::{vmtest, Vm, VmSpec};

#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new()
}

#[vmtest(fixture = shared, pxe_cmdline = "quiet", capture)]
async fn pxe_and_capture(_vm: &Vm) {}

#[vmtest(fixture = shared, management = false)]
async fn management(_vm: &Vm) {}

#[vmtest(
    fixture = shared,
    network = "pxe",
    pxe_kernel = "../../../../vmtest-macros/tests/ui/pxe/vmlinuz"
)]
async fn with_the_network(_vm: &Vm) {}

fn main() {}
