use vmtest::{Vm, VmSpec};

#[vmtest::fixture]
async fn is_async() -> VmSpec {
    VmSpec::new()
}

#[vmtest::fixture]
fn takes_parameters(_vm: &Vm, _n: u32) -> VmSpec {
    VmSpec::new()
}

#[vmtest::fixture(memory = "1G")]
fn with_arguments() -> VmSpec {
    VmSpec::new()
}

#[vmtest::fixture]
fn returns_nothing() {}

#[vmtest::fixture]
fn returns_something_else() -> Vm {
    unimplemented!()
}

#[vmtest::fixture]
fn generic<T>() -> VmSpec {
    VmSpec::new()
}

#[vmtest::fixture]
#[vmtest::vmtest]
fn also_a_test() -> VmSpec {
    VmSpec::new()
}

#[vmtest::fixture]
static NOT_A_FUNCTION: u8 = 0;

fn main() {}
