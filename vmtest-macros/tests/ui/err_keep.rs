use vmtest::{vmtest, Vm};

#[vmtest(keep = "yes")]
async fn unknown(_vm: &Vm) {}

#[vmtest(keep = "Always")]
async fn capitalised(_vm: &Vm) {}

#[vmtest(keep = true)]
async fn boolean(_vm: &Vm) {}

#[vmtest(keep("always"))]
async fn call_syntax(_vm: &Vm) {}

#[vmtest(keep, keep = "never")]
async fn twice(_vm: &Vm) {}

fn main() {}
