//! A minimal ISO9660 (ECMA-119) writer: one root directory holding a few small files.
//!
//! Written here rather than taken from a crate because the seed needs only a small part of the
//! standard (one directory, no Rock Ridge, no boot record), while hadris-iso 2.5 needs Rust 1.88
//! (above this workspace's 1.85) and brings chrono and several hadris-* crates. The image has
//! two directory trees over the same file data:
//!
//! - the primary tree (ECMA-119), names upper-cased as `META-DATA.;1`. The `-` is outside
//!   ECMA-119's d-characters, but Linux shows such a name as `meta-data` when it mounts with
//!   neither Joliet nor Rock Ridge (`isofs_name_translate` lower-cases and drops `.;1`), which a
//!   strict `META_DAT.;1` would not;
//! - a Joliet tree (UCS-2 names, which Linux and Windows use when there is no Rock Ridge),
//!   which keeps the names' case and dashes exactly.
//!
//! Layout in 2048-byte logical blocks:
//!
//! | block | content |
//! | --- | --- |
//! | 0–15 | system area, zero |
//! | 16 | primary volume descriptor |
//! | 17 | Joliet supplementary volume descriptor |
//! | 18 | volume descriptor set terminator |
//! | 19, 20 | primary path table, little- then big-endian |
//! | 21, 22 | Joliet path table, little- then big-endian |
//! | 23 | primary root directory |
//! | 24 | Joliet root directory |
//! | 25… | file data, each file from a block boundary, shared by both trees |
//! | last 150 | zero padding, counted in the volume size |
//!
//! Each directory is one block: a directory record may not cross a block boundary, and
//! directories over one block are where in-process writers broke before (lima#3845).

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) const BLOCK: usize = 2048;

const PVD_BLOCK: u32 = 16;
const JOLIET_SVD_BLOCK: u32 = 17;
const TERMINATOR_BLOCK: u32 = 18;
const PATH_TABLE_BLOCKS: [u32; 4] = [19, 20, 21, 22];
const PRIMARY_ROOT_BLOCK: u32 = 23;
const JOLIET_ROOT_BLOCK: u32 = 24;
const FIRST_FILE_BLOCK: u32 = 25;

/// mkisofs's default `-pad`. Without it the seed is ~56 KiB, and busybox's volume_id (the
/// `findfs LABEL=cidata` of busybox initramfs guests) reads 68 KiB from the start of the device
/// in one go and gives up on anything smaller: it found no label on the unpadded seed.
const PADDING_BLOCKS: u32 = 150;

/// The path table of a volume whose only directory is the root: one 10-byte record.
const PATH_TABLE_SIZE: u32 = 10;

/// Directory record flag: the record names a directory.
const FLAG_DIRECTORY: u8 = 0x02;

/// Which of the two directory trees a descriptor or name belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tree {
    Primary,
    Joliet,
}

impl Tree {
    /// The file identifier as stored in this tree's directory records.
    fn file_identifier(self, name: &str) -> Vec<u8> {
        match self {
            // ECMA-119 7.5.1: a file identifier always holds a `.` and ends in `;version`.
            Tree::Primary => {
                let dot = if name.contains('.') { "" } else { "." };
                format!("{}{dot};1", name.to_ascii_uppercase()).into_bytes()
            }
            // Joliet keeps `;1` too, as genisoimage writes it; Linux strips it again.
            Tree::Joliet => ucs2(&format!("{name};1")),
        }
    }

    fn root_block(self) -> u32 {
        match self {
            Tree::Primary => PRIMARY_ROOT_BLOCK,
            Tree::Joliet => JOLIET_ROOT_BLOCK,
        }
    }
}

