use vmtest::{vmtest, Vm};

#[vmtest(disk = "8GB")]
async fn decimal_unit(_vm: &Vm) {}

#[vmtest(disk = "1T")]
async fn tebibytes(_vm: &Vm) {}

#[vmtest(disk = "32M")]
async fn too_small(_vm: &Vm) {}

#[vmtest(disk = "4096G")]
async fn too_large(_vm: &Vm) {}

#[vmtest(disk = 16)]
async fn too_small_integer(_vm: &Vm) {}

#[vmtest(disk = 8.5)]
async fn float(_vm: &Vm) {}

// `disk` is the overlay's size, not the image.
#[vmtest(disk = "recipe:tiny")]
async fn an_image(_vm: &Vm) {}

fn main() {}
