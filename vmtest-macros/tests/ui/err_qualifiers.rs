use vmtest::{vmtest, Vm};

// A plain `fn` is accepted (see pass.rs); these qualifiers are not.

#[vmtest]
const fn is_const(_vm: &Vm) {}

#[vmtest]
async unsafe fn is_unsafe(_vm: &Vm) {}

#[vmtest]
async extern "C" fn has_abi(_vm: &Vm) {}

#[vmtest]
unsafe fn sync_unsafe(_vm: &Vm) {}

fn main() {}