/// The whole image: volume `volume_id` with `files` (name, content) in its root directory.
///
/// Names must be lowercase ASCII letters, digits, `-` and `_` (at most 30 bytes), the volume id
/// at most 16 ASCII characters (Joliet's limit); the seed's fixed names satisfy both, and
/// anything else is a bug in the caller, hence the panics.
pub(super) fn image(volume_id: &str, files: &[(&str, &[u8])], now: SystemTime) -> Vec<u8> {
    assert!(
        volume_id.len() <= 16 && volume_id.is_ascii(),
        "volume id {volume_id:?}"
    );
    for (name, data) in files {
        assert!(
            !name.is_empty()
                && name.len() <= 30
                && name
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')),
            "ISO9660 seed file name {name:?}"
        );
        assert!(u32::try_from(data.len()).is_ok(), "{name} is over 4 GiB");
    }

    // File data first, to know each file's extent.
    let mut extents = Vec::with_capacity(files.len());
    let mut next_block = FIRST_FILE_BLOCK;
    for (_, data) in files {
        extents.push(next_block);
        next_block += blocks(data.len());
    }
    let total_blocks = next_block + PADDING_BLOCKS;

    let time = RecordingTime::from(now);
    let mut image = vec![0u8; total_blocks as usize * BLOCK];
    let mut put = |block: u32, bytes: &[u8]| {
        let at = block as usize * BLOCK;
        image[at..at + bytes.len()].copy_from_slice(bytes);
    };
    for tree in [Tree::Primary, Tree::Joliet] {
        let descriptor_block = match tree {
            Tree::Primary => PVD_BLOCK,
            Tree::Joliet => JOLIET_SVD_BLOCK,
        };
        put(
            descriptor_block,
            &volume_descriptor(tree, volume_id, total_blocks, &time),
        );
        put(
            tree.root_block(),
            &root_directory(tree, files, &extents, &time),
        );
    }
    put(TERMINATOR_BLOCK, &terminator());
    for (i, block) in PATH_TABLE_BLOCKS.into_iter().enumerate() {
        let root = if i < 2 {
            PRIMARY_ROOT_BLOCK
        } else {
            JOLIET_ROOT_BLOCK
        };
        put(block, &path_table(root, i % 2 == 1));
    }
    for ((_, data), extent) in files.iter().zip(extents) {
        put(extent, data);
    }
    image
}

/// Blocks needed for `len` bytes.
fn blocks(len: usize) -> u32 {
    len.div_ceil(BLOCK) as u32
}

/// ECMA-119 8.4 (primary) or the Joliet supplementary descriptor (same layout, type 2, UCS-2
/// identifiers and an escape sequence naming UCS-2 level 3).
fn volume_descriptor(
    tree: Tree,
    volume_id: &str,
    total_blocks: u32,
    time: &RecordingTime,
) -> Vec<u8> {
    let mut d = vec![0u8; BLOCK];
    d[0] = match tree {
        Tree::Primary => 1,
        Tree::Joliet => 2,
    };
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1; // descriptor version
    put_text(&mut d[8..40], tree, ""); // system identifier
    put_text(&mut d[40..72], tree, volume_id);
    d[80..88].copy_from_slice(&both32(total_blocks));
    if tree == Tree::Joliet {
        d[88..91].copy_from_slice(b"%/E");
    }
    d[120..124].copy_from_slice(&both16(1)); // volume set size
    d[124..128].copy_from_slice(&both16(1)); // volume sequence number
    d[128..132].copy_from_slice(&both16(BLOCK as u16));
    d[132..140].copy_from_slice(&both32(PATH_TABLE_SIZE));
    let (l_table, m_table) = match tree {
        Tree::Primary => (PATH_TABLE_BLOCKS[0], PATH_TABLE_BLOCKS[1]),
        Tree::Joliet => (PATH_TABLE_BLOCKS[2], PATH_TABLE_BLOCKS[3]),
    };
    d[140..144].copy_from_slice(&l_table.to_le_bytes());
    d[148..152].copy_from_slice(&m_table.to_be_bytes());
    let root = directory_record(tree.root_block(), BLOCK as u32, FLAG_DIRECTORY, &[0], time);
    d[156..190].copy_from_slice(&root);
    put_text(&mut d[190..318], tree, ""); // volume set
    put_text(&mut d[318..446], tree, ""); // publisher
    put_text(&mut d[446..574], tree, ""); // data preparer
    put_text(&mut d[574..702], tree, "VMTEST"); // application
    put_text(&mut d[702..813], tree, ""); // copyright, abstract, bibliographic files
    let stamp = time.descriptor_stamp();
    d[813..830].copy_from_slice(&stamp); // created
    d[830..847].copy_from_slice(&stamp); // modified
    d[847..864].copy_from_slice(&UNSPECIFIED_STAMP); // expires
    d[864..881].copy_from_slice(&UNSPECIFIED_STAMP); // effective
    d[881] = 1; // file structure version
    d
}

