//! Scanning the request body: one pass that validates JSON (UTF-8 included) and finds each record's
//! fields as slices of the input, with a fast path for flat records.

use std::borrow::Cow;

use crate::MAX_DEPTH;
use crate::write::{write_flat_if_active, write_if_active};

/// A syntax error: what was wrong and the byte offset where it was found.
pub(crate) struct SyntaxError {
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

impl SyntaxError {
    /// `invalid JSON: <what> at line L column C` (1-based; the column counts bytes).
    pub(crate) fn message(&self, input: &[u8]) -> String {
        let before = &input[..self.at.min(input.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let column = before.len() - before.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1) + 1;
        format!("invalid JSON: {} at line {line} column {column}", self.what)
    }
}

/// What a scanned value is; strings note whether they hold escapes and whether they are all ASCII.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String { escaped: bool, ascii: bool },
    Number,
    True,
    Other,
}

/// The keys the transform reads or writes; every other key is `Other`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Active,
    Price,
    Quantity,
    Name,
    Total,
    NameUpper,
    Other,
}

impl Role {
    /// The role of a (decoded) key: by length first, then one comparison.
    pub(crate) fn of(key: &str) -> Role {
        let (role, name): (Role, &[u8]) = match key.len() {
            4 => (Role::Name, b"name"),
            5 if key.as_bytes()[0] == b'p' => (Role::Price, b"price"),
            5 => (Role::Total, b"total"),
            6 => (Role::Active, b"active"),
            8 => (Role::Quantity, b"quantity"),
            10 => (Role::NameUpper, b"name_upper"),
            _ => return Role::Other,
        };
        if key.as_bytes() == name { role } else { Role::Other }
    }
}

/// Keys other than the known ones that a record may have and still be scanned as [`Flat`].
pub(crate) const FLAT_OTHER_KEYS: usize = 8;

/// A flat record (see [`Scanner::flat_record`]): its text and the values the transform reads.
pub(crate) struct Flat<'a> {
    pub(crate) text: &'a [u8],
    pub(crate) active: bool,
    /// Number values only.
    pub(crate) price: Option<NumberText<'a>>,
    pub(crate) quantity: Option<NumberText<'a>>,
    /// String values only, with their kind.
    pub(crate) name: Option<(&'a [u8], Kind)>,
}

/// The eight bytes of `b` from `at` as a little-endian word (the first byte lowest), if there are
/// eight.
#[inline]
pub(crate) fn word_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The first (at most eight) bytes of `s` as a little-endian word, for comparing keys a word at a time.
const fn word(s: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < s.len() && i < 8 {
        w |= (s[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// A key a flat record reads, recognised from the bytes after its opening quote (at `start`)
/// without scanning it as a string: its role and length when the bytes are exactly `name`,
/// `price`, `active` or `quantity` followed by the closing quote. `None` for anything else.
#[inline]
pub(crate) fn known_key(b: &[u8], start: usize) -> Option<(Role, usize)> {
    let w = word_at(b, start)?;
    let first = |n: usize| w & (u64::MAX >> (64 - 8 * n));
    if first(5) == word(b"name\"") {
        Some((Role::Name, 4))
    } else if first(6) == word(b"price\"") {
        Some((Role::Price, 5))
    } else if first(7) == word(b"active\"") {
        Some((Role::Active, 6))
    } else if w == word(b"quantity") && b.get(start + 8) == Some(&b'"') {
        Some((Role::Quantity, 8))
    } else {
        None
    }
}

/// The role of the unescaped key `b[start..end]`, comparing it as whole words read from the input
/// (the closing quote and what follows make eight bytes readable except at the very end).
pub(crate) fn role_at(b: &[u8], start: usize, end: usize) -> Role {
    let Some(w) = word_at(b, start) else { return Role::of(as_str(&b[start..end])) };
    let first = |n: usize| w & (u64::MAX >> (64 - 8 * n));
    match end - start {
        4 if first(4) == word(b"name") => Role::Name,
        5 if first(5) == word(b"price") => Role::Price,
        5 if first(5) == word(b"total") => Role::Total,
        6 if first(6) == word(b"active") => Role::Active,
        8 if w == word(b"quantity") => Role::Quantity,
        10 if w == word(b"name_upp") && b[start + 8..end] == *b"er" => Role::NameUpper,
        _ => Role::Other,
    }
}

/// One field of a record: its key (decoded) and what it means here, the key as written (quotes
/// included), and its value as written.
pub(crate) struct Field<'a> {
    pub(crate) key: Cow<'a, str>,
    pub(crate) role: Role,
    pub(crate) raw_key: &'a [u8],
    pub(crate) key_escaped: bool,
    pub(crate) value: &'a [u8],
    pub(crate) kind: Kind,
}

/// A record scanned field by field (one that is not [`Flat`]).
pub(crate) struct Record<'a> {
    pub(crate) fields: Vec<Field<'a>>,
}

impl<'a> Record<'a> {
    pub(crate) fn get(&self, role: Role) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.role == role)
    }
}

