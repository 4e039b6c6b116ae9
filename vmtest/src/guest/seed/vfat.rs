//! The seed as a FAT volume, made with the `fatfs` crate on an in-memory buffer.
//!
//! cloud-init's NoCloud looks for a filesystem labelled `cidata` *or* `CIDATA`; FAT labels are
//! upper-case by convention, and `fatfs` writes the label both in the boot sector and as the
//! root directory's volume-label entry (the one `blkid` prefers). Names like `meta-data` are not
//! valid 8.3 names, so `fatfs` stores them as long (VFAT) names, which Linux shows verbatim.

use std::hash::{BuildHasher, RandomState};
use std::io::{self, Cursor, Write};

use fatfs::{FileSystem, FormatVolumeOptions, FsOptions};

/// The smallest image, and the unit images grow in. 1 MiB formats as FAT12 with room for
/// ~1 MB of files; both seed files together are usually a few KiB.
const MIB: usize = 1 << 20;

/// The whole image: a FAT volume labelled `label` with `files` (name, content) in its root.
pub(super) fn image(label: [u8; 11], files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let data: usize = files.iter().map(|(_, data)| data.len()).sum();
    // Twice the data plus 256 KiB covers cluster slack, FATs and the root directory with a
    // wide margin; whole MiB sizes are ones `fatfs` can pick a FAT type for (it refuses some
    // odd sizes).
    let size = (2 * data + MIB / 4).next_multiple_of(MIB);
    let mut disk = Cursor::new(vec![0u8; size]);
    fatfs::format_volume(
        &mut disk,
        FormatVolumeOptions::new()
            .volume_label(label)
            .volume_id(random_volume_id()),
    )?;
    disk.set_position(0);
    let fs = FileSystem::new(&mut disk, FsOptions::new())?;
    {
        let root = fs.root_dir();
        for (name, data) in files {
            root.create_file(name)?.write_all(data)?;
        }
    }
    // Unmount explicitly: dropping the FileSystem also flushes, but swallows the error.
    fs.unmount()?;
    Ok(disk.into_inner())
}

/// A volume id that differs between seeds, so two seed disks never share a
/// `/dev/disk/by-uuid/XXXX-XXXX` link (`fatfs` would write 1234-5678 every time). Not
/// cryptographic: std's `RandomState` is seeded from the OS once per thread and then varies.
fn random_volume_id() -> u32 {
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn read_back(image: Vec<u8>) -> FileSystem<Cursor<Vec<u8>>> {
        FileSystem::new(Cursor::new(image), FsOptions::new()).expect("fatfs reads its own image")
    }

    #[test]
    fn files_and_label_read_back() {
        let user_data = "#cloud-config\n{}\n".repeat(300); // spans several clusters
        let files = [
            ("meta-data", b"{}\n".as_slice()),
            ("user-data", user_data.as_bytes()),
        ];
        let fs = read_back(image(*b"CIDATA     ", &files).unwrap());

        assert_eq!(fs.fat_type(), fatfs::FatType::Fat12);
        assert_eq!(fs.volume_label(), "CIDATA");
        assert_eq!(
            fs.read_volume_label_from_root_dir().unwrap().as_deref(),
            Some("CIDATA")
        );
        let names: Vec<String> = fs
            .root_dir()
            .iter()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["meta-data", "user-data"]);
        for (name, data) in files {
            let mut read = Vec::new();
            fs.root_dir()
                .open_file(name)
                .unwrap()
                .read_to_end(&mut read)
                .unwrap();
            assert_eq!(read, data, "{name}");
        }
    }

    #[test]
    fn small_seeds_are_one_mib_and_big_ones_grow() {
        let small = image(*b"CIDATA     ", &[("user-data", &[b'x'; 4096])]).unwrap();
        assert_eq!(small.len(), MIB);

        let big = vec![b'y'; 3 * MIB];
        let image = image(*b"CIDATA     ", &[("user-data", &big)]).unwrap();
        assert!(image.len() > big.len());
        let fs = read_back(image);
        let mut read = Vec::new();
        fs.root_dir()
            .open_file("user-data")
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert!(read == big, "a 3 MiB file reads back unchanged");
    }

    #[test]
    fn volume_ids_differ_between_images() {
        let id = |_| read_back(image(*b"CIDATA     ", &[]).unwrap()).volume_id();
        let ids: std::collections::HashSet<u32> = (0..4).map(id).collect();
        assert_eq!(ids.len(), 4, "volume ids {ids:x?}");
    }
}
