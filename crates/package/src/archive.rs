//! Strict, minimal ZIP reading and deterministic ZIP writing for `.wasmzip` packages.
//!
//! Only a small, unambiguous subset of ZIP is accepted: "stored" and "deflated" regular-file
//! members, no ZIP64, no directory entries, no comments, no encryption and no data descriptors.
//! The reader checks the whole structure (end record, central directory, every local header and
//! the exact placement of every byte) before any member data is used.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use flate2::write::DeflateEncoder;
use flate2::{Decompress, FlushDecompress, Status};
use sha2::{Digest as _, Sha256};

/// Default maximum number of members in an archive.
pub const MAX_MEMBERS: usize = 10_000;
/// Default maximum sum of the uncompressed sizes of all members (4 GiB - 1).
pub const MAX_TOTAL_SIZE: u64 = u32::MAX as u64;
/// Default maximum uncompressed size of one member (4 GiB - 1).
pub const MAX_MEMBER_SIZE: u64 = u32::MAX as u64;
/// Default maximum ratio of uncompressed to compressed size.
pub const MAX_COMPRESSION_RATIO: u64 = 100;
/// Members at most this large (in bytes, uncompressed) are exempt from the ratio check.
pub const RATIO_FLOOR: u64 = 1024 * 1024;
/// Maximum length of a member name in bytes.
pub const MAX_NAME_LEN: usize = 1024;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const LOCAL_LEN: usize = 30;
const CENTRAL_LEN: usize = 46;
const END_LEN: usize = 22;

const FLAG_ENCRYPTED: u16 = 0x0001;
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const FLAG_UTF8: u16 = 0x0800;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const VERSION_NEEDED: u16 = 20;
const HOST_UNIX: u16 = 3;
const VERSION_MADE_BY: u16 = (HOST_UNIX << 8) | 20;
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = 0x0021;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const FILE_MODE: u32 = 0o100_644;
const DOS_ATTR_DIRECTORY: u32 = 0x10;

const ZIP64_U16: u16 = 0xFFFF;
const ZIP64_U32: u32 = 0xFFFF_FFFF;
/// Largest member count the writer emits (0xFFFF is the ZIP64 marker).
const MAX_WRITABLE_MEMBERS: usize = ZIP64_U16 as usize - 1;
const TOO_BIG: &str = "archive would exceed 4 GiB; ZIP64 is not supported";

const BUF_SIZE: usize = 64 * 1024;
/// Upper bound on what `read_entry_to_vec` reserves up front.
const MAX_PREALLOC: usize = 64 * 1024 * 1024;
/// How far back from the end to look for a misplaced end record when diagnosing.
const END_SEARCH_WINDOW: u64 = END_LEN as u64 + u16::MAX as u64;
/// Member names longer than this are shortened in error messages.
const MAX_SHOWN_NAME: usize = 200;

/// How a member's bytes are stored in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Bytes are stored as they are (ZIP method 0).
    Stored,
    /// Bytes are compressed with raw DEFLATE (ZIP method 8).
    Deflated,
}

impl Compression {
    fn method(self) -> u16 {
        match self {
            Self::Stored => METHOD_STORED,
            Self::Deflated => METHOD_DEFLATED,
        }
    }

    fn from_method(method: u16) -> Option<Self> {
        match method {
            METHOD_STORED => Some(Self::Stored),
            METHOD_DEFLATED => Some(Self::Deflated),
            _ => None,
        }
    }
}

/// Structural limits enforced while reading.
#[derive(Debug, Clone)]
pub struct ArchiveLimits {
    /// Maximum number of members.
    pub max_members: usize,
    /// Maximum sum of all members' uncompressed sizes.
    pub max_total_size: u64,
    /// Maximum uncompressed size of one member.
    pub max_member_size: u64,
    /// Maximum uncompressed/compressed ratio of a member larger than `ratio_floor`.
    pub max_compression_ratio: u64,
    /// Members whose uncompressed size is at most this are exempt from the ratio check.
    pub ratio_floor: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_members: MAX_MEMBERS,
            max_total_size: MAX_TOTAL_SIZE,
            max_member_size: MAX_MEMBER_SIZE,
            max_compression_ratio: MAX_COMPRESSION_RATIO,
            ratio_floor: RATIO_FLOOR,
        }
    }
}

/// One member as listed in the central directory.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The member's path inside the archive (always passes [`check_member_name`]).
    pub name: String,
    /// How the member's bytes are stored.
    pub compression: Compression,
    /// Size of the member's bytes in the archive.
    pub compressed_size: u64,
    /// Size of the member's bytes once decompressed.
    pub size: u64,
    /// CRC-32 of the decompressed bytes.
    pub crc32: u32,
    data_offset: u64,
    fields: HeaderFields,
}

/// The header fields a lenient (schema 1) read ignores or compares only with each other; format 2
/// allows each one value ([`ArchiveReader::check_canonical`]).
#[derive(Debug, Clone, Copy, Default)]
struct HeaderFields {
    made_by: u16,
    version_needed: u16,
    flags: u16,
    time: u16,
    date: u16,
    extra_len: u16,
    internal: u16,
    external: u32,
    local_offset: u64,
    local_version_needed: u16,
    local_time: u16,
    local_date: u16,
    local_extra_len: u16,
}

/// Everything that can go wrong reading or writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The underlying reader or writer failed.
    #[error("I/O error while {context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        error: io::Error,
    },
    /// A structural problem not tied to one member.
    #[error("not a valid archive: {0}")]
    Malformed(String),
    /// A problem with one member.
    #[error("member `{member}`: {reason}")]
    Member {
        /// The member's name (control characters escaped, very long names shortened).
        member: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured or format limit was exceeded.
    #[error("archive limit exceeded: {0}")]
    Limit(String),
}

/// Renders a member name for an error message: control characters escaped, long names cut.
fn shown(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == MAX_SHOWN_NAME {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn member_err(name: &str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Member {
        member: shown(name),
        reason: reason.into(),
    }
}

fn io_err(context: impl Into<String>, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        context: context.into(),
        error: source,
    }
}

fn malformed(message: impl Into<String>) -> ArchiveError {
    ArchiveError::Malformed(message.into())
}

fn too_big() -> ArchiveError {
    ArchiveError::Limit(TOO_BIG.to_owned())
}

/// Checks a member name: non-empty, at most [`MAX_NAME_LEN`] bytes, no NUL or control
/// characters, no backslash, not absolute, no drive prefix (`C:`), no empty, `.` or `..`
/// component and no trailing `/`.
pub fn check_member_name(name: &str) -> Result<(), ArchiveError> {
    match name_problem(name) {
        Some(reason) => Err(member_err(name, reason)),
        None => Ok(()),
    }
}

fn name_problem(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let reason = if name.is_empty() {
        "name is empty".to_owned()
    } else if bytes.len() > MAX_NAME_LEN {
        format!("name is longer than {MAX_NAME_LEN} bytes")
    } else if name.chars().any(char::is_control) {
        "name contains a NUL or control character".to_owned()
    } else if name.contains('\\') {
        "name contains a backslash".to_owned()
    } else if name.starts_with('/') {
        "name is an absolute path".to_owned()
    } else if bytes[0].is_ascii_alphabetic() && bytes.get(1) == Some(&b':') {
        "name starts with a drive prefix".to_owned()
    } else if name.ends_with('/') {
        "name ends with '/'".to_owned()
    } else if name.split('/').any(str::is_empty) {
        "name contains an empty path component".to_owned()
    } else if name.split('/').any(|c| c == "." || c == "..") {
        "name contains a `.` or `..` path component".to_owned()
    } else {
        return None;
    };
    Some(reason)
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads exactly `buf.len()` bytes; running out of input is reported by `on_eof`.
fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    context: impl FnOnce() -> String,
    on_eof: impl FnOnce() -> ArchiveError,
) -> Result<(), ArchiveError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            on_eof()
        } else {
            io_err(context(), e)
        }
    })
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One `read` call, retried when interrupted.
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The fields of the end of central directory record that matter once it has been checked.
struct EndRecord {
    entries: u16,
    cd_size: u64,
    cd_offset: u64,
}

/// A reader for a strictly checked archive.
pub struct ArchiveReader<R> {
    reader: R,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    limits: ArchiveLimits,
}