pub(crate) struct Scanner<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn fail<T>(&self, what: &'static str) -> Result<T, SyntaxError> {
        Err(SyntaxError { at: self.i, what })
    }

    pub(crate) fn unexpected<T>(&self, expected: &'static str) -> Result<T, SyntaxError> {
        if self.i >= self.b.len() { self.fail("unexpected end of input") } else { self.fail(expected) }
    }

    /// Skips JSON whitespace.
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// After the value: only whitespace may follow.
    pub(crate) fn end(&mut self) -> Result<(), SyntaxError> {
        self.ws();
        if self.i < self.b.len() { self.fail("trailing characters") } else { Ok(()) }
    }

    /// The top-level array, at its `[`: writes each kept record to `out`, comma-separated; returns
    /// how many were kept and the sum of their totals.
    pub(crate) fn records(&mut self, out: &mut Vec<u8>) -> Result<(usize, f64), SyntaxError> {
        self.i += 1;
        let mut record = Record { fields: Vec::new() };
        let (mut count, mut sum_total) = (0usize, 0.0f64);
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.end()?;
            return Ok((0, 0.0));
        }
        loop {
            self.ws();
            if self.peek() == Some(b'{') {
                let start = self.i;
                let total = match self.flat_record() {
                    Some(flat) => write_flat_if_active(out, &flat, count > 0),
                    None => {
                        self.i = start;
                        self.record(&mut record)?;
                        write_if_active(out, &record, count > 0)
                    }
                };
                if let Some(total) = total {
                    count += 1;
                    sum_total += total;
                }
            } else {
                self.value(1)?;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.end()?;
                    return Ok((count, sum_total));
                }
                _ => return self.unexpected("expected `,` or `]`"),
            }
        }
    }

    /// A flat record at its `{`, the common case, scanned without collecting its fields: no
    /// whitespace between its tokens, keys without escapes and none repeated (at most
    /// [`FLAT_OTHER_KEYS`] besides the known ones), no `total` or `name_upper` of its own, no arrays or
    /// objects as values. `None` for anything else, valid or not, and the caller scans it again
    /// with [`Scanner::record`], which also reports errors.
    pub(crate) fn flat_record(&mut self) -> Option<Flat<'a>> {
        let b = self.b;
        let start = self.i;
        self.i += 1;
        let mut flat = Flat { text: &[], active: false, price: None, quantity: None, name: None };
        let mut seen = 0u8;
        let mut others: [&[u8]; FLAT_OTHER_KEYS] = [&[]; FLAT_OTHER_KEYS];
        let mut other_count = 0;
        if b.get(self.i) == Some(&b'}') {
            self.i += 1;
            flat.text = &b[start..self.i];
            return Some(flat);
        }
        loop {
            if b.get(self.i) != Some(&b'"') {
                return None;
            }
            let key_start = self.i + 1;
            let (role, key_end) = match known_key(b, key_start) {
                Some((role, len)) => {
                    self.i = key_start + len + 1;
                    (role, key_start + len)
                }
                None => {
                    let (key_end, Kind::String { escaped: false, .. }) = self.string().ok()? else { return None };
                    (role_at(b, key_start, key_end), key_end)
                }
            };
            if b.get(self.i) != Some(&b':') {
                return None;
            }
            self.i += 1;
            let value_start = self.i;
            let kind = self.flat_value()?;
            let value = &b[value_start..self.i];
            match role {
                Role::Other => {
                    let key = &b[key_start..key_end];
                    if other_count == FLAT_OTHER_KEYS || others[..other_count].contains(&key) {
                        return None;
                    }
                    others[other_count] = key;
                    other_count += 1;
                }
                Role::Total | Role::NameUpper => return None,
                role => {
                    let bit = 1u8 << role as u8;
                    if seen & bit != 0 {
                        return None;
                    }
                    seen |= bit;
                    match role {
                        Role::Active => flat.active = kind == Kind::True,
                        Role::Price | Role::Quantity => {
                            let number = (kind == Kind::Number).then_some(NumberText { rest: &b[value_start..], len: value.len() });
                            *(if role == Role::Price { &mut flat.price } else { &mut flat.quantity }) = number;
                        }
                        _ => flat.name = matches!(kind, Kind::String { .. }).then_some((value, kind)),
                    }
                }
            }
            match b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    flat.text = &b[start..self.i];
                    return Some(flat);
                }
                _ => return None,
            }
        }
    }

    /// A record at its `{` (depth 2), scanned into `record`: its fields in order; a repeated key
    /// keeps its first position and takes the last value, like `JSON.parse`.
    pub(crate) fn record(&mut self, record: &mut Record<'a>) -> Result<(), SyntaxError> {
        record.fields.clear();
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.unexpected("expected a string key");
            }
            let key_start = self.i;
            let (content_end, key_kind) = self.string()?;
            let key_escaped = matches!(key_kind, Kind::String { escaped: true, .. });
            let raw_key = &self.b[key_start..self.i];
            let content = &self.b[key_start + 1..content_end];
            let key = if key_escaped { Cow::Owned(unescape(content)) } else { Cow::Borrowed(as_str(content)) };
            self.ws();
            if self.peek() != Some(b':') {
                return self.unexpected("expected `:`");
            }
            self.i += 1;
            self.ws();
            let value_start = self.i;
            let kind = self.value(2)?;
            let role = Role::of(&key);
            let field = Field { key, role, raw_key, key_escaped, value: &self.b[value_start..self.i], kind };
            match record.fields.iter_mut().find(|f| f.role == role && (role != Role::Other || f.key == field.key)) {
                Some(slot) => {
                    slot.value = field.value;
                    slot.kind = field.kind;
                }
                None => record.fields.push(field),
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.unexpected("expected `,` or `}`"),
            }
        }
    }

    /// Any value, whose container (if any) is at `depth`; leaves `i` just past it.
    pub(crate) fn value(&mut self, depth: usize) -> Result<Kind, SyntaxError> {
        match self.peek() {
            Some(b'"') => self.string().map(|(_, kind)| kind),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Kind::Number),
            Some(b't') => self.literal(b"true").map(|()| Kind::True),
            Some(b'f') => self.literal(b"false").map(|()| Kind::Other),
            Some(b'n') => self.literal(b"null").map(|()| Kind::Other),
            Some(open @ (b'[' | b'{')) => {
                if depth + 1 > MAX_DEPTH {
                    return self.fail("nesting too deep");
                }
                self.container(open, depth + 1).map(|()| Kind::Other)
            }
            _ => self.unexpected("expected a value"),
        }
    }

    /// An array or object at its opening bracket, at `depth`.
    pub(crate) fn container(&mut self, open: u8, depth: usize) -> Result<(), SyntaxError> {
        let close = if open == b'[' { b']' } else { b'}' };
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if open == b'{' {
                if self.peek() != Some(b'"') {
                    return self.unexpected("expected a string key");
                }
                self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return self.unexpected("expected `:`");
                }
                self.i += 1;
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.unexpected(if open == b'[' { "expected `,` or `]`" } else { "expected `,` or `}`" }),
            }
        }
    }

    pub(crate) fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.unexpected("expected a value")
        }
    }

    /// A number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    pub(crate) fn number(&mut self) -> Result<(), SyntaxError> {
        if self.skip_number() { Ok(()) } else { self.unexpected("invalid number") }
    }

    /// Skips a number (see [`Scanner::number`]); false, with `i` where it went wrong, if there is
    /// none.
    #[inline]
    pub(crate) fn skip_number(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return false;
            }
            self.digits();
        }
        true
    }

    /// A value of a flat record (no array or object): its kind, or `None` for anything else,
    /// valid or not.
    #[inline]
    pub(crate) fn flat_value(&mut self) -> Option<Kind> {
        let b = self.b;
        match b.get(self.i)? {
            b'"' => self.string().ok().map(|(_, kind)| kind),
            b'-' | b'0'..=b'9' => self.skip_number().then_some(Kind::Number),
            // `true` and `null` as one four-byte word, `false` as `fals` and `e`.
            first @ (b't' | b'n' | b'f') => {
                let w = u32::from_le_bytes(b.get(self.i..self.i + 4)?.try_into().expect("four bytes"));
                let (kind, len) = match first {
                    b't' if w == u32::from_le_bytes(*b"true") => (Kind::True, 4),
                    b'n' if w == u32::from_le_bytes(*b"null") => (Kind::Other, 4),
                    b'f' if w == u32::from_le_bytes(*b"fals") && b.get(self.i + 4) == Some(&b'e') => (Kind::Other, 5),
                    _ => return None,
                };
                self.i += len;
                Some(kind)
            }
            _ => None,
        }
    }

    /// Skips ASCII digits, eight bytes at a time while eight are left.
    pub(crate) fn digits(&mut self) {
        let b = self.b;
        while let Some(w) = word_at(b, self.i) {
            let flags = non_digit_bytes(w);
            if flags != 0 {
                self.i += flags.trailing_zeros() as usize / 8;
                return;
            }
            self.i += 8;
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// A string at its opening quote: checks escapes, control characters and UTF-8; leaves `i` past
    /// the closing quote and returns where that quote is and the string's [`Kind`].
    pub(crate) fn string(&mut self) -> Result<(usize, Kind), SyntaxError> {
        let b = self.b;
        let mut i = self.i + 1;
        let (mut escaped, mut ascii) = (false, true);
        loop {
            // Eight bytes at a time while none is special (`"`, `\`, a control character, non-ASCII).
            while let Some(w) = word_at(b, i) {
                let special = special_bytes(w);
                if special != 0 {
                    i += special.trailing_zeros() as usize / 8;
                    break;
                }
                i += 8;
            }
            match b.get(i) {
                None => {
                    self.i = i;
                    return self.fail("unterminated string");
                }
                Some(b'"') => {
                    self.i = i + 1;
                    return Ok((i, Kind::String { escaped, ascii }));
                }
                Some(b'\\') => {
                    escaped = true;
                    i = escape_end(b, i).map_err(|what| SyntaxError { at: i, what })?;
                }
                Some(0..=0x1f) => {
                    self.i = i;
                    return self.fail("control character in string");
                }
                Some(0x80..) => {
                    ascii = false;
                    i = utf8_end(b, i).ok_or(SyntaxError { at: i, what: "invalid UTF-8" })?;
                }
                Some(_) => i += 1,
            }
        }
    }
}

/// The high bit of each byte of `w` (little-endian) that is `"`, `\`, below 0x20 or above 0x7f. A
/// borrow can also flag a byte above a flagged one, so only the lowest flag is exact: it marks the
/// first special byte.
#[inline]
pub(crate) fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_quote = quote.wrapping_sub(ONES) & !quote;
    let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    (zero_quote | zero_backslash | below_space | w) & HIGH
}