fn terminator() -> Vec<u8> {
    let mut d = vec![0u8; 7];
    d[0] = 255;
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    d
}

/// ECMA-119 9.4: the root's record (identifier 0x00, its own parent, number 1), plus the pad
/// byte that keeps records even-sized.
fn path_table(root_block: u32, big_endian: bool) -> Vec<u8> {
    let (extent, parent) = if big_endian {
        (root_block.to_be_bytes(), 1u16.to_be_bytes())
    } else {
        (root_block.to_le_bytes(), 1u16.to_le_bytes())
    };
    let mut t = vec![1, 0]; // identifier length, extended attribute record length
    t.extend_from_slice(&extent);
    t.extend_from_slice(&parent);
    t.extend_from_slice(&[0, 0]); // identifier 0x00 (the root), pad byte
    debug_assert_eq!(t.len(), PATH_TABLE_SIZE as usize);
    t
}

/// `.`, `..` (the root is its own parent), then the files sorted by identifier (ECMA-119 9.3).
fn root_directory(
    tree: Tree,
    files: &[(&str, &[u8])],
    extents: &[u32],
    time: &RecordingTime,
) -> Vec<u8> {
    let root = tree.root_block();
    let mut dir = directory_record(root, BLOCK as u32, FLAG_DIRECTORY, &[0], time);
    dir.extend(directory_record(
        root,
        BLOCK as u32,
        FLAG_DIRECTORY,
        &[1],
        time,
    ));
    let mut entries: Vec<(Vec<u8>, u32, u32)> = files
        .iter()
        .zip(extents)
        .map(|((name, data), &extent)| (tree.file_identifier(name), extent, data.len() as u32))
        .collect();
    entries.sort();
    for (identifier, extent, len) in entries {
        dir.extend(directory_record(extent, len, 0, &identifier, time));
    }
    assert!(
        dir.len() <= BLOCK,
        "the seed's root directory must fit one block"
    );
    dir
}

/// ECMA-119 9.1: one directory record.
fn directory_record(
    extent: u32,
    len: u32,
    flags: u8,
    identifier: &[u8],
    time: &RecordingTime,
) -> Vec<u8> {
    let mut r = Vec::with_capacity(34 + identifier.len());
    // 33 fixed bytes + identifier, padded to an even length.
    let record_len = 33 + identifier.len() + (identifier.len() + 1) % 2;
    r.push(record_len as u8);
    r.push(0); // extended attribute record length
    r.extend_from_slice(&both32(extent));
    r.extend_from_slice(&both32(len));
    r.extend_from_slice(&time.record_stamp());
    r.push(flags);
    r.extend_from_slice(&[0, 0]); // file unit size, interleave gap: not interleaved
    r.extend_from_slice(&both16(1)); // volume sequence number
    r.push(identifier.len() as u8);
    r.extend_from_slice(identifier);
    r.resize(record_len, 0);
    r
}

/// Fills an identifier field: a-characters padded with spaces, or for Joliet UCS-2 padded with
/// UCS-2 spaces.
fn put_text(field: &mut [u8], tree: Tree, text: &str) {
    let encoded = match tree {
        Tree::Primary => text.as_bytes().to_vec(),
        Tree::Joliet => ucs2(text),
    };
    for (i, byte) in field.iter_mut().enumerate() {
        *byte = match (encoded.get(i), tree) {
            (Some(&b), _) => b,
            (None, Tree::Primary) => b' ',
            (None, Tree::Joliet) => [0, b' '][i % 2],
        };
    }
}