impl<R: Read + Seek> ArchiveReader<R> {
    /// Parses and checks the whole structure; reads no member data beyond headers.
    pub fn open(mut reader: R, limits: &ArchiveLimits) -> Result<Self, ArchiveError> {
        let end = read_end_record(&mut reader)?;
        let count = usize::from(end.entries);
        if count > limits.max_members {
            return Err(ArchiveError::Limit(format!(
                "archive has {count} members, more than the limit of {}",
                limits.max_members
            )));
        }
        let (mut entries, placements, by_name) = read_central_directory(&mut reader, &end, limits)?;
        check_local_headers(&mut reader, &mut entries, &placements, end.cd_offset)?;
        Ok(Self {
            reader,
            entries,
            by_name,
            limits: limits.clone(),
        })
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The members, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Position of a member by exact name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Streams the decompressed bytes of entry `index` into `sink`, checking the exact size, the
    /// CRC-32 and the compression ratio as it goes (stops as soon as more bytes than `size`
    /// appear). Returns bytes written. On error, whatever reached `sink` must be discarded.
    pub fn read_entry(&mut self, index: usize, sink: &mut dyn Write) -> Result<u64, ArchiveError> {
        self.read_entry_with(index, sink, None)
    }

    /// As [`read_entry`](Self::read_entry), and also returns the SHA-256 of the member's bytes as
    /// stored (compressed, for a deflated member): what format 2 pins.
    pub fn read_entry_digesting(&mut self, index: usize, sink: &mut dyn Write) -> Result<(u64, [u8; 32]), ArchiveError> {
        let mut hasher = Sha256::new();
        let written = self.read_entry_with(index, sink, Some(&mut hasher))?;
        Ok((written, hasher.finalize().into()))
    }

    fn read_entry_with(&mut self, index: usize, sink: &mut dyn Write, stored: Option<&mut Sha256>) -> Result<u64, ArchiveError> {
        let entry = self
            .entries
            .get(index)
            .cloned()
            .ok_or_else(|| malformed(format!("no member at index {index}")))?;
        let name = entry.name.as_str();
        if entry.size > self.limits.ratio_floor
            && entry.size / entry.compressed_size.max(1) > self.limits.max_compression_ratio
        {
            return Err(ArchiveError::Limit(format!(
                "member `{}` has a compression ratio over {}:1 ({} bytes from {})",
                shown(name),
                self.limits.max_compression_ratio,
                entry.size,
                entry.compressed_size
            )));
        }
        self.reader
            .seek(SeekFrom::Start(entry.data_offset))
            .map_err(|e| io_err(format!("seeking to member `{}`", shown(name)), e))?;
        let mut data = Digesting { inner: &mut self.reader, hasher: stored }.take(entry.compressed_size);
        let mut hasher = crc32fast::Hasher::new();
        let written = match entry.compression {
            Compression::Stored => copy_stored(&entry, &mut data, &mut hasher, sink)?,
            Compression::Deflated => inflate(&entry, &mut data, &mut hasher, sink)?,
        };
        let crc = hasher.finalize();
        if crc != entry.crc32 {
            return Err(member_err(
                name,
                format!(
                    "CRC-32 mismatch (expected {:08x}, got {crc:08x})",
                    entry.crc32
                ),
            ));
        }
        Ok(written)
    }

    /// Convenience: reads entry `index` into a `Vec`, refusing if its declared size exceeds `max`.
    pub fn read_entry_to_vec(&mut self, index: usize, max: u64) -> Result<Vec<u8>, ArchiveError> {
        let entry = self
            .entries
            .get(index)
            .ok_or_else(|| malformed(format!("no member at index {index}")))?;
        if entry.size > max {
            return Err(ArchiveError::Limit(format!(
                "member `{}` is {} bytes, more than the limit of {max} bytes",
                shown(&entry.name),
                entry.size
            )));
        }
        let capacity = usize::try_from(entry.size)
            .unwrap_or(MAX_PREALLOC)
            .min(MAX_PREALLOC);
        let mut out = Vec::with_capacity(capacity);
        self.read_entry(index, &mut out)?;
        Ok(out)
    }

    /// Copies entry `index`'s bytes exactly as stored (still compressed) into `sink`: for rewriting
    /// an archive without re-encoding it ([`ArchiveWriter::add_raw`]). Checks nothing but the length.
    pub fn copy_raw(&mut self, index: usize, sink: &mut dyn Write) -> Result<u64, ArchiveError> {
        let entry = self.entries.get(index).cloned().ok_or_else(|| malformed(format!("no member at index {index}")))?;
        let context = || format!("copying member `{}`", shown(&entry.name));
        self.reader.seek(SeekFrom::Start(entry.data_offset)).map_err(|e| io_err(context(), e))?;
        let copied = io::copy(&mut (&mut self.reader).take(entry.compressed_size), sink).map_err(|e| io_err(context(), e))?;
        if copied != entry.compressed_size {
            return Err(member_err(&entry.name, "member data is truncated"));
        }
        Ok(copied)
    }

    /// Format 2: the archive is exactly what [`ArchiveWriter`] writes for `expected` (member names in
    /// order, and how each is stored). Every header field has its one allowed value, the central
    /// directory lists the members in archive order, and no local header carries an extra field, so
    /// that no byte of a structurally valid archive can change while it still reads the same.
    pub fn check_canonical(&self, expected: &[(&str, Compression)]) -> Result<(), ArchiveError> {
        if self.entries.len() != expected.len() {
            return Err(malformed(format!("holds {} members, but format 2 requires exactly {}", self.entries.len(), expected.len())));
        }
        let mut previous_offset = None;
        for (i, (entry, &(name, compression))) in self.entries.iter().zip(expected).enumerate() {
            if entry.name != name {
                return Err(member_err(&entry.name, format!("is member {} of the central directory, where format 2 puts `{}`", i + 1, shown(name))));
            }
            if entry.compression != compression {
                let how = |c: Compression| if c == Compression::Stored { "stored" } else { "deflated" };
                return Err(member_err(name, format!("is {}, and format 2 requires it {}", how(entry.compression), how(compression))));
            }
            let f = entry.fields;
            let fields: [(&str, u32, u32); 12] = [
                ("central directory version made by", f.made_by.into(), VERSION_MADE_BY.into()),
                ("central directory version needed", f.version_needed.into(), VERSION_NEEDED.into()),
                ("central directory flags", f.flags.into(), FLAG_UTF8.into()),
                ("central directory time", f.time.into(), DOS_TIME.into()),
                ("central directory date", f.date.into(), DOS_DATE.into()),
                ("central directory extra field length", f.extra_len.into(), 0),
                ("central directory internal attributes", f.internal.into(), 0),
                ("central directory external attributes", f.external, FILE_MODE << 16),
                ("local header version needed", f.local_version_needed.into(), VERSION_NEEDED.into()),
                ("local header time", f.local_time.into(), DOS_TIME.into()),
                ("local header date", f.local_date.into(), DOS_DATE.into()),
                ("local header extra field length", f.local_extra_len.into(), 0),
            ];
            if let Some((field, value, allowed)) = fields.into_iter().find(|(_, value, allowed)| value != allowed) {
                return Err(member_err(name, format!("{field} is {value:#x}, and format 2 allows only {allowed:#x}")));
            }
            if previous_offset.is_some_and(|p| f.local_offset < p) {
                return Err(member_err(name, "comes earlier in the archive than the member the central directory lists before it; format 2 keeps them in one order"));
            }
            previous_offset = Some(f.local_offset);
        }
        Ok(())
    }
}

/// A reader that also hashes what it reads, when asked to.
struct Digesting<'a, R> {
    inner: R,
    hasher: Option<&'a mut Sha256>,
}

impl<R: Read> Read for Digesting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = self.hasher.as_deref_mut() {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn read_end_record(reader: &mut (impl Read + Seek)) -> Result<EndRecord, ArchiveError> {
    let context = || "reading the end of central directory record".to_owned();
    let len = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| io_err(context(), e))?;
    if len < END_LEN as u64 {
        return Err(malformed(
            "too short to hold an end of central directory record",
        ));
    }
    let position = len - END_LEN as u64;
    reader
        .seek(SeekFrom::Start(position))
        .map_err(|e| io_err(context(), e))?;
    let mut rec = [0u8; END_LEN];
    read_exact_or(reader, &mut rec, context, || {
        malformed("archive ended while reading the end record")
    })?;
    if le_u32(&rec, 0) != END_SIG {
        return Err(match last_end_signature(reader, len)? {
            // The record starts too close to the end to be whole: the file was cut short.
            Some(at) if at + END_LEN as u64 > len => malformed(
                "the file ends inside its end of central directory record: it looks truncated (an interrupted download?)",
            ),
            Some(_) => malformed("bytes after the end record (trailing data or an archive comment)"),
            None => malformed(
                "no end of central directory record at the end of the archive: the file looks truncated (an interrupted download?) or is not a package",
            ),
        });
    }
    let disk = le_u16(&rec, 4);
    let cd_disk = le_u16(&rec, 6);
    let entries_on_disk = le_u16(&rec, 8);
    let entries = le_u16(&rec, 10);
    let cd_size = le_u32(&rec, 12);
    let cd_offset = le_u32(&rec, 16);
    let comment_len = le_u16(&rec, 20);
    if comment_len != 0 {
        return Err(malformed(
            "bytes after the end record (archive comments are not allowed)",
        ));
    }
    if [disk, cd_disk, entries_on_disk, entries].contains(&ZIP64_U16)
        || cd_size == ZIP64_U32
        || cd_offset == ZIP64_U32
    {
        return Err(malformed("ZIP64 archives are not supported"));
    }
    if disk != 0 || cd_disk != 0 {
        return Err(malformed("multi-disk archives are not supported"));
    }
    if entries_on_disk != entries {
        return Err(malformed(format!(
            "end record lists {entries_on_disk} entries on this disk but {entries} in total"
        )));
    }
    let (cd_size, cd_offset) = (u64::from(cd_size), u64::from(cd_offset));
    if cd_offset + cd_size != position {
        return Err(malformed(format!(
            "central directory (offset {cd_offset}, {cd_size} bytes) does not end where the \
             end record starts (offset {position})"
        )));
    }
    Ok(EndRecord {
        entries,
        cd_size,
        cd_offset,
    })
}

