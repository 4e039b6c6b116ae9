use vmtest::{vmtest, Vm};

#[vmtest(image = "")]
async fn empty(_vm: &Vm) {}

#[vmtest(image = "recipe: tiny")]
async fn whitespace(_vm: &Vm) {}

#[vmtest(image = "tiny")]
async fn no_scheme(_vm: &Vm) {}

#[vmtest(image = "recipe:Tiny")]
async fn bad_recipe_name(_vm: &Vm) {}

#[vmtest(image = "recipe:")]
async fn empty_recipe_name(_vm: &Vm) {}

#[vmtest(image = ":12")]
async fn empty_scheme(_vm: &Vm) {}

#[vmtest(image = "https://")]
async fn url_without_host(_vm: &Vm) {}

fn main() {}
