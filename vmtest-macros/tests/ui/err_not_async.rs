use vmtest::{vmtest, Vm};

#[vmtest]
fn not_async(_vm: &Vm) {}

#[vmtest]
async unsafe fn is_unsafe(_vm: &Vm) {}

#[vmtest]
async extern "C" fn has_abi(_vm: &Vm) {}

fn main() {}
