//! The archive reader on any bytes, and the writer → reader round trip.

use std::collections::HashSet;
use std::io::{self, Cursor};

use arbitrary::Arbitrary;
use wasmzip_package::archive::{
    ArchiveError, ArchiveLimits, ArchiveReader, ArchiveWriter, Compression, MAX_MEMBERS, check_member_name,
};

/// Largest member [`read_all`] reads into memory (members above it are refused by size, unread).
pub const READ_CAP: u64 = 1 << 20;

/// Opens `bytes` as an archive, lists it and reads every member under [`READ_CAP`]. Whatever the
/// reader accepts must keep its promises: valid names, no two differing only in case, `find` agrees
/// with the listing, stored members are as large as their data, and a member read back has exactly
/// its declared size and CRC-32. Returns whether the archive opened.
pub fn read_all(bytes: &[u8]) -> bool {
    let Ok(mut reader) = ArchiveReader::open(Cursor::new(bytes), &ArchiveLimits::default()) else {
        return false;
    };
    let entries = reader.entries().to_vec();
    let mut folded = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry.name.as_str();
        if let Err(e) = check_member_name(name) {
            panic!("the reader listed an invalid name: {e}");
        }
        assert!(folded.insert(name.to_ascii_lowercase()), "two members differ only in case: {name:?}");
        assert_eq!(reader.find(name), Some(i), "find({name:?})");
        if entry.compression == Compression::Stored {
            assert_eq!(entry.compressed_size, entry.size, "stored member {name:?}");
        }
        assert!(entry.compressed_size <= bytes.len() as u64, "member {name:?} is larger than the archive");
        if let Ok(data) = reader.read_entry_to_vec(i, READ_CAP) {
            assert_eq!(data.len() as u64, entry.size, "member {name:?} read back");
            assert_eq!(crc32fast::hash(&data), entry.crc32, "member {name:?} read back");
        }
    }
    assert!(reader.read_entry(entries.len(), &mut io::sink()).is_err());
    true
}

/// One member to write: any name (the writer refuses invalid ones), any bytes, either method.
#[derive(Arbitrary, Debug, Clone)]
pub struct Member {
    /// The member name as given to the writer.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Deflated rather than stored.
    pub deflate: bool,
}

impl Member {
    fn compression(&self) -> Compression {
        if self.deflate { Compression::Deflated } else { Compression::Stored }
    }
}

/// Writes `members` with [`ArchiveWriter`]; returns the archive and the members it accepted. The
/// writer must refuse exactly the invalid names and those that collide (ignoring ASCII case) with an
/// accepted one, and stay usable after refusing.
fn write(members: &[Member]) -> (Vec<u8>, Vec<&Member>) {
    let mut writer = ArchiveWriter::new(Cursor::new(Vec::new()));
    let mut accepted = Vec::new();
    let mut folded = HashSet::new();
    for member in members {
        let name = member.name.as_str();
        let valid = check_member_name(name).is_ok() && !folded.contains(&name.to_ascii_lowercase());
        match writer.add(name, member.compression(), &mut &member.data[..]) {
            Ok(()) => {
                assert!(valid, "the writer accepted {name:?}, an invalid or colliding name");
                folded.insert(name.to_ascii_lowercase());
                accepted.push(member);
            }
            Err(ArchiveError::Member { .. }) if !valid => {}
            Err(e) => panic!("the writer refused {name:?}: {e}"),
        }
    }
    let bytes = writer.finish().expect("finishing an in-memory archive").into_inner();
    (bytes, accepted)
}

/// Writes `members`, reads the archive back and requires exactly the accepted members, in order,
/// with their method and bytes; writing the same members again gives identical bytes.
pub fn round_trip(members: &[Member]) {
    let (bytes, accepted) = write(members);
    assert_eq!(write(members).0, bytes, "the same members gave different archives");
    let opened = ArchiveReader::open(Cursor::new(&bytes[..]), &ArchiveLimits::default());
    if accepted.len() > MAX_MEMBERS {
        assert!(matches!(opened, Err(ArchiveError::Limit(_))), "more than MAX_MEMBERS members read back");
        return;
    }
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(e) => panic!("the reader refused what the writer wrote: {e}"),
    };
    let names: Vec<&str> = reader.entries().iter().map(|e| e.name.as_str()).collect();
    let expected: Vec<&str> = accepted.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, expected);
    for (i, member) in accepted.iter().enumerate() {
        assert_eq!(reader.entries()[i].compression, member.compression(), "member {:?}", member.name);
        match reader.read_entry_to_vec(i, u64::MAX) {
            Ok(data) => assert!(data == member.data, "member {:?} read back different bytes", member.name),
            Err(e) => panic!("member {:?} does not read back: {e}", member.name),
        }
    }
}
