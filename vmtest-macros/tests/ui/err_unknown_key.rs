use vmtest::{vmtest, Vm};

#[vmtest(kernel = "bzImage")]
async fn unknown(_vm: &Vm) {}

#[vmtest(mem = "1G", vcpus = 2)]
async fn aliases(_vm: &Vm) {}

fn main() {}
