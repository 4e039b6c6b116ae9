use vmtest::{vmtest, Vm};

#[vmtest(cpus = 1, memory = "1G", cpus = 2)]
async fn duplicate(_vm: &Vm) {}

fn main() {}
