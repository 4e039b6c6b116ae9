use vmtest::{vmtest, Vm};

#[vmtest(memory = "512MB")]
async fn decimal_unit(_vm: &Vm) {}

#[vmtest(memory = "1.5G")]
async fn fraction(_vm: &Vm) {}

#[vmtest(memory = "")]
async fn empty(_vm: &Vm) {}

#[vmtest(memory = "32M")]
async fn too_small(_vm: &Vm) {}

#[vmtest(memory = "2048G")]
async fn too_large(_vm: &Vm) {}

// Integers are MiB, with the same bounds.
#[vmtest(memory = 32)]
async fn too_small_integer(_vm: &Vm) {}

fn main() {}
