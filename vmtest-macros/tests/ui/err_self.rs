use vmtest::{vmtest, Vm};

struct Fixture;

impl Fixture {
    #[vmtest]
    async fn method(&self, _vm: &Vm) {}
}

fn main() {
    let _ = Fixture;
}
