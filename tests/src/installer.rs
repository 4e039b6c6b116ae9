//! A small installer of the project's own, for the install-to-disk tests: the tiny guest's
//! kernel and initramfs with its init script replaced by one that writes a disk image fetched
//! over HTTP onto the VM's blank disk and reboots. Built at test time from the tiny image:
//! an initramfs may be several cpio archives one after the other, and a file in a later one
//! replaces the same path in an earlier one, so the installer is tiny's initrd followed by a
//! small uncompressed archive holding the new `/etc/init.d/rcS`.

use std::path::{Path, PathBuf};

/// The installer's init: load the drivers, get leases on every NIC, find the blank disk by its
/// serial (`disk0`), write `installer.url` onto it, say so on the console, reboot.
pub const INSTALL_SCRIPT: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
kver=$(uname -r)
while read -r ko; do insmod "/lib/modules/$kver/$ko" 2>/dev/null; done < "/lib/modules/$kver/load-order"
ip link set lo up
url=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^installer.url=//p')
echo "installer: writing $url"
target=
for s in /sys/block/vd*/serial; do
  [ "$(cat "$s")" = disk0 ] && { d=${s%/serial}; target=/dev/${d##*/}; }
done
[ -n "$target" ] || { echo "installer: failed: no disk with serial disk0"; exec sleep 1d; }
for nic in /sys/class/net/eth*; do
  udhcpc -q -n -t 10 -i "${nic##*/}" -s /usr/share/udhcpc/default.script >/dev/null 2>&1
done
if wget -q -O - "$url" | dd of="$target" bs=1M 2>/dev/null && sync; then
  echo "installer: wrote $target; installation complete, rebooting"
  reboot -f
fi
echo "installer: failed: could not write $url to $target"
exec sleep 1d
"#;

/// One file entry of a cpio "newc" archive.
fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    let name_z = format!("{name}\0");
    let header = format!(
        "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}\
         {dmaj:08X}{dmin:08X}{rdmaj:08X}{rdmin:08X}{namesize:08X}{check:08X}",
        ino = 0,
        mode = mode,
        uid = 0,
        gid = 0,
        nlink = 1,
        mtime = 0,
        size = data.len(),
        dmaj = 0,
        dmin = 0,
        rdmaj = 0,
        rdmin = 0,
        namesize = name_z.len(),
        check = 0,
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name_z.as_bytes());
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// An uncompressed cpio archive of `files` (`path`, mode bits, contents).
pub fn cpio(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in files {
        entry(&mut out, name, *mode, data);
    }
    entry(&mut out, "TRAILER!!!", 0, b"");
    out
}

/// The installer's kernel and initrd in `dir`, from the tiny image's; returns their paths.
pub fn build(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (kernel, initrd) = tiny_kernel()?;
    let mut image = std::fs::read(&initrd)?;
    pad4(&mut image);
    image.extend(cpio(&[(
        "etc/init.d/rcS",
        0o100_755,
        INSTALL_SCRIPT.as_bytes(),
    )]));
    let installer = dir.join("installer.img");
    std::fs::write(&installer, image)?;
    Ok((kernel, installer))
}

/// The tiny image's kernel and initrd, from the cache.
pub fn tiny_kernel() -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = image_dir("tiny")?;
    Ok((dir.join("vmlinuz"), dir.join("initrd.img")))
}

/// The cache directory of recipe `name` (built by `fixtures/build`).
pub fn image_dir(name: &str) -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/build"))
        .arg(name)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "fixtures/build {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(path.trim()))
}

/// The tiny-disk image as a raw disk in `dir`: what the installer writes.
pub fn tiny_disk_raw(dir: &Path) -> anyhow::Result<PathBuf> {
    let qcow2 = image_dir("tiny-disk")?.join("disk.qcow2");
    let raw = dir.join("disk.raw");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&qcow2)
        .arg(&raw)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "qemu-img convert {} failed",
        qcow2.display()
    );
    Ok(raw)
}

/// Debian's netboot installer, from the `debian-installer-12-netboot-amd64` package.
pub const DEBIAN_INSTALLER: &str = "/usr/lib/debian-installer/images/12/amd64/text";

/// A BIOS-bootable ISO in `dir` whose GRUB (serial console) boots the tiny image's kernel and
/// initrd with `cmdline`: `grub-mkrescue` from `grub-common` with `grub-pc-bin`'s modules,
/// `xorriso` and `mtools`, all installed by `fixtures/setup-host`.
pub fn tiny_iso(dir: &Path, cmdline: &str) -> anyhow::Result<PathBuf> {
    let (kernel, initrd) = tiny_kernel()?;
    let root = dir.join("iso-root");
    std::fs::create_dir_all(root.join("boot/grub"))?;
    std::fs::copy(kernel, root.join("boot/vmlinuz"))?;
    std::fs::copy(initrd, root.join("boot/initrd.img"))?;
    std::fs::write(
        root.join("boot/grub/grub.cfg"),
        format!(
            "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
             set timeout=0\nmenuentry tiny {{\n  linux /boot/vmlinuz {cmdline}\n  \
             initrd /boot/initrd.img\n}}\n"
        ),
    )?;
    let iso = dir.join("tiny.iso");
    let out = std::process::Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&root)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "grub-mkrescue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(iso)
}
