use vmtest::{vmtest, Vm};

#[vmtest]
async fn returns_bool(_vm: &Vm) -> bool {
    true
}

#[vmtest]
async fn returns_option(_vm: &Vm) -> Option<()> {
    None
}

#[vmtest]
async fn returns_impl(_vm: &Vm) -> impl std::fmt::Debug {}

fn main() {}
