use vmtest::{vmtest, Vm};

#[vmtest(backend = "kvm")]
async fn unknown(_vm: &Vm) {}

#[vmtest(backend = "QEMU")]
async fn capitalised(_vm: &Vm) {}

#[vmtest(backend = libvirt)]
async fn unquoted(_vm: &Vm) {}

fn main() {}
