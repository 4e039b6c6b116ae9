use vmtest::{vmtest, Vm};

#[vmtest(ready = "none")]
async fn unknown_readiness(_vm: &Vm) {}

#[vmtest(ready = "console:Select (a language")]
async fn bad_pattern(_vm: &Vm) {}

#[vmtest(network = "pxe", mac = "52:54:00:12:34")]
async fn short_mac(_vm: &Vm) {}

#[vmtest(network = "pxe", mac = "01:00:5e:00:00:01")]
async fn multicast_mac(_vm: &Vm) {}

#[vmtest(disks = ["8G", "1M"])]
async fn tiny_disk(_vm: &Vm) {}

#[vmtest(boot = ["disk", "network", "disk"])]
async fn duplicate_boot_device(_vm: &Vm) {}

#[vmtest(boot_once = "usb")]
async fn unknown_boot_device(_vm: &Vm) {}

#[vmtest(cdrom = "tests/ui/no-such.iso")]
async fn missing_iso(_vm: &Vm) {}

#[vmtest(boot_timeout = 90)]
async fn ok_boot_timeout(_vm: &Vm) {}

#[vmtest(boot_timeout = "90")]
async fn unitless_boot_timeout(_vm: &Vm) {}

fn main() {}
