use vmtest::{vmtest, Vm};

#[vmtest(accel = "hvf")]
async fn unknown(_vm: &Vm) {}

#[vmtest(accel = "KVM")]
async fn capitalised(_vm: &Vm) {}

#[vmtest(accel = true)]
async fn boolean(_vm: &Vm) {}

fn main() {}