/// UCS-2 big-endian, as Joliet stores names. Callers pass ASCII only.
fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// ECMA-119's "both-byte orders" fields: little-endian, then big-endian.
fn both16(v: u16) -> [u8; 4] {
    let (le, be) = (v.to_le_bytes(), v.to_be_bytes());
    [le[0], le[1], be[0], be[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let (le, be) = (v.to_le_bytes(), v.to_be_bytes());
    [le[0], le[1], le[2], le[3], be[0], be[1], be[2], be[3]]
}

/// ECMA-119 8.4.26.1: all digits zero and offset zero mean "not specified".
const UNSPECIFIED_STAMP: [u8; 17] = *b"0000000000000000\0";

/// A UTC time of day, for the descriptor's and the records' two timestamp formats.
struct RecordingTime {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl From<SystemTime> for RecordingTime {
    fn from(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let of_day = (secs % 86_400) as u32;
        RecordingTime {
            // ECMA-119 record years count from 1900 in one byte: clamp to its range.
            year: (year as u32).clamp(1970, 2155),
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }
}

impl RecordingTime {
    /// ECMA-119 8.4.26.1: `YYYYMMDDhhmmsscc` in ASCII digits, then the UTC offset (0).
    fn descriptor_stamp(&self) -> [u8; 17] {
        let digits = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut stamp = [0u8; 17];
        stamp[..16].copy_from_slice(digits.as_bytes());
        stamp
    }

    /// ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, UTC offset (0).
    fn record_stamp(&self) -> [u8; 7] {
        let byte = |v: u32| v as u8;
        [
            byte(self.year - 1900),
            byte(self.month),
            byte(self.day),
            byte(self.hour),
            byte(self.minute),
            byte(self.second),
            0,
        ]
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, so no date crate is needed for two timestamps.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(super) mod tests {
    //! Parse-back: an independent reader of exactly what ECMA-119 and Joliet say, checking
    //! every both-byte-order field agrees with itself.

    use super::*;

    /// One directory tree as a reader sees it.
    #[derive(Debug)]
    pub(in crate::guest::seed) struct Listing {
        pub volume_id: String,
        /// (name as stored, without decoding `;1`, content), in directory order.
        pub files: Vec<(String, Vec<u8>)>,
    }

    fn both16_at(buf: &[u8], at: usize) -> u16 {
        let le = u16::from_le_bytes(buf[at..at + 2].try_into().unwrap());
        assert_eq!(
            le,
            u16::from_be_bytes(buf[at + 2..at + 4].try_into().unwrap()),
            "at {at}"
        );
        le
    }

    fn both32_at(buf: &[u8], at: usize) -> u32 {
        let le = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
        assert_eq!(
            le,
            u32::from_be_bytes(buf[at + 4..at + 8].try_into().unwrap()),
            "at {at}"
        );
        le
    }

    fn decode(bytes: &[u8], joliet: bool) -> String {
        if joliet {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).unwrap()
        } else {
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    }

    /// Reads the tree of the volume descriptor in `descriptor_block` (16 or 17).
    pub(in crate::guest::seed) fn read_tree(image: &[u8], descriptor_block: usize) -> Listing {
        assert_eq!(image.len() % BLOCK, 0);
        let block = |n: usize| &image[n * BLOCK..(n + 1) * BLOCK];
        let d = block(descriptor_block);
        assert_eq!(&d[1..7], b"CD001\x01");
        let joliet = match d[0] {
            1 => false,
            2 => {
                assert_eq!(&d[88..91], b"%/E", "Joliet UCS-2 level 3 escape");
                true
            }
            other => panic!("descriptor type {other}"),
        };
        assert_eq!(
            both32_at(d, 80) as usize,
            image.len() / BLOCK,
            "volume space size"
        );
        assert_eq!(both16_at(d, 128) as usize, BLOCK);
        assert_eq!(d[881], 1, "file structure version");

        let root_extent = both32_at(d, 156 + 2) as usize;
        let root_len = both32_at(d, 156 + 10) as usize;
        assert_eq!(
            (d[156], d[156 + 25], d[156 + 32], d[156 + 33]),
            (34, FLAG_DIRECTORY, 1, 0)
        );

        // Both path tables name the same root, as its own parent.
        assert_eq!(both32_at(d, 132), 10);
        let l = block(u32::from_le_bytes(d[140..144].try_into().unwrap()) as usize);
        let m = block(u32::from_be_bytes(d[148..152].try_into().unwrap()) as usize);
        assert_eq!(
            u32::from_le_bytes(l[2..6].try_into().unwrap()) as usize,
            root_extent
        );
        assert_eq!(
            u32::from_be_bytes(m[2..6].try_into().unwrap()) as usize,
            root_extent
        );
        assert_eq!((l[0], l[6], l[8], m[7], m[8]), (1, 1, 0, 1, 0));

        let dir = &image[root_extent * BLOCK..][..root_len];
        let mut files = Vec::new();
        let mut at = 0;
        let mut index = 0;
        while at < dir.len() && dir[at] != 0 {
            let record = &dir[at..at + dir[at] as usize];
            assert_eq!(record.len() % 2, 0, "records are even-sized");
            let extent = both32_at(record, 2) as usize;
            let len = both32_at(record, 10) as usize;
            assert_eq!(both16_at(record, 28), 1, "volume sequence number");
            let identifier = &record[33..33 + record[32] as usize];
            match index {
                0 | 1 => {
                    assert_eq!(identifier, [index as u8], ". and ..");
                    assert_eq!((extent, record[25]), (root_extent, FLAG_DIRECTORY));
                }
                _ => {
                    assert_eq!(record[25], 0, "plain file");
                    files.push((
                        decode(identifier, joliet),
                        image[extent * BLOCK..][..len].to_vec(),
                    ));
                }
            }
            at += record.len();
            index += 1;
        }
        let names: Vec<&String> = files.iter().map(|(name, _)| name).collect();
        assert!(names.is_sorted(), "ECMA-119 9.3 sorted records: {names:?}");
        Listing {
            volume_id: decode(&d[40..72], joliet).trim_end().to_owned(),
            files,
        }
    }

    #[test]
    fn both_trees_read_back() {
        let big = vec![7u8; 3 * BLOCK + 5];
        let files = [
            ("meta-data", b"{}\n".as_slice()),
            ("user-data", big.as_slice()),
            ("z", b""),
        ];
        let image = image("cidata", &files, SystemTime::now());

        let joliet = read_tree(&image, 17);
        assert_eq!(joliet.volume_id, "cidata");
        let expected: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(name, data)| (format!("{name};1"), data.to_vec()))
            .collect();
        assert_eq!(joliet.files, expected);

        let primary = read_tree(&image, 16);
        assert_eq!(primary.volume_id, "cidata");
        let names: Vec<&str> = primary
            .files
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["META-DATA.;1", "USER-DATA.;1", "Z.;1"]);
        assert_eq!(primary.files[1].1, big);

        assert_eq!(
            &image[TERMINATOR_BLOCK as usize * BLOCK..][..7],
            b"\xffCD001\x01"
        );
        assert_eq!(
            image.len(),
            (FIRST_FILE_BLOCK + 1 + 4 + PADDING_BLOCKS) as usize * BLOCK
        );
    }

    #[test]
    fn each_tree_sorts_its_own_identifiers() {
        // `_` sorts after upper-case letters but before lower-case ones.
        let image = image("cidata", &[("a_b", b"1"), ("ab", b"2")], SystemTime::now());
        let names = |block| {
            read_tree(&image, block)
                .files
                .into_iter()
                .map(|f| f.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(16), ["AB.;1", "A_B.;1"]);
        assert_eq!(names(17), ["a_b;1", "ab;1"]);
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        // 2026-11-21 13:45:06 UTC
        let time = RecordingTime::from(UNIX_EPOCH + std::time::Duration::from_secs(1_795_268_706));
        assert_eq!(&time.descriptor_stamp(), b"2026112113450600\0");
        assert_eq!(time.record_stamp(), [126, 11, 21, 13, 45, 6, 0]);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
