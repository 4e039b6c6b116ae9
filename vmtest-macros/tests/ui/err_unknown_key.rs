use vmtest::{vmtest, Vm};

#[vmtest(gpu = "virtio")]
async fn unknown(_vm: &Vm) {}

#[vmtest(mem = "1G", vcpus = 2)]
async fn aliases(_vm: &Vm) {}

#[vmtest(network = "pxe", kernel = "bzImage", pcap)]
async fn network_aliases(_vm: &Vm) {}

#[vmtest(network = "isolated", mgmt = false)]
async fn management_alias(_vm: &Vm) {}

fn main() {}
