// The parameters are named for what the attribute checks, not used.
#![allow(unused_variables)]

use vmtest::{vmtest, Vm};

#[vmtest(vms = 1)]
async fn one(_vm: &Vm) {}

#[vmtest(vms = 17)]
async fn too_many(_vms: &[Vm]) {}

#[vmtest(vms = "2")]
async fn quoted(_vms: &[Vm]) {}

#[vmtest(vms)]
async fn bare(_vms: &[Vm]) {}

#[vmtest(vms = 2)]
async fn takes_one_vm(_vm: &Vm) {}

#[vmtest(vms = 2)]
async fn takes_nothing() {}

#[vmtest(vms = 2)]
async fn takes_each_vm(a: &Vm, b: &Vm) {}

#[vmtest(vms = 2)]
async fn mutable(_vms: &mut [Vm]) {}

// Without `vms`, one VM.
#[vmtest]
async fn slice_without_vms(_vms: &[Vm]) {}

fn main() {}