/// The high bit of each byte of `w` (little-endian) that is not an ASCII digit. A carry can also
/// flag a byte above a flagged one, so only the lowest flag is exact: it marks the first non-digit.
#[inline]
pub(crate) fn non_digit_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A digit (0x30..=0x39) has the high nibble 3, and still has it after adding 6. Only a byte of
    // 0xfa or more carries into the next one, and such a byte is flagged by its own high nibble.
    let high = (w & (ONES * 0xf0)) ^ (ONES * 0x30);
    let plus_six = (w.wrapping_add(ONES * 6) & (ONES * 0xf0)) ^ (ONES * 0x30);
    let nonzero = high | plus_six;
    // The high bit of each nonzero byte: (byte & 0x7f) + 0x7f stays within the byte.
    (((nonzero & (ONES * 0x7f)) + ONES * 0x7f) | nonzero) & (ONES * 0x80)
}

/// The end of the escape at `i` (a backslash).
pub(crate) fn escape_end(b: &[u8], i: usize) -> Result<usize, &'static str> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => match b.get(i + 2..i + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(i + 6),
            _ => Err("invalid \\u escape"),
        },
        None => Err("unterminated string"),
        Some(_) => Err("invalid escape"),
    }
}

/// The end of the UTF-8 sequence whose lead byte (at least 0x80) is at `i`, if it is well-formed.
pub(crate) fn utf8_end(b: &[u8], i: usize) -> Option<usize> {
    let (len, lo, hi) = match b[i] {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf3 => (4, 0x80, 0xbf),
        0xf4 => (4, 0x80, 0x8f),
        _ => return None,
    };
    let rest = b.get(i + 1..i + len)?;
    (lo..=hi).contains(&rest[0]).then_some(())?;
    rest[1..].iter().all(|&c| (0x80..=0xbf).contains(&c)).then_some(i + len)
}