/// Whether an end record signature occurs shortly before the end (for a precise diagnosis).
/// Where the last end-record signature in the archive's tail starts, if there is one.
fn last_end_signature(reader: &mut (impl Read + Seek), len: u64) -> Result<Option<u64>, ArchiveError> {
    let context = || "looking for the end record".to_owned();
    let start = len.saturating_sub(END_SEARCH_WINDOW);
    reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| io_err(context(), e))?;
    let mut tail = Vec::new();
    reader
        .by_ref()
        .take(END_SEARCH_WINDOW)
        .read_to_end(&mut tail)
        .map_err(|e| io_err(context(), e))?;
    let sig = END_SIG.to_le_bytes();
    Ok(tail.windows(sig.len()).rposition(|w| w == sig).map(|i| start + i as u64))
}

/// Where a member's local header is and which flags the central directory gave it.
#[derive(Clone, Copy)]
struct Placement {
    offset: u64,
    flags: u16,
}

type CentralDirectory = (Vec<Entry>, Vec<Placement>, HashMap<String, usize>);

fn read_central_directory(
    reader: &mut (impl Read + Seek),
    end: &EndRecord,
    limits: &ArchiveLimits,
) -> Result<CentralDirectory, ArchiveError> {
    let context = || "reading the central directory".to_owned();
    reader
        .seek(SeekFrom::Start(end.cd_offset))
        .map_err(|e| io_err(context(), e))?;
    let count = usize::from(end.entries);
    let mut cd = BufReader::with_capacity(BUF_SIZE, reader.by_ref().take(end.cd_size));
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    let mut placements = Vec::with_capacity(count);
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut by_folded: HashMap<String, usize> = HashMap::with_capacity(count);
    let mut total: u64 = 0;
    for i in 0..count {
        let truncated = || malformed(format!("central directory ends inside entry {i}"));
        let mut h = [0u8; CENTRAL_LEN];
        read_exact_or(&mut cd, &mut h, context, truncated)?;
        if le_u32(&h, 0) != CENTRAL_SIG {
            return Err(malformed(format!(
                "central directory entry {i} has a bad signature"
            )));
        }
        let name_len = usize::from(le_u16(&h, 28));
        let extra_len = u64::from(le_u16(&h, 30));
        let mut raw_name = vec![0u8; name_len];
        read_exact_or(&mut cd, &mut raw_name, context, truncated)?;
        let name = String::from_utf8(raw_name).map_err(|e| {
            member_err(
                &String::from_utf8_lossy(e.as_bytes()),
                "name is not valid UTF-8",
            )
        })?;
        let skipped = io::copy(&mut (&mut cd).take(extra_len), &mut io::sink())
            .map_err(|e| io_err(context(), e))?;
        if skipped != extra_len {
            return Err(truncated());
        }
        let (entry, placement) = parse_central_entry(&h, name)?;
        let name = entry.name.as_str();

        if entry.size > limits.max_member_size {
            return Err(ArchiveError::Limit(format!(
                "member `{}` is {} bytes, more than the limit of {} bytes",
                shown(name),
                entry.size,
                limits.max_member_size
            )));
        }
        total += entry.size;
        if total > limits.max_total_size {
            return Err(ArchiveError::Limit(format!(
                "total size of members exceeds {} bytes at member `{}`",
                limits.max_total_size,
                shown(name)
            )));
        }
        if by_name.contains_key(name) {
            return Err(member_err(name, "duplicate member name"));
        }
        let folded = name.to_ascii_lowercase();
        if let Some(&other) = by_folded.get(&folded) {
            return Err(member_err(
                name,
                format!(
                    "collides with member `{}` (names differ only in letter case)",
                    shown(&entries[other].name)
                ),
            ));
        }
        by_name.insert(entry.name.clone(), i);
        by_folded.insert(folded, i);
        entries.push(entry);
        placements.push(placement);
    }
    if cd.get_ref().limit() != 0 || !cd.buffer().is_empty() {
        return Err(malformed(format!(
            "central directory holds bytes beyond its {count} entries"
        )));
    }
    Ok((entries, placements, by_name))
}

/// Checks one central directory header (whose name has been read) and builds its entry.
/// Returns the entry and where its local header is.
fn parse_central_entry(
    h: &[u8; CENTRAL_LEN],
    name: String,
) -> Result<(Entry, Placement), ArchiveError> {
    let made_by = le_u16(h, 4);
    let version_needed = le_u16(h, 6);
    let flags = le_u16(h, 8);
    let method = le_u16(h, 10);
    let crc32 = le_u32(h, 16);
    let compressed_size = le_u32(h, 20);
    let size = le_u32(h, 24);
    let comment_len = le_u16(h, 32);
    let disk_start = le_u16(h, 34);
    let external = le_u32(h, 38);
    let offset = le_u32(h, 42);
    let err = |reason: String| Err(member_err(&name, reason));

    if comment_len != 0 {
        return err("entry comments are not allowed".into());
    }
    if flags & FLAG_ENCRYPTED != 0 {
        return err("encrypted entries are not supported".into());
    }
    if flags & FLAG_DATA_DESCRIPTOR != 0 {
        return err("data descriptors are not supported".into());
    }
    if flags & !FLAG_UTF8 != 0 {
        return err(format!("unsupported general purpose flags {flags:#06x}"));
    }
    if flags & FLAG_UTF8 == 0 && !name.is_ascii() {
        return err("non-ASCII name without the UTF-8 flag".into());
    }
    let Some(compression) = Compression::from_method(method) else {
        return err(format!("unsupported compression method {method}"));
    };
    if [compressed_size, size, offset].contains(&ZIP64_U32) || disk_start == ZIP64_U16 {
        return err("ZIP64 entries are not supported".into());
    }
    if disk_start != 0 {
        return err("entry starts on another disk".into());
    }
    let mode = external >> 16;
    let file_type = mode & S_IFMT;
    if name.ends_with('/') || file_type == S_IFDIR || external & DOS_ATTR_DIRECTORY != 0 {
        return err("directory entries are not allowed".into());
    }
    // A Unix symlink; the same mode bits from any other host are refused just the same.
    if file_type == S_IFLNK {
        return err("symbolic link entries are not allowed".into());
    }
    if file_type != 0 && file_type != S_IFREG {
        return err(format!(
            "special file entries are not allowed (mode {mode:o})"
        ));
    }
    check_member_name(&name)?;
    if compression == Compression::Stored && compressed_size != size {
        return err(format!(
            "stored member's compressed size ({compressed_size}) differs from its size ({size})"
        ));
    }
    let entry = Entry {
        name,
        compression,
        compressed_size: u64::from(compressed_size),
        size: u64::from(size),
        crc32,
        data_offset: 0,
        fields: HeaderFields {
            made_by,
            version_needed,
            flags,
            time: le_u16(h, 12),
            date: le_u16(h, 14),
            extra_len: le_u16(h, 30),
            internal: le_u16(h, 36),
            external,
            local_offset: u64::from(offset),
            ..HeaderFields::default()
        },
    };
    let placement = Placement {
        offset: u64::from(offset),
        flags,
    };
    Ok((entry, placement))
}

/// Checks that local headers match the central directory and that members tile the bytes from
/// offset 0 up to the central directory exactly. Fills in each entry's data offset.
fn check_local_headers(
    reader: &mut (impl Read + Seek),
    entries: &mut [Entry],
    placements: &[Placement],
    cd_offset: u64,
) -> Result<(), ArchiveError> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| placements[i].offset);
    let mut expected = 0u64;
    let mut previous: Option<usize> = None;
    for &i in &order {
        let placement = placements[i];
        let offset = placement.offset;
        let entry = &entries[i];
        let name = entry.name.as_str();
        if offset > expected {
            return Err(member_err(
                name,
                format!("{} unlisted bytes before this member", offset - expected),
            ));
        }
        if offset < expected {
            let other = previous.map_or_else(String::new, |p| shown(&entries[p].name));
            return Err(member_err(name, format!("overlaps member `{other}`")));
        }
        let (data_offset, local) = check_local_header(reader, entry, placement)?;
        let data_end = data_offset + entry.compressed_size;
        if data_end > cd_offset {
            return Err(member_err(
                name,
                "member data overlaps the central directory",
            ));
        }
        entries[i].data_offset = data_offset;
        let fields = &mut entries[i].fields;
        (fields.local_version_needed, fields.local_time, fields.local_date, fields.local_extra_len) = local;
        expected = data_end;
        previous = Some(i);
    }
    if expected != cd_offset {
        let gap = cd_offset - expected;
        return Err(match previous {
            Some(p) => member_err(
                &entries[p].name,
                format!("{gap} unlisted bytes after this member"),
            ),
            None => malformed(format!("{gap} unlisted bytes before the central directory")),
        });
    }
    Ok(())
}

