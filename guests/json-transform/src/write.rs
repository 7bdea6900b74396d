//! Writing the response: kept records, computed numbers as ECMAScript writes them, strings as
//! `JSON.stringify` escapes them.

use std::borrow::Cow;

use crate::scan::{Flat, Kind, NumberText, Record, Role, as_str, number_or_zero, unescape, word_at};

/// Writes `s` as a JSON string the way `JSON.stringify` does.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[from..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
                from = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escape);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// Writes a flat record (after a comma when `comma`) if it is active: as it came, with `total` and
/// `name_upper` appended; returns its total.
pub(crate) fn write_flat_if_active(out: &mut Vec<u8>, flat: &Flat, comma: bool) -> Option<f64> {
    if !flat.active {
        return None;
    }
    let total = flat.price.map_or(0.0, NumberText::value) * flat.quantity.map_or(0.0, NumberText::value);
    if comma {
        out.push(b',');
    }
    // Up to its closing brace; it has fields (`active` at least).
    out.extend_from_slice(&flat.text[..flat.text.len() - 1]);
    out.extend_from_slice(b",\"total\":");
    write_js_number(out, total);
    if let Some((name, kind)) = flat.name {
        out.extend_from_slice(b",\"name_upper\":");
        write_upper(out, name, kind);
    }
    out.push(b'}');
    Some(total)
}

/// Writes the record (after a comma when `comma`) if its `active` field is `true`, with `total` and
/// `name_upper` set; returns its total.
pub(crate) fn write_if_active(out: &mut Vec<u8>, record: &Record, comma: bool) -> Option<f64> {
    record.get(Role::Active).filter(|f| f.kind == Kind::True)?;
    let total = number_or_zero(record.get(Role::Price)) * number_or_zero(record.get(Role::Quantity));
    let name = record.get(Role::Name).filter(|f| matches!(f.kind, Kind::String { .. }));

    if comma {
        out.push(b',');
    }
    out.push(b'{');
    let (mut wrote_total, mut wrote_upper) = (false, false);
    for (j, field) in record.fields.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        if field.key_escaped {
            write_json_string(out, &field.key);
        } else {
            out.extend_from_slice(field.raw_key);
        }
        out.push(b':');
        match (field.role, name) {
            (Role::Total, _) => {
                write_js_number(out, total);
                wrote_total = true;
            }
            (Role::NameUpper, Some(name)) => {
                write_upper(out, name.value, name.kind);
                wrote_upper = true;
            }
            _ => out.extend_from_slice(field.value),
        }
    }
    if !wrote_total {
        out.extend_from_slice(b",\"total\":");
        write_js_number(out, total);
    }
    if let Some(name) = name
        && !wrote_upper
    {
        out.extend_from_slice(b",\"name_upper\":");
        write_upper(out, name.value, name.kind);
    }
    out.push(b'}');
    Some(total)
}

/// Writes a string value (as written, quotes included) upper-cased: full Unicode case mapping, like
/// `toUpperCase`.
pub(crate) fn write_upper(out: &mut Vec<u8>, value: &[u8], kind: Kind) {
    match kind {
        Kind::String { escaped: false, ascii: true } => {
            // Upper-casing ASCII adds nothing that needs escaping.
            push_ascii_uppercase(out, value);
        }
        Kind::String { escaped, .. } => {
            let content = &value[1..value.len() - 1];
            let text: Cow<str> = if escaped { Cow::Owned(unescape(content)) } else { Cow::Borrowed(as_str(content)) };
            write_json_string(out, &text.to_uppercase());
        }
        _ => unreachable!("only string values are upper-cased"),
    }
}

/// Appends `bytes` (all ASCII) upper-cased, eight at a time: the last eight again, overlapping,
/// when the length is not a multiple of eight.
pub(crate) fn push_ascii_uppercase(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    if n < 8 {
        let start = out.len();
        out.extend_from_slice(bytes);
        out[start..].make_ascii_uppercase();
        return;
    }
    let start = out.len();
    out.reserve(n);
    let upper = |at: usize| ascii_uppercase_word(word_at(bytes, at).expect("eight bytes")).to_le_bytes();
    for at in (0..n - 7).step_by(8) {
        out.extend_from_slice(&upper(at));
    }
    if !n.is_multiple_of(8) {
        out.truncate(start + n - 8);
        out.extend_from_slice(&upper(n - 8));
    }
}