/// String contents the scanner validated as UTF-8.
pub(crate) fn as_str(bytes: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: only called on the contents of strings that `Scanner::string` accepted, which checks
    // every non-ASCII sequence with `utf8_end`; their escapes are ASCII.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// The text of a validated string's contents (between the quotes), escapes decoded. A `\u` escape
/// that is a lone surrogate becomes U+FFFD.
pub(crate) fn unescape(content: &[u8]) -> String {
    let text = as_str(content);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let esc = &rest[at + 1..];
        let (c, used) = match esc.as_bytes()[0] {
            b'b' => ('\u{8}', 1),
            b'f' => ('\u{c}', 1),
            b'n' => ('\n', 1),
            b'r' => ('\r', 1),
            b't' => ('\t', 1),
            b'u' => {
                let unit = |s: &str| u32::from_str_radix(s, 16).expect("validated hex");
                let first = unit(&esc[1..5]);
                let low = esc.get(5..11).filter(|s| s.starts_with("\\u")).map(|s| unit(&s[2..]));
                match (first, low) {
                    (0xd800..=0xdbff, Some(low @ 0xdc00..=0xdfff)) => {
                        (char::from_u32(0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00)).expect("a pair"), 11)
                    }
                    _ => (char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER), 5),
                }
            }
            other => (char::from(other), 1), // `"`, `\` and `/` stand for themselves
        };
        out.push(c);
        rest = &esc[used..];
    }
    out.push_str(rest);
    out
}

