// The parameters are named for what the attribute checks, not used.
#![allow(unused_variables)]

use vmtest::{vmtest, Env, Vm, VmSpec};

#[vmtest::fixture]
fn shared() -> VmSpec {
    VmSpec::new()
}

// Not an environment name.
#[vmtest(env = "Router_Lab")]
async fn bad_name(env: &Env) {}

#[vmtest(env = router_lab)]
async fn unquoted(env: &Env) {}

#[vmtest(environment = "router-lab")]
async fn an_alias(env: &Env) {}

// Keys that describe a VM, or how it is obtained: the environment's file declares its VMs.
#[vmtest(env = "router-lab", memory = "1G", network = "isolated", timeout = "5m", keep)]
async fn with_vm_keys(env: &Env) {}

#[vmtest(env = "router-lab", vms = 2, fixture = shared, snapshot, requires = "kvm")]
async fn with_other_vms(env: &Env) {}

// The parameter is the environment.
#[vmtest(env = "router-lab")]
async fn takes_a_vm(vm: &Vm) {}

#[vmtest(env = "router-lab")]
async fn takes_it_mutably(env: &mut Env) {}

#[vmtest(env = "router-lab")]
async fn takes_two(env: &Env, vm: &Vm) {}

#[vmtest(env = "router-lab")]
async fn takes_nothing() {}

// An environment without `env`.
#[vmtest]
async fn no_env_key(env: &vmtest::Env) {}

fn main() {}