/// Reads the local header at `offset`, compares it with `entry` and returns its data offset and its
/// version needed, time, date and extra field length (which only format 2 checks).
fn check_local_header(
    reader: &mut (impl Read + Seek),
    entry: &Entry,
    placement: Placement,
) -> Result<(u64, (u16, u16, u16, u16)), ArchiveError> {
    let offset = placement.offset;
    let name = entry.name.as_str();
    let context = || format!("reading the local header of member `{}`", shown(name));
    let truncated = || member_err(name, "local header is truncated");
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| io_err(context(), e))?;
    let mut h = [0u8; LOCAL_LEN];
    read_exact_or(reader, &mut h, context, truncated)?;
    if le_u32(&h, 0) != LOCAL_SIG {
        return Err(member_err(name, "bad local header signature"));
    }
    let name_len = le_u16(&h, 26);
    let extra_len = le_u16(&h, 28);
    let disagree = |field: &str| {
        Err(member_err(
            name,
            format!("local header disagrees with central directory: {field}"),
        ))
    };
    if le_u16(&h, 6) != placement.flags {
        return disagree("flags");
    }
    if le_u16(&h, 8) != entry.compression.method() {
        return disagree("compression method");
    }
    if le_u32(&h, 14) != entry.crc32 {
        return disagree("CRC-32");
    }
    if u64::from(le_u32(&h, 18)) != entry.compressed_size {
        return disagree("compressed size");
    }
    if u64::from(le_u32(&h, 22)) != entry.size {
        return disagree("size");
    }
    if usize::from(name_len) != name.len() {
        return disagree("name");
    }
    let mut local_name = vec![0u8; name.len()];
    read_exact_or(reader, &mut local_name, context, truncated)?;
    if local_name != name.as_bytes() {
        return disagree("name");
    }
    let data_offset = offset + LOCAL_LEN as u64 + u64::from(name_len) + u64::from(extra_len);
    Ok((data_offset, (le_u16(&h, 4), le_u16(&h, 10), le_u16(&h, 12), extra_len)))
}

/// Copies a stored member's `size` bytes to `sink`.
fn copy_stored(
    entry: &Entry,
    data: &mut impl Read,
    hasher: &mut crc32fast::Hasher,
    sink: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let name = entry.name.as_str();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut written = 0u64;
    while written < entry.size {
        let want = usize::try_from(entry.size - written).map_or(BUF_SIZE, |n| n.min(BUF_SIZE));
        let n = read_some(data, &mut buf[..want])
            .map_err(|e| io_err(format!("reading member `{}`", shown(name)), e))?;
        if n == 0 {
            return Err(member_err(name, "member data is truncated"));
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])
            .map_err(|e| io_err(format!("writing out member `{}`", shown(name)), e))?;
        written += n as u64;
    }
    Ok(written)
}

/// Inflates a deflated member into `sink`, requiring exactly `size` bytes of output, a complete
/// deflate stream, and no compressed bytes left over after it.
fn inflate(
    entry: &Entry,
    data: &mut io::Take<impl Read>,
    hasher: &mut crc32fast::Hasher,
    sink: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let name = entry.name.as_str();
    let mut inflater = Decompress::new(false);
    let mut input = vec![0u8; BUF_SIZE];
    let mut output = vec![0u8; BUF_SIZE];
    let (mut start, mut end) = (0usize, 0usize);
    let mut input_done = false;
    let mut written = 0u64;
    loop {
        if start == end && !input_done {
            end = read_some(data, &mut input)
                .map_err(|e| io_err(format!("reading member `{}`", shown(name)), e))?;
            start = 0;
            input_done = end == 0;
        }
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(&input[start..end], &mut output, FlushDecompress::None)
            .map_err(|e| member_err(name, format!("corrupt deflate data: {e}")))?;
        // Both deltas are bounded by the buffer lengths (64 KiB).
        let consumed = (inflater.total_in() - in_before) as usize;
        let produced = (inflater.total_out() - out_before) as usize;
        start += consumed;
        if produced > 0 {
            if written + produced as u64 > entry.size {
                return Err(member_err(
                    name,
                    format!(
                        "decompresses to more than its declared size of {} bytes",
                        entry.size
                    ),
                ));
            }
            hasher.update(&output[..produced]);
            sink.write_all(&output[..produced])
                .map_err(|e| io_err(format!("writing out member `{}`", shown(name)), e))?;
            written += produced as u64;
        }
        if status == Status::StreamEnd {
            break;
        }
        if consumed == 0 && produced == 0 {
            return Err(member_err(
                name,
                if input_done {
                    "compressed data ends before the deflate stream does"
                } else {
                    "corrupt deflate data: no progress"
                },
            ));
        }
    }
    if start != end || data.limit() != 0 {
        return Err(member_err(
            name,
            "compressed data continues after the end of the deflate stream",
        ));
    }
    if written != entry.size {
        return Err(member_err(
            name,
            format!(
                "decompresses to {written} bytes, fewer than its declared size of {} bytes",
                entry.size
            ),
        ));
    }
    Ok(written)
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the central directory needs to know about a written member.
struct WrittenMember {
    name: String,
    method: u16,
    crc32: u32,
    compressed_size: u32,
    size: u32,
    offset: u32,
}

/// A deterministic archive writer: the same members in the same order give identical bytes.
///
/// `out` should be positioned at the start of an empty file or buffer.
pub struct ArchiveWriter<W> {
    out: W,
    position: u64,
    members: Vec<WrittenMember>,
    /// ASCII-lowercased name -> name as given.
    names: HashMap<String, String>,
    poisoned: bool,
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// Starts an archive at the current position of `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            position: 0,
            members: Vec::new(),
            names: HashMap::new(),
            poisoned: false,
        }
    }

    /// Appends a member, streaming `data` to its end. Names are checked with
    /// [`check_member_name`]; duplicates (also ignoring ASCII case) are refused. After an error
    /// that happens once writing has begun, the writer refuses further use.
    pub fn add(
        &mut self,
        name: &str,
        compression: Compression,
        data: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        self.check_usable()?;
        check_member_name(name)?;
        let folded = name.to_ascii_lowercase();
        if let Some(existing) = self.names.get(&folded) {
            return Err(if existing == name {
                member_err(name, "duplicate member name")
            } else {
                member_err(
                    name,
                    format!(
                        "collides with member `{}` (names differ only in letter case)",
                        shown(existing)
                    ),
                )
            });
        }
        if self.members.len() >= MAX_WRITABLE_MEMBERS {
            return Err(ArchiveError::Limit(format!(
                "more than {MAX_WRITABLE_MEMBERS} members need ZIP64, which is not supported"
            )));
        }
        let offset = u32::try_from(self.position)
            .ok()
            .filter(|&o| o != ZIP64_U32)
            .ok_or_else(too_big)?;

        self.poisoned = true;
        let member = self.write_member(name, compression, data, offset)?;
        self.poisoned = false;

        self.names.insert(folded, name.to_owned());
        self.members.push(member);
        Ok(())
    }

    /// Appends a member whose bytes are already encoded as `compression` says: `raw` yields exactly
    /// `raw_size` bytes, which decode to `size` bytes with CRC-32 `crc32` (as [`deflate`] or
    /// [`ArchiveReader::copy_raw`] give them). The bytes are copied as they are, so a member moves
    /// between archives without being re-encoded.
    pub fn add_raw(
        &mut self,
        name: &str,
        compression: Compression,
        crc32: u32,
        size: u64,
        raw: &mut dyn Read,
        raw_size: u64,
    ) -> Result<(), ArchiveError> {
        self.check_usable()?;
        check_member_name(name)?;
        let folded = name.to_ascii_lowercase();
        if self.names.contains_key(&folded) {
            return Err(member_err(name, "duplicate member name"));
        }
        if self.members.len() >= MAX_WRITABLE_MEMBERS {
            return Err(ArchiveError::Limit(format!("more than {MAX_WRITABLE_MEMBERS} members need ZIP64, which is not supported")));
        }
        if compression == Compression::Stored && raw_size != size {
            return Err(member_err(name, format!("stored bytes ({raw_size}) differ from its size ({size})")));
        }
        let offset = u32::try_from(self.position).ok().filter(|&o| o != ZIP64_U32).ok_or_else(too_big)?;
        let data_start = self.position + (LOCAL_LEN + name.len()) as u64;
        let end = data_start.checked_add(raw_size).filter(|&e| e < u64::from(ZIP64_U32)).ok_or_else(too_big)?;
        let size = u32::try_from(size).ok().filter(|&s| s != ZIP64_U32).ok_or_else(too_big)?;
        // Below `end`, checked above.
        let compressed_size = raw_size as u32;
        let context = || format!("writing member `{}`", shown(name));
        let mut header = Vec::with_capacity(LOCAL_LEN + name.len());
        put_u32(&mut header, LOCAL_SIG);
        put_u16(&mut header, VERSION_NEEDED);
        put_u16(&mut header, FLAG_UTF8);
        put_u16(&mut header, compression.method());
        put_u16(&mut header, DOS_TIME);
        put_u16(&mut header, DOS_DATE);
        put_u32(&mut header, crc32);
        put_u32(&mut header, compressed_size);
        put_u32(&mut header, size);
        put_u16(&mut header, name_len_u16(name));
        put_u16(&mut header, 0); // extra field length
        header.extend_from_slice(name.as_bytes());
        self.poisoned = true;
        self.out.write_all(&header).map_err(|e| io_err(context(), e))?;
        let copied = io::copy(&mut raw.take(raw_size), &mut self.out).map_err(|e| io_err(context(), e))?;
        if copied != raw_size {
            return Err(member_err(name, format!("ended after {copied} of its {raw_size} bytes")));
        }
        self.poisoned = false;
        self.position = end;
        self.names.insert(folded, name.to_owned());
        self.members.push(WrittenMember { name: name.to_owned(), method: compression.method(), crc32, compressed_size, size, offset });
        Ok(())
    }

    /// Writes the central directory and end record; returns the inner writer.
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        self.check_usable()?;
        let cd_offset = self.position;
        let mut cd = Vec::new();
        for m in &self.members {
            put_u32(&mut cd, CENTRAL_SIG);
            put_u16(&mut cd, VERSION_MADE_BY);
            put_u16(&mut cd, VERSION_NEEDED);
            put_u16(&mut cd, FLAG_UTF8);
            put_u16(&mut cd, m.method);
            put_u16(&mut cd, DOS_TIME);
            put_u16(&mut cd, DOS_DATE);
            put_u32(&mut cd, m.crc32);
            put_u32(&mut cd, m.compressed_size);
            put_u32(&mut cd, m.size);
            put_u16(&mut cd, name_len_u16(&m.name));
            put_u16(&mut cd, 0); // extra field length
            put_u16(&mut cd, 0); // comment length
            put_u16(&mut cd, 0); // disk number start
            put_u16(&mut cd, 0); // internal attributes
            put_u32(&mut cd, FILE_MODE << 16);
            put_u32(&mut cd, m.offset);
            cd.extend_from_slice(m.name.as_bytes());
        }
        let cd_size = cd.len() as u64;
        let archive_len = cd_offset + cd_size + END_LEN as u64;
        if archive_len >= u64::from(ZIP64_U32) {
            return Err(too_big());
        }
        // Both fit: they are below `archive_len`, checked above. The member count is at most
        // MAX_WRITABLE_MEMBERS, enforced by `add`.
        let (cd_offset, cd_size) = (cd_offset as u32, cd_size as u32);
        let count = self.members.len() as u16;
        let mut end = Vec::with_capacity(END_LEN);
        put_u32(&mut end, END_SIG);
        put_u16(&mut end, 0); // this disk
        put_u16(&mut end, 0); // disk with the central directory
        put_u16(&mut end, count);
        put_u16(&mut end, count);
        put_u32(&mut end, cd_size);
        put_u32(&mut end, cd_offset);
        put_u16(&mut end, 0); // comment length
        let context = || "writing the central directory".to_owned();
        self.poisoned = true;
        self.out.write_all(&cd).map_err(|e| io_err(context(), e))?;
        self.out.write_all(&end).map_err(|e| io_err(context(), e))?;
        self.out.flush().map_err(|e| io_err(context(), e))?;
        Ok(self.out)
    }

    fn check_usable(&self) -> Result<(), ArchiveError> {
        if self.poisoned {
            return Err(io_err(
                "continuing an archive",
                io::Error::other("an earlier write failed part-way; the archive is incomplete"),
            ));
        }
        Ok(())
    }

    /// Writes a local header with placeholder CRC and sizes, streams the data (compressing it
    /// if asked), then patches the header and returns to the end of the data.
    fn write_member(
        &mut self,
        name: &str,
        compression: Compression,
        data: &mut dyn Read,
        offset: u32,
    ) -> Result<WrittenMember, ArchiveError> {
        let context = || format!("writing member `{}`", shown(name));
        let method = compression.method();
        let header_pos = self
            .out
            .stream_position()
            .map_err(|e| io_err(context(), e))?;
        let mut header = Vec::with_capacity(LOCAL_LEN + name.len());
        put_u32(&mut header, LOCAL_SIG);
        put_u16(&mut header, VERSION_NEEDED);
        put_u16(&mut header, FLAG_UTF8);
        put_u16(&mut header, method);
        put_u16(&mut header, DOS_TIME);
        put_u16(&mut header, DOS_DATE);
        put_u32(&mut header, 0); // CRC-32, patched below
        put_u32(&mut header, 0); // compressed size, patched below
        put_u32(&mut header, 0); // size, patched below
        put_u16(&mut header, name_len_u16(name));
        put_u16(&mut header, 0); // extra field length
        header.extend_from_slice(name.as_bytes());
        self.out
            .write_all(&header)
            .map_err(|e| io_err(context(), e))?;

        let data_start = self.position + header.len() as u64;
        // Room left for this member's bytes below 4 GiB - 1.
        let room = u64::from(ZIP64_U32).saturating_sub(data_start + 1);
        let mut counter = CountingWriter {
            inner: &mut self.out,
            count: 0,
        };
        let (crc32, size) = match compression {
            Compression::Stored => pump(name, data, &mut counter, room)?,
            Compression::Deflated => {
                let mut encoder = DeflateEncoder::new(&mut counter, flate2::Compression::default());
                let result = pump(name, data, &mut encoder, room)?;
                encoder.finish().map_err(|e| io_err(context(), e))?;
                result
            }
        };
        let compressed_size = counter.count;
        let next_position = data_start + compressed_size;
        if size > room || next_position >= u64::from(ZIP64_U32) {
            return Err(too_big());
        }
        // Both are at most `room`, which is below u32::MAX.
        let (size, compressed_size) = (size as u32, compressed_size as u32);

        let mut patch = Vec::with_capacity(12);
        put_u32(&mut patch, crc32);
        put_u32(&mut patch, compressed_size);
        put_u32(&mut patch, size);
        let data_end_pos = header_pos + (next_position - self.position);
        self.out
            .seek(SeekFrom::Start(header_pos + 14))
            .and_then(|_| self.out.write_all(&patch))
            .and_then(|()| self.out.seek(SeekFrom::Start(data_end_pos)))
            .map_err(|e| io_err(context(), e))?;
        self.position = next_position;
        Ok(WrittenMember {
            name: name.to_owned(),
            method,
            crc32,
            compressed_size,
            size,
            offset,
        })
    }
}

