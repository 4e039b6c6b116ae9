use vmtest::{vmtest, Vm};

#[vmtest(cpus = "2")]
async fn quoted_cpus(_vm: &Vm) {}

#[vmtest(cpus = 1.5)]
async fn float_cpus(_vm: &Vm) {}

#[vmtest(memory = 1.5)]
async fn float_memory(_vm: &Vm) {}

#[vmtest(image = tiny)]
async fn bare_image(_vm: &Vm) {}

fn main() {}
