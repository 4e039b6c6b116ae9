use vmtest::{vmtest, Vm};

#[vmtest]
async fn no_parameter() {}

#[vmtest]
async fn two_parameters(_vm: &Vm, _other: &Vm) {}

#[vmtest]
async fn by_value(_vm: Vm) {}

#[vmtest]
async fn mutable(_vm: &mut Vm) {}

#[vmtest]
async fn named_lifetime(_vm: &'static Vm) {}

#[vmtest]
async fn other_type(_vm: &String) {}

fn main() {}