/// A member's bytes deflated exactly as [`ArchiveWriter::add`] would deflate them, with the CRC-32
/// and size of the input: what [`ArchiveWriter::add_raw`] takes.
#[derive(Debug, Clone)]
pub struct Deflated {
    /// The raw DEFLATE stream.
    pub bytes: Vec<u8>,
    /// CRC-32 of the input.
    pub crc32: u32,
    /// Size of the input.
    pub size: u64,
}

/// Deflates `data` (named `name` in errors) into memory, as the writer would.
pub fn deflate(name: &str, data: &mut dyn Read) -> Result<Deflated, ArchiveError> {
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let (crc32, size) = pump(name, data, &mut encoder, u64::from(ZIP64_U32) - 1)?;
    let bytes = encoder.finish().map_err(|e| io_err(format!("compressing member `{}`", shown(name)), e))?;
    Ok(Deflated { bytes, crc32, size })
}

/// Name length as stored in headers; names are at most `MAX_NAME_LEN` bytes once checked.
fn name_len_u16(name: &str) -> u16 {
    debug_assert!(name.len() <= MAX_NAME_LEN);
    name.len() as u16
}

/// Copies `data` to `out` in fixed-size chunks (so compressed output does not depend on how
/// `data` splits its reads), returning the CRC-32 and length. Fails once more than `max` bytes
/// have been read.
fn pump(
    name: &str,
    data: &mut dyn Read,
    out: &mut dyn Write,
    max: u64,
) -> Result<(u32, u64), ArchiveError> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut hasher = crc32fast::Hasher::new();
    let mut size = 0u64;
    loop {
        let n = read_full(data, &mut buf)
            .map_err(|e| io_err(format!("reading data for member `{}`", shown(name)), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max {
            return Err(too_big());
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| io_err(format!("writing member `{}`", shown(name)), e))?;
        if n < buf.len() {
            break;
        }
    }
    Ok((hasher.finalize(), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Pseudo-random bytes that deflate barely compresses.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 33) as u8
            })
            .collect()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn write_archive(members: &[(&str, Compression, &[u8])]) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new()));
        for (name, compression, data) in members {
            w.add(name, *compression, &mut &data[..]).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn open(bytes: &[u8]) -> Result<ArchiveReader<Cursor<&[u8]>>, ArchiveError> {
        ArchiveReader::open(Cursor::new(bytes), &ArchiveLimits::default())
    }

    fn open_err(bytes: &[u8]) -> String {
        match open(bytes) {
            Ok(_) => panic!("archive was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_contains(message: &str, needles: &[&str]) {
        for needle in needles {
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
    }

    /// A member written byte by byte, so tests can write what the writer never would.
    #[derive(Clone)]
    struct Raw {
        name: String,
        method: u16,
        flags: u16,
        crc: u32,
        compressed_size: u32,
        size: u32,
        made_by: u16,
        external: u32,
        data: Vec<u8>,
    }

    impl Raw {
        fn stored(name: &str, data: &[u8]) -> Self {
            Self {
                name: name.to_owned(),
                method: METHOD_STORED,
                flags: FLAG_UTF8,
                crc: crc32fast::hash(data),
                compressed_size: data.len() as u32,
                size: data.len() as u32,
                made_by: VERSION_MADE_BY,
                external: FILE_MODE << 16,
                data: data.to_vec(),
            }
        }

        fn deflated(name: &str, data: &[u8]) -> Self {
            let packed = deflate(data);
            Self {
                method: METHOD_DEFLATED,
                compressed_size: packed.len() as u32,
                data: packed,
                ..Self::stored(name, data)
            }
        }
    }

    /// Lays out `prefix`, the members separated by `gap`, the central directory and end record.
    fn build(members: &[Raw], prefix: &[u8], gap: &[u8]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        let mut offsets = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(gap);
            }
            offsets.push(out.len() as u32);
            put_u32(&mut out, LOCAL_SIG);
            put_u16(&mut out, 20);
            put_u16(&mut out, m.flags);
            put_u16(&mut out, m.method);
            put_u16(&mut out, DOS_TIME);
            put_u16(&mut out, DOS_DATE);
            put_u32(&mut out, m.crc);
            put_u32(&mut out, m.compressed_size);
            put_u32(&mut out, m.size);
            put_u16(&mut out, m.name.len() as u16);
            put_u16(&mut out, 0);
            out.extend_from_slice(m.name.as_bytes());
            out.extend_from_slice(&m.data);
        }
        let cd_offset = out.len() as u32;
        for (m, offset) in members.iter().zip(&offsets) {
            put_u32(&mut out, CENTRAL_SIG);
            put_u16(&mut out, m.made_by);
            put_u16(&mut out, 20);
            put_u16(&mut out, m.flags);
            put_u16(&mut out, m.method);
            put_u16(&mut out, DOS_TIME);
            put_u16(&mut out, DOS_DATE);
            put_u32(&mut out, m.crc);
            put_u32(&mut out, m.compressed_size);
            put_u32(&mut out, m.size);
            put_u16(&mut out, m.name.len() as u16);
            put_u16(&mut out, 0);
            put_u16(&mut out, 0);
            put_u16(&mut out, 0);
            put_u16(&mut out, 0);
            put_u32(&mut out, m.external);
            put_u32(&mut out, *offset);
            out.extend_from_slice(m.name.as_bytes());
        }
        let cd_size = out.len() as u32 - cd_offset;
        put_u32(&mut out, END_SIG);
        put_u16(&mut out, 0);
        put_u16(&mut out, 0);
        put_u16(&mut out, members.len() as u16);
        put_u16(&mut out, members.len() as u16);
        put_u32(&mut out, cd_size);
        put_u32(&mut out, cd_offset);
        put_u16(&mut out, 0);
        out
    }

    /// Byte position of central directory header `index` (archive without extras/comments).
    fn central_pos(bytes: &[u8], index: usize) -> usize {
        let end = bytes.len() - END_LEN;
        let mut pos = le_u32(bytes, end + 16) as usize;
        for _ in 0..index {
            pos += CENTRAL_LEN + le_u16(bytes, pos + 28) as usize;
        }
        pos
    }

    fn set_u16(bytes: &mut [u8], at: usize, value: u16) {
        bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn set_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn single(member: Raw) -> Vec<u8> {
        build(&[member], &[], &[])
    }

    fn read_err(bytes: &[u8], limits: &ArchiveLimits, name: &str) -> (String, Vec<u8>) {
        let mut reader = ArchiveReader::open(Cursor::new(bytes), limits).unwrap();
        let index = reader.find(name).unwrap();
        let mut sink = Vec::new();
        let err = reader.read_entry(index, &mut sink).unwrap_err();
        (err.to_string(), sink)
    }

    #[test]
    fn round_trip() {
        let small = b"hello, wasmzip\n".repeat(10);
        let big = noise(3 * 1024 * 1024, 7);
        let text = b"some text that compresses well ".repeat(1000);
        let members: [(&str, Compression, &[u8]); 5] = [
            ("a.txt", Compression::Stored, &small),
            ("lib/big.bin", Compression::Deflated, &big),
            ("empty", Compression::Stored, b""),
            ("empty.deflated", Compression::Deflated, b""),
            ("docs/text.md", Compression::Deflated, &text),
        ];
        let bytes = write_archive(&members);
        let mut reader = open(&bytes).unwrap();
        let names: Vec<&str> = reader.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, members.map(|m| m.0));
        for (i, (name, compression, data)) in members.iter().enumerate() {
            assert_eq!(reader.find(name), Some(i));
            let entry = &reader.entries()[i];
            assert_eq!(entry.compression, *compression);
            assert_eq!(entry.size, data.len() as u64);
            assert_eq!(entry.crc32, crc32fast::hash(data));
            if *compression == Compression::Stored {
                assert_eq!(entry.compressed_size, entry.size);
            }
            let mut sink = Vec::new();
            assert_eq!(reader.read_entry(i, &mut sink).unwrap(), data.len() as u64);
            assert_eq!(&sink, data);
            assert_eq!(
                &reader.read_entry_to_vec(i, data.len() as u64).unwrap(),
                data
            );
        }
        assert!(reader.entries()[4].compressed_size < reader.entries()[4].size / 10);
        assert_eq!(reader.find("A.TXT"), None);
        assert_eq!(reader.find("missing"), None);
        let err = reader.read_entry(99, &mut io::sink()).unwrap_err();
        assert_contains(&err.to_string(), &["no member at index 99"]);
    }

    #[test]
    fn empty_archive() {
        let bytes = write_archive(&[]);
        assert_eq!(bytes.len(), END_LEN);
        assert!(open(&bytes).unwrap().entries().is_empty());
    }

    #[test]
    fn deterministic_layout() {
        let data = noise(200_000, 3);
        let members: [(&str, Compression, &[u8]); 2] = [
            ("x/stored", Compression::Stored, &data),
            ("x/deflated", Compression::Deflated, &data),
        ];
        let first = write_archive(&members);
        // The same data delivered in odd-sized reads must give identical bytes.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new()));
        w.add("x/stored", Compression::Stored, &mut Dribble(&data))
            .unwrap();
        w.add("x/deflated", Compression::Deflated, &mut Dribble(&data))
            .unwrap();
        let second = w.finish().unwrap().into_inner();
        assert_eq!(first, second);

        // Fixed header fields.
        assert_eq!(le_u32(&first, 0), LOCAL_SIG);
        assert_eq!(le_u16(&first, 4), 20);
        assert_eq!(le_u16(&first, 6), 0x0800);
        assert_eq!(le_u16(&first, 8), 0);
        assert_eq!(le_u16(&first, 10), 0);
        assert_eq!(le_u16(&first, 12), 0x0021);
        assert_eq!(le_u32(&first, 14), crc32fast::hash(&data));
        assert_eq!(le_u32(&first, 18), data.len() as u32);
        assert_eq!(le_u32(&first, 22), data.len() as u32);
        let cd = central_pos(&first, 1);
        assert_eq!(le_u16(&first, cd + 4), (3 << 8) | 20);
        assert_eq!(le_u16(&first, cd + 10), 8);
        assert_eq!(le_u32(&first, cd + 38), 0o100644 << 16);
        let end = first.len() - END_LEN;
        assert_eq!(le_u16(&first, end + 10), 2);
        assert_eq!(le_u16(&first, end + 20), 0);
    }

    #[test]
    fn writer_rejects_bad_names_without_breaking() {
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new()));
        w.add("ok.txt", Compression::Stored, &mut &b"1"[..])
            .unwrap();
        for (name, reason) in [
            ("../x", "`..`"),
            ("/abs", "absolute"),
            ("ok.txt", "duplicate member name"),
            ("OK.txt", "collides with member `ok.txt`"),
            ("dir/", "ends with '/'"),
        ] {
            let err = w
                .add(name, Compression::Deflated, &mut &b"2"[..])
                .unwrap_err();
            assert_contains(&err.to_string(), &[name, reason]);
        }
        w.add("other.txt", Compression::Deflated, &mut &b"3"[..])
            .unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let mut reader = open(&bytes).unwrap();
        assert_eq!(reader.entries().len(), 2);
        assert_eq!(reader.read_entry_to_vec(1, 10).unwrap(), b"3");
    }

    #[test]
    fn writer_refuses_use_after_failed_member() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("boom"))
            }
        }
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new()));
        let err = w.add("a", Compression::Stored, &mut Failing).unwrap_err();
        assert_contains(&err.to_string(), &["member `a`", "boom"]);
        assert!(w.add("b", Compression::Stored, &mut &b""[..]).is_err());
        assert!(w.finish().is_err());
    }

    #[test]
    fn member_names() {
        for good in ["a", "a/b/c.wasm", "ünï/çødé", "a..b", ".hidden", "ab:c"] {
            check_member_name(good).unwrap();
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for (bad, reason) in [
            ("", "empty"),
            (long.as_str(), "longer than 1024"),
            ("a\0b", "control character"),
            ("a\nb", "control character"),
            ("a\\b", "backslash"),
            ("/abs", "absolute"),
            ("C:/x", "drive prefix"),
            ("c:x", "drive prefix"),
            ("dir/", "ends with '/'"),
            ("a//b", "empty path component"),
            ("./a", "`.` or `..`"),
            ("a/./b", "`.` or `..`"),
            ("../x", "`.` or `..`"),
            ("a/..", "`.` or `..`"),
        ] {
            let err = check_member_name(bad).unwrap_err().to_string();
            assert_contains(&err, &[reason]);
        }
        // Control characters are escaped in messages; long names are shortened.
        let err = check_member_name("a\nb").unwrap_err().to_string();
        assert_contains(&err, &["member `a\\nb`"]);
        let err = check_member_name(&long).unwrap_err().to_string();
        assert!(err.len() < 400, "{err}");
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = write_archive(&[("a", Compression::Stored, b"abc")]);
        open(&bytes).unwrap();
        bytes.push(0);
        assert_contains(&open_err(&bytes), &["bytes after the end record"]);
    }

    /// A download cut short is said to look truncated, wherever the cut falls.
    #[test]
    fn truncated_archives_say_so() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let bytes = write_archive(&[("a", Compression::Stored, b"abc"), ("b", Compression::Stored, &big)]);
        for cut in [1, 5, END_LEN - 1, END_LEN, END_LEN + 10, bytes.len() / 2, 1000] {
            let err = open_err(&bytes[..bytes.len() - cut]);
            assert_contains(&err, &["looks truncated"]);
        }
    }

    #[test]
    fn archive_comment_rejected() {
        let mut bytes = write_archive(&[("a", Compression::Stored, b"abc")]);
        let end = bytes.len() - END_LEN;
        set_u16(&mut bytes, end + 20, 3);
        bytes.extend_from_slice(b"hey");
        assert_contains(&open_err(&bytes), &["bytes after the end record"]);
        // A comment length without the comment is just as bad.
        bytes.truncate(bytes.len() - 3);
        assert_contains(&open_err(&bytes), &["bytes after the end record"]);
    }

    #[test]
    fn garbage_and_short_input_rejected() {
        assert_contains(&open_err(b""), &["too short"]);
        assert_contains(
            &open_err(&[0u8; 100]),
            &["no end of central directory record"],
        );
    }

    #[test]
    fn prefix_bytes_rejected() {
        let bytes = build(&[Raw::stored("first.txt", b"1")], b"MZ\x90\x00", &[]);
        assert_contains(
            &open_err(&bytes),
            &["member `first.txt`", "4 unlisted bytes before this member"],
        );
    }

    #[test]
    fn gap_between_members_rejected() {
        let members = [Raw::stored("a.txt", b"1"), Raw::stored("b.txt", b"2")];
        let bytes = build(&members, &[], b"hidden");
        assert_contains(
            &open_err(&bytes),
            &["member `b.txt`", "6 unlisted bytes before this member"],
        );
    }

    #[test]
    fn bytes_after_last_member_rejected() {
        let mut bytes = build(&[Raw::stored("a.txt", b"12345")], &[], &[]);
        // Claim the member is shorter than it is: its last bytes become unlisted.
        let cd = central_pos(&bytes, 0);
        for at in [14 + 4, 14 + 8] {
            set_u32(&mut bytes, at, 3);
        }
        set_u32(&mut bytes, cd + 20, 3);
        set_u32(&mut bytes, cd + 24, 3);
        assert_contains(
            &open_err(&bytes),
            &["member `a.txt`", "2 unlisted bytes after this member"],
        );
    }

    #[test]
    fn overlapping_members_rejected() {
        let members = [Raw::stored("a.txt", b"1"), Raw::stored("b.txt", b"1")];
        let mut bytes = build(&members, &[], &[]);
        let cd = central_pos(&bytes, 1);
        set_u32(&mut bytes, cd + 42, 0);
        assert_contains(&open_err(&bytes), &["overlaps member `a.txt`"]);
    }

    #[test]
    fn central_directory_must_end_at_end_record() {
        let mut bytes = write_archive(&[("a", Compression::Stored, b"abc")]);
        let end = bytes.len() - END_LEN;
        let cd_offset = le_u32(&bytes, end + 16);
        set_u32(&mut bytes, end + 16, cd_offset - 1);
        assert_contains(
            &open_err(&bytes),
            &["does not end where the end record starts"],
        );
    }

    #[test]
    fn zip64_and_multi_disk_rejected() {
        let good = write_archive(&[("a", Compression::Stored, b"abc")]);
        let end = good.len() - END_LEN;
        let mut bytes = good.clone();
        set_u16(&mut bytes, end + 8, 0xFFFF);
        set_u16(&mut bytes, end + 10, 0xFFFF);
        assert_contains(&open_err(&bytes), &["ZIP64"]);
        let mut bytes = good.clone();
        set_u16(&mut bytes, end + 4, 1);
        assert_contains(&open_err(&bytes), &["multi-disk"]);
        let mut bytes = good.clone();
        set_u16(&mut bytes, end + 8, 2);
        assert_contains(&open_err(&bytes), &["entries"]);
        let mut m = Raw::stored("a", b"abc");
        m.compressed_size = ZIP64_U32;
        m.size = ZIP64_U32;
        assert_contains(&open_err(&single(m)), &["member `a`", "ZIP64"]);
    }

    #[test]
    fn duplicate_name_rejected() {
        let members = [Raw::stored("same.txt", b"1"), Raw::stored("same.txt", b"2")];
        assert_contains(
            &open_err(&build(&members, &[], &[])),
            &["member `same.txt`", "duplicate member name"],
        );
    }

    #[test]
    fn case_collision_rejected() {
        let members = [
            Raw::stored("Readme.md", b"1"),
            Raw::stored("README.md", b"2"),
        ];
        assert_contains(
            &open_err(&build(&members, &[], &[])),
            &["member `README.md`", "collides with member `Readme.md`"],
        );
    }

    #[test]
    fn unsafe_names_rejected() {
        for (name, reason) in [
            ("../x", "`.` or `..`"),
            ("/abs", "absolute"),
            ("a\\b", "backslash"),
            ("C:/win", "drive prefix"),
            ("a\u{7}", "control character"),
        ] {
            let bytes = single(Raw::stored(name, b"x"));
            assert_contains(&open_err(&bytes), &[reason]);
        }
        let bytes = single(Raw::stored("../x", b"x"));
        assert_contains(&open_err(&bytes), &["member `../x`"]);
        let bytes = single(Raw::stored("a\\b", b"x"));
        assert_contains(&open_err(&bytes), &["member `a\\b`"]);
    }

    #[test]
    fn invalid_utf8_and_unflagged_names_rejected() {
        let mut bytes = single(Raw::stored("ab", b"x"));
        let cd = central_pos(&bytes, 0);
        bytes[cd + CENTRAL_LEN] = 0xFF;
        assert_contains(&open_err(&bytes), &["not valid UTF-8"]);
        let mut m = Raw::stored("é", b"x");
        m.flags = 0;
        assert_contains(
            &open_err(&single(m)),
            &["member `é`", "without the UTF-8 flag"],
        );
        let mut m = Raw::stored("plain", b"x");
        m.flags = 0;
        open(&single(m)).unwrap();
    }

    #[test]
    fn symlink_rejected() {
        let mut m = Raw::stored("link", b"/etc/passwd");
        m.external = 0o120_777 << 16;
        assert_contains(
            &open_err(&single(m)),
            &["member `link`", "symbolic link entries are not allowed"],
        );
    }

    #[test]
    fn special_files_rejected() {
        let mut m = Raw::stored("dev", b"");
        m.external = 0o020_644 << 16;
        assert_contains(&open_err(&single(m)), &["member `dev`", "special file"]);
    }

    #[test]
    fn directory_entries_rejected() {
        let m = Raw::stored("dir/", b"");
        assert_contains(
            &open_err(&single(m)),
            &["member `dir/`", "directory entries"],
        );
        let mut m = Raw::stored("dir", b"");
        m.external = 0o040_755 << 16;
        assert_contains(
            &open_err(&single(m)),
            &["member `dir`", "directory entries"],
        );
        let mut m = Raw::stored("dosdir", b"");
        m.made_by = 20;
        m.external = DOS_ATTR_DIRECTORY;
        assert_contains(
            &open_err(&single(m)),
            &["member `dosdir`", "directory entries"],
        );
    }

    #[test]
    fn encryption_flag_rejected() {
        let mut m = Raw::stored("secret", b"x");
        m.flags |= FLAG_ENCRYPTED;
        assert_contains(&open_err(&single(m)), &["member `secret`", "encrypted"]);
    }

    #[test]
    fn data_descriptor_flag_rejected() {
        let mut m = Raw::deflated("streamed", b"x");
        m.flags |= FLAG_DATA_DESCRIPTOR;
        assert_contains(
            &open_err(&single(m)),
            &["member `streamed`", "data descriptors"],
        );
        let mut m = Raw::stored("odd", b"x");
        m.flags |= 0x0002;
        assert_contains(&open_err(&single(m)), &["member `odd`", "flags 0x0802"]);
    }

    #[test]
    fn unsupported_method_rejected() {
        let mut m = Raw::stored("bz", b"x");
        m.method = 12;
        assert_contains(
            &open_err(&single(m)),
            &["member `bz`", "unsupported compression method 12"],
        );
    }

    #[test]
    fn stored_size_mismatch_rejected() {
        let mut m = Raw::stored("s", b"abc");
        m.size = 4;
        assert_contains(
            &open_err(&single(m)),
            &["member `s`", "differs from its size"],
        );
    }

    #[test]
    fn entry_comment_rejected() {
        let mut bytes = single(Raw::stored("c", b"x"));
        let cd = central_pos(&bytes, 0);
        set_u16(&mut bytes, cd + 32, 1);
        assert_contains(&open_err(&bytes), &["member `c`", "comments"]);
    }

    #[test]
    fn local_central_mismatch_rejected() {
        let good = build(
            &[
                Raw::stored("pad", b"x"),
                Raw::deflated("m.wasm", &[7u8; 100]),
            ],
            &[],
            &[],
        );
        let local = LOCAL_LEN + 3 + 1; // second local header
        assert_eq!(le_u32(&good, local), LOCAL_SIG);
        for (at, width, field) in [
            (6, 2, "flags"),
            (8, 2, "compression method"),
            (14, 4, "CRC-32"),
            (18, 4, "compressed size"),
            (22, 4, "size"),
            (26, 2, "name"),
            (LOCAL_LEN, 1, "name"),
        ] {
            let mut bytes = good.clone();
            if width == 1 {
                bytes[local + at] = b'M';
            } else {
                bytes[local + at] ^= 0x01;
            }
            assert_contains(
                &open_err(&bytes),
                &[
                    "member `m.wasm`",
                    format!("local header disagrees with central directory: {field}").as_str(),
                ],
            );
        }
        let mut bytes = good.clone();
        bytes[local] = b'X';
        assert_contains(
            &open_err(&bytes),
            &["member `m.wasm`", "bad local header signature"],
        );
    }

    #[test]
    fn local_extra_field_is_skipped() {
        // Give the first member a 4-byte local extra field; the layout must still tile exactly.
        let m = Raw::stored("e", b"data");
        let plain = single(m.clone());
        let mut bytes = plain[..LOCAL_LEN + 1].to_vec();
        set_u16(&mut bytes, 28, 4);
        bytes.extend_from_slice(&[0xAA; 4]);
        bytes.extend_from_slice(&plain[LOCAL_LEN + 1..]);
        let end = bytes.len() - END_LEN;
        let cd_offset = le_u32(&bytes, end + 16);
        set_u32(&mut bytes, end + 16, cd_offset + 4);
        let mut reader = open(&bytes).unwrap();
        assert_eq!(reader.read_entry_to_vec(0, 4).unwrap(), b"data");
    }

    #[test]
    fn crc_mismatch_detected() {
        let mut m = Raw::stored("bad.crc", b"payload");
        m.crc ^= 1;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "bad.crc");
        assert_contains(&err, &["member `bad.crc`", "CRC-32 mismatch"]);
        let mut m = Raw::deflated("bad.crc", &[1u8; 5000]);
        m.crc ^= 1;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "bad.crc");
        assert_contains(&err, &["member `bad.crc`", "CRC-32 mismatch"]);
    }

    #[test]
    fn oversized_deflate_output_stops_early() {
        let mut m = Raw::deflated("liar", &noise(200_000, 1));
        m.size = 10;
        let (err, sink) = read_err(&single(m), &ArchiveLimits::default(), "liar");
        assert_contains(
            &err,
            &["member `liar`", "more than its declared size of 10 bytes"],
        );
        assert!(sink.len() <= 10);
    }

    #[test]
    fn short_deflate_output_rejected() {
        let data = noise(5000, 2);
        let mut m = Raw::deflated("short", &data);
        m.size = 6000;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "short");
        assert_contains(&err, &["member `short`", "fewer than its declared size"]);
    }

    #[test]
    fn truncated_deflate_stream_rejected() {
        let mut m = Raw::deflated("cut", &noise(5000, 4));
        m.data.truncate(m.data.len() - 10);
        m.compressed_size = m.data.len() as u32;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "cut");
        assert_contains(
            &err,
            &["member `cut`", "ends before the deflate stream does"],
        );
    }

    #[test]
    fn bytes_after_deflate_stream_rejected() {
        let mut m = Raw::deflated("tail", b"abcabcabc");
        m.data.extend_from_slice(b"junk");
        m.compressed_size = m.data.len() as u32;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "tail");
        assert_contains(
            &err,
            &[
                "member `tail`",
                "continues after the end of the deflate stream",
            ],
        );
    }

    #[test]
    fn corrupt_deflate_stream_rejected() {
        let mut m = Raw::deflated("junk", b"abc");
        m.data = vec![0xFF; 16];
        m.compressed_size = 16;
        let (err, _) = read_err(&single(m), &ArchiveLimits::default(), "junk");
        assert_contains(&err, &["member `junk`", "corrupt deflate data"]);
    }

    #[test]
    fn compression_ratio_bomb_rejected() {
        let zeros = vec![0u8; 20 * 1024 * 1024];
        let bytes = write_archive(&[
            ("small-zeros", Compression::Deflated, &zeros[..1024 * 1024]),
            ("bomb", Compression::Deflated, &zeros),
        ]);
        let limits = ArchiveLimits {
            max_compression_ratio: 100,
            ratio_floor: 1024 * 1024,
            ..ArchiveLimits::default()
        };
        let (err, sink) = read_err(&bytes, &limits, "bomb");
        assert_contains(
            &err,
            &[
                "limit exceeded",
                "member `bomb`",
                "compression ratio over 100:1",
            ],
        );
        assert!(sink.is_empty());
        // At the floor the ratio is not checked; with a generous ratio the bomb reads back.
        let mut reader = ArchiveReader::open(Cursor::new(&bytes[..]), &limits).unwrap();
        assert_eq!(reader.read_entry(0, &mut io::sink()).unwrap(), 1024 * 1024);
        let limits = ArchiveLimits {
            max_compression_ratio: 100_000,
            ..limits
        };
        let mut reader = ArchiveReader::open(Cursor::new(&bytes[..]), &limits).unwrap();
        assert_eq!(
            reader.read_entry(1, &mut io::sink()).unwrap(),
            zeros.len() as u64
        );
    }

    #[test]
    fn too_many_members_rejected() {
        let members: Vec<Raw> = (0..5)
            .map(|i| Raw::stored(&format!("m{i}"), b"x"))
            .collect();
        let bytes = build(&members, &[], &[]);
        let limits = ArchiveLimits {
            max_members: 3,
            ..ArchiveLimits::default()
        };
        let err = ArchiveReader::open(Cursor::new(&bytes), &limits)
            .err()
            .unwrap();
        assert_contains(&err.to_string(), &["5 members", "limit of 3"]);
        let limits = ArchiveLimits {
            max_members: 5,
            ..ArchiveLimits::default()
        };
        ArchiveReader::open(Cursor::new(&bytes), &limits).unwrap();
    }

    #[test]
    fn size_limits_enforced() {
        let members = [Raw::stored("one", &[1; 600]), Raw::stored("two", &[2; 600])];
        let bytes = build(&members, &[], &[]);
        let limits = ArchiveLimits {
            max_member_size: 500,
            ..ArchiveLimits::default()
        };
        let err = ArchiveReader::open(Cursor::new(&bytes), &limits)
            .err()
            .unwrap();
        assert_contains(&err.to_string(), &["member `one`", "600 bytes"]);
        let limits = ArchiveLimits {
            max_total_size: 1000,
            ..ArchiveLimits::default()
        };
        let err = ArchiveReader::open(Cursor::new(&bytes), &limits)
            .err()
            .unwrap();
        assert_contains(&err.to_string(), &["exceeds 1000 bytes", "member `two`"]);
        let mut reader = open(&bytes).unwrap();
        let err = reader.read_entry_to_vec(1, 599).unwrap_err();
        assert_contains(&err.to_string(), &["member `two`", "limit of 599"]);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = write_archive(&[
            ("a", Compression::Stored, b"first member"),
            (
                "b/c",
                Compression::Deflated,
                b"second member, second member",
            ),
        ]);
        for len in 0..bytes.len() {
            assert!(open(&bytes[..len]).is_err(), "accepted truncation to {len}");
        }
    }

    #[test]
    fn single_byte_corruption_never_yields_wrong_data() {
        let a = b"first member data".to_vec();
        let b = noise(300, 9);
        let bytes = write_archive(&[
            ("a", Compression::Stored, &a),
            ("b/c", Compression::Deflated, &b),
        ]);
        for pos in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[pos] ^= flip;
                let Ok(mut reader) = open(&bad) else { continue };
                let names: Vec<String> = reader.entries().iter().map(|e| e.name.clone()).collect();
                assert_eq!(names, ["a", "b/c"], "byte {pos} ^ {flip:#x}");
                for (i, expected) in [&a, &b].into_iter().enumerate() {
                    if let Ok(got) = reader.read_entry_to_vec(i, 1 << 20) {
                        assert_eq!(&got, expected, "byte {pos} ^ {flip:#x}");
                    }
                }
            }
        }
    }
}
