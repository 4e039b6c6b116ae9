use vmtest::{vmtest, Vm};

#[vmtest(firmware = "efi")]
async fn unknown(_vm: &Vm) {}

#[vmtest(firmware = "UEFI")]
async fn capitalised(_vm: &Vm) {}

#[vmtest(firmware = uefi)]
async fn unquoted(_vm: &Vm) {}

#[vmtest(ovmf = "uefi")]
async fn alias(_vm: &Vm) {}

fn main() {}
