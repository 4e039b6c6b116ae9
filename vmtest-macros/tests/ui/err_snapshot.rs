use vmtest::{vmtest, Vm};

#[vmtest(network = "pxe", snapshot)]
async fn pxe_network(_vm: &Vm) {}

#[vmtest(snapshot = true, firmware = "uefi", ready = "lease")]
async fn uefi_and_lease(_vm: &Vm) {}

#[vmtest(snapshot = "true")]
async fn string(_vm: &Vm) {}

#[vmtest(snapshot(true))]
async fn call_syntax(_vm: &Vm) {}

fn main() {}
