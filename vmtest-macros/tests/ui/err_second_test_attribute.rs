use vmtest::{vmtest, Vm};

#[vmtest]
#[test]
async fn with_test(_vm: &Vm) {}

#[vmtest]
#[tokio::test]
async fn with_tokio_test(_vm: &Vm) {}

#[vmtest(cpus = 2)]
#[vmtest(cpus = 4)]
async fn twice(_vm: &Vm) {}

fn main() {}
