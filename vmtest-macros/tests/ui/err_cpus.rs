use vmtest::{vmtest, Vm};

#[vmtest(cpus = 0)]
async fn zero(_vm: &Vm) {}

#[vmtest(cpus = 65)]
async fn too_many(_vm: &Vm) {}

#[vmtest(cpus = -1)]
async fn negative(_vm: &Vm) {}

fn main() {}
