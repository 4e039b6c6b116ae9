use vmtest::vmtest;

#[vmtest]
struct NotAFunction;

fn main() {}
