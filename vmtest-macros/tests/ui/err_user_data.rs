use vmtest::{vmtest, Vm};

// Paths are relative to the crate root; trybuild's crate is TARGET/tests/trybuild/vmtest-macros.

#[vmtest(user_data = "tests/ui/no-such-file.yaml")]
async fn missing_file(_vm: &Vm) {}

#[vmtest(cloud_init = "../../../../vmtest-macros/tests/ui")]
async fn a_directory(_vm: &Vm) {}

#[vmtest(user_data = "/etc/cloud/cloud.cfg")]
async fn absolute(_vm: &Vm) {}

#[vmtest(user_data = "")]
async fn empty(_vm: &Vm) {}

#[vmtest(user_data = include_str!("user-data.yaml"))]
async fn not_a_literal(_vm: &Vm) {}

#[vmtest(
    user_data = "../../../../vmtest-macros/tests/ui/user-data.yaml",
    cloud_init = "../../../../vmtest-macros/tests/ui/user-data.yaml"
)]
async fn both_names(_vm: &Vm) {}

fn main() {}
