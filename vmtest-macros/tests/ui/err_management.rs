use vmtest::{vmtest, Vm};

#[vmtest(management = false)]
async fn default_network(_vm: &Vm) {}

#[vmtest(network = "user", management = false)]
async fn user_network(_vm: &Vm) {}

#[vmtest(network = "isolated", management = "false")]
async fn string(_vm: &Vm) {}

#[vmtest(network = "pxe", management = 0)]
async fn integer(_vm: &Vm) {}

#[vmtest(network = "isolated", management)]
async fn bare(_vm: &Vm) {}

fn main() {}
