// The parameters are named for what the attribute checks, not used.
#![allow(unused_variables)]

use vmtest::{vmtest, Env, Vm};

// `shared` shares an environment: it needs `env`.
#[vmtest(shared)]
async fn without_env(vm: &Vm) {}

#[vmtest(image = "recipe:tiny", memory = "512M", shared)]
async fn with_vm_keys(vm: &Vm) {}

// A flag, or `shared = true|false`.
#[vmtest(env = "router-lab", shared(all))]
async fn with_a_list(env: &Env) {}

#[vmtest(env = "router-lab", shared = "yes")]
async fn with_a_string(env: &Env) {}

// Accepted: the environment is shared by the tests naming it.
#[vmtest(env = "router-lab", shared, timeout = "5m")]
async fn accepted(env: &Env) {}

fn main() {}
