use vmtest::{vmtest, Vm};

#[vmtest]
async fn type_parameter<T>(_vm: &Vm) {}

#[vmtest]
async fn lifetime_parameter<'a>(_vm: &'a Vm) {}

#[vmtest]
async fn where_clause(_vm: &Vm)
where
    Vm: Sized,
{
}

fn main() {}
