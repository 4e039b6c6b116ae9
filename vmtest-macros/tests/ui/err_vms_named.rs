// The parameters are named for what the attribute checks, not used.
#![allow(unused_variables)]

use vmtest::{vmtest, Vm};

#[vmtest(vms(client, server))]
async fn swapped(server: &Vm, client: &Vm) {}

#[vmtest(vms(client, server))]
async fn missing(client: &Vm) {}

#[vmtest(vms(client, server))]
async fn extra(client: &Vm, server: &Vm, third: &Vm) {}

#[vmtest(vms(client, server))]
async fn slice(client: &[Vm], server: &Vm) {}

#[vmtest(vms(client, server))]
async fn wildcard(client: &Vm, _: &Vm) {}

#[vmtest(vms("client", "server"))]
async fn strings(client: &Vm, server: &Vm) {}

#[vmtest(vms(a, b, a))]
async fn duplicate_name(a: &Vm, b: &Vm) {}

#[vmtest(vms())]
async fn empty() {}

#[vmtest(vms = 2, vms(a, b))]
async fn both_forms(_vms: &[Vm]) {}

fn main() {}