/// The value of a number field, or 0 when the field is missing or not a number.
pub(crate) fn number_or_zero(field: Option<&Field>) -> f64 {
    field.filter(|f| f.kind == Kind::Number).map_or(0.0, |f| parse_number(f.value))
}

/// A number value as written: its first `len` bytes of `rest`, which runs on to the end of the
/// input so that a short number can be read as one eight-byte word.
#[derive(Clone, Copy)]
pub(crate) struct NumberText<'a> {
    pub(crate) rest: &'a [u8],
    pub(crate) len: usize,
}

impl NumberText<'_> {
    /// The number's value, as [`parse_number`] gives it.
    pub(crate) fn value(self) -> f64 {
        let negative = self.rest[0] == b'-';
        let start = usize::from(negative);
        let short = word_at(self.rest, start).and_then(|w| short_decimal(w, self.len - start));
        match short {
            Some(value) if negative => -value,
            Some(value) => value,
            None => parse_number(&self.rest[..self.len]),
        }
    }
}

/// The value of the lowest `n` bytes of `w` (the first in the lowest byte) when they are at most
/// eight digits with at most one `.` among them; `None` otherwise. The digits without the dot, as
/// an integer, and the power of ten are both exact, so the one rounding of the division is right.
pub(crate) fn short_decimal(w: u64, n: usize) -> Option<f64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const POW10: [f64; 8] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7];
    if n == 0 || n > 8 {
        return None;
    }
    let w = w & (u64::MAX >> (64 - 8 * n));
    // The first `.`, by finding zero bytes of `w ^ "........"`: exact for the lowest one, and the
    // bytes above `n` are zero in `w`, so never a dot.
    let dots = w ^ (ONES * u64::from(b'.'));
    let dot = dots.wrapping_sub(ONES) & !dots & (ONES * 0x80);
    let (digits, count, fraction) = if dot == 0 {
        (w, n, 0)
    } else {
        // Close the gap the dot leaves.
        let at = dot.trailing_zeros() as usize / 8;
        let below = w & !(u64::MAX << (8 * at));
        let above = w.checked_shr(8 * (at as u32 + 1)).unwrap_or(0);
        (below | (above << (8 * at)), n - 1, n - 1 - at)
    };
    if count == 0 {
        return None;
    }
    // Pad with leading `0`s to eight digits; then every byte must be a digit.
    let pad = 8 * (8 - count) as u32;
    let aligned = (digits << pad) | ((ONES * u64::from(b'0')) & !(u64::MAX << pad));
    if non_digit_bytes(aligned) != 0 {
        return None;
    }
    Some(eight_digits(aligned) as f64 / POW10[fraction])
}

