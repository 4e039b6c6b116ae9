use vmtest::{vmtest, Vm};

#[vmtest(network = "lan")]
async fn unknown(_vm: &Vm) {}

#[vmtest(network = "Isolated")]
async fn capitalised(_vm: &Vm) {}

#[vmtest(network = user)]
async fn unquoted(_vm: &Vm) {}

#[vmtest(network = 1)]
async fn integer(_vm: &Vm) {}

fn main() {}