/// Upper-cases the eight ASCII bytes of `w`.
fn ascii_uppercase_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // High bit of each byte in `a..=z` (all bytes are below 0x80).
    let at_least_a = w + ONES * u64::from(0x80 - b'a');
    let above_z = w + ONES * u64::from(0x80 - b'z' - 1);
    let lower = at_least_a & !above_z & (ONES * 0x80);
    w - (lower >> 2)
}

/// Writes an f64 as `JSON.stringify` does: ECMAScript's `Number::toString` (shortest digits that
/// round-trip; plain notation from 1e-7 up to 1e21, exponent notation with a sign beyond), `null`
/// for NaN and the infinities, `0` for -0.
pub(crate) fn write_js_number(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if x == 0.0 {
        out.push(b'0');
        return;
    }
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        write_integer(out, x as i64);
        return;
    }
    if write_short_decimal(out, x) {
        return;
    }
    if (1e-5..9_007_199_254_740_992.0).contains(&x.abs()) {
        // Not an integer (those were written above), and large enough that ryu writes plain
        // decimal notation: its text is then exactly ECMAScript's (shortest, closest digits).
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
        return;
    }
    // The shortest round-trip digits from ryu, whatever notation it chose: DIGITS × 10^(n − k).
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x.abs());
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu writes an integer exponent")),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let lead = all.iter().take_while(|&&d| d == b'0').count();
    let digits = without_trailing_zeros(&all[lead..]);
    let k = digits.len() as i32;
    let n = int_part.len() as i32 - lead as i32 + exp;

    if x < 0.0 {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n) as usize));
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n > 0 { b'+' } else { b'-' });
        out.extend_from_slice((n - 1).abs().to_string().as_bytes());
    }
}

/// Writes `x`, not an integer, with the fewest fraction digits (1 to 6) whose decimal reads back as
/// `x`, if there is such a decimal and `|x|` is below 2^50 / 10^6; returns false otherwise. Below that
/// bound an f64's spacing is under 10^-6 / 4, so at most one six-digit decimal reads back as `x`: the
/// shortest decimal is that one without its trailing zeros, and `x * 10^6` rounds to its digits
/// (the product is off by at most 1/8, the decimal by less than 1/8 more). That decimal is then
/// ECMAScript's shortest, closest one, and plain notation is what `Number::toString` uses from 1e-6
/// to 1e21. One division checks it, instead of one per number of digits.
pub(crate) fn write_short_decimal(out: &mut Vec<u8>, x: f64) -> bool {
    const MILLION: f64 = 1e6;
    const LIMIT: f64 = 1_125_899_906_842_624.0 / MILLION;
    let magnitude = x.abs();
    if magnitude >= LIMIT {
        return false;
    }
    let scaled = (magnitude * MILLION).round_ties_even();
    if scaled / MILLION != magnitude {
        return false;
    }
    let scaled = scaled as u64;
    let (whole, micros) = (scaled / 1_000_000, (scaled % 1_000_000) as u32);
    // `x` is not an integer, so `micros` is not 0; drop its trailing zeros.
    let (fraction, digits) = match micros {
        m if m % 100_000 == 0 => (m / 100_000, 1),
        m if m % 10_000 == 0 => (m / 10_000, 2),
        m if m % 1_000 == 0 => (m / 1_000, 3),
        m if m % 100 == 0 => (m / 100, 4),
        m if m % 10 == 0 => (m / 10, 5),
        m => (m, 6),
    };
    if x < 0.0 {
        out.push(b'-');
    }
    write_integer(out, whole as i64);
    out.push(b'.');
    // The fraction's digits, zero-padded on the left.
    let mut fraction = fraction;
    let mut text = [b'0'; 6];
    for d in text[..digits].iter_mut().rev() {
        *d = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.extend_from_slice(&text[..digits]);
    true
}

/// Writes an integer in decimal (with 32-bit arithmetic while it fits, which wasm does without a
/// division instruction).
pub(crate) fn write_integer(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    while rest > u64::from(u32::MAX) {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut rest = rest as u32;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

pub(crate) fn without_trailing_zeros(digits: &[u8]) -> &[u8] {
    let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1);
    &digits[..end]
}
