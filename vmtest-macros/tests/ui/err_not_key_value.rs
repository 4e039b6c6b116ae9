use vmtest::{vmtest, Vm};

#[vmtest(image)]
async fn bare_key(_vm: &Vm) {}

#[vmtest("recipe:tiny")]
async fn bare_value(_vm: &Vm) {}

#[vmtest(image("recipe:tiny"))]
async fn call_syntax(_vm: &Vm) {}

#[vmtest(cpus = )]
async fn missing_value(_vm: &Vm) {}

#[vmtest(cpus = 2 memory = "1G")]
async fn missing_comma(_vm: &Vm) {}

fn main() {}
