use vmtest::{vmtest, Vm};

#[vmtest(scale_timeout = false)]
async fn without_timeout(_vm: &Vm) {}

#[vmtest(timeout = "1m", scale_timeout = "false")]
async fn quoted(_vm: &Vm) {}

#[vmtest(timeout = "1m", scale_timeout = 0)]
async fn integer(_vm: &Vm) {}

fn main() {}
