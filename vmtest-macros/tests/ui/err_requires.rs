use vmtest::{vmtest, Vm};

#[vmtest(requires = "tpm")]
async fn unknown(_vm: &Vm) {}

#[vmtest(requires = kvm)]
async fn unquoted(_vm: &Vm) {}

#[vmtest(requires = true)]
async fn boolean(_vm: &Vm) {}

#[vmtest(requires = "kvm", accel = "tcg")]
async fn contradiction(_vm: &Vm) {}

fn main() {}
