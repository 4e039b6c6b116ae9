use vmtest::{vmtest, Vm, VmSpec};

// A function that is not a `#[vmtest::fixture]`: a type error on the path.
fn not_a_fixture() -> VmSpec {
    VmSpec::new()
}

#[vmtest(fixture = not_a_fixture)]
async fn leases_a_function(_vm: &Vm) {}

fn main() {}