/// Eight ASCII digits, the first in the lowest byte, as an integer: pairs, then fours, then all.
pub(crate) fn eight_digits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let w = w - ONES * u64::from(b'0');
    let pairs = w * 10 + (w >> 8);
    let low_pairs = pairs & 0x0000_00ff_0000_00ff;
    let high_pairs = (pairs >> 16) & 0x0000_00ff_0000_00ff;
    (low_pairs.wrapping_mul(100 + (1_000_000 << 32)).wrapping_add(high_pairs.wrapping_mul(1 + (10_000 << 32)))) >> 32
}

/// A JSON number's value, correctly rounded. Up to 15 significant digits without an exponent (prices
/// and quantities) it is the digits as an integer divided by a power of ten: both are exact in an
/// f64, so the one rounding of the division is the right one. Anything else goes to the standard
/// library's parser.
pub(crate) fn parse_number(text: &[u8]) -> f64 {
    const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mut mantissa, mut count, mut fraction, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in digits {
        match c {
            b'0'..=b'9' if count < 15 => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
                fraction += usize::from(dot);
            }
            b'.' => dot = true,
            _ => return as_str(text).parse().unwrap_or(0.0),
        }
    }
    let value = mantissa as f64 / POW10[fraction];
    if negative { -value } else { value }
}
