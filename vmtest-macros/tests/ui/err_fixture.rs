// The parameters are named for what the attribute checks, not used.
#![allow(unused_variables)]

use vmtest::{vmtest, Vm, VmSpec};

#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new()
}

#[vmtest(fixture = shared, image = "recipe:debian-12", memory = "1G", cpus = 2)]
async fn describes_the_vm(_vm: &Vm) {}

#[vmtest(fixture = shared, disk = "8G", network = "isolated", backend = "qemu", accel = "kvm")]
async fn describes_the_vm_more(_vm: &Vm) {}

#[vmtest(fixture = shared, user_data = "../../../../vmtest-macros/tests/ui/user-data.yaml")]
async fn with_user_data(_vm: &Vm) {}

#[vmtest(fixture = shared, vms(a, b))]
async fn with_vms(a: &Vm, b: &Vm) {}

#[vmtest(fixture = "shared")]
async fn quoted(_vm: &Vm) {}

#[vmtest(fixture = shared())]
async fn called(_vm: &Vm) {}

fn main() {}
