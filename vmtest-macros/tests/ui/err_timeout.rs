use vmtest::{vmtest, Vm};

#[vmtest(timeout = "90")]
async fn no_unit(_vm: &Vm) {}

#[vmtest(timeout = "1m30s")]
async fn compound(_vm: &Vm) {}

#[vmtest(timeout = "1.5m")]
async fn fraction(_vm: &Vm) {}

#[vmtest(timeout = "90ms")]
async fn milliseconds(_vm: &Vm) {}

#[vmtest(timeout = "0s")]
async fn zero(_vm: &Vm) {}

#[vmtest(timeout = "25h")]
async fn too_long(_vm: &Vm) {}

#[vmtest(timeout = 0)]
async fn zero_seconds(_vm: &Vm) {}

#[vmtest(timeout = 1.5)]
async fn float(_vm: &Vm) {}

// A plain `fn` body cannot be interrupted.
#[vmtest(timeout = "1m")]
fn sync_body(_vm: &Vm) {}

fn main() {}
