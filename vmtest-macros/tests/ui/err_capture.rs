use vmtest::{vmtest, Vm};

#[vmtest(capture)]
async fn default_network(_vm: &Vm) {}

#[vmtest(network = "user", capture = true)]
async fn user_network(_vm: &Vm) {}

#[vmtest(network = "isolated", capture = "true")]
async fn string(_vm: &Vm) {}

#[vmtest(network = "isolated", capture(true))]
async fn call_syntax(_vm: &Vm) {}

#[vmtest(network = "pxe", capture, capture = false)]
async fn twice(_vm: &Vm) {}

fn main() {}
