use serde_json::{Map, Value};

use super::scan::{NumberText, Role, Scanner, known_key, short_decimal};
use super::write::{push_ascii_uppercase, write_js_number};
use super::{error_body, transform};

fn run(input: &str) -> String {
    String::from_utf8(transform(input.as_bytes()).unwrap().bytes().to_vec()).unwrap()
}

fn error(input: &[u8]) -> String {
    match transform(input) {
        Ok(out) => panic!("accepted {:?}: {}", String::from_utf8_lossy(input), String::from_utf8_lossy(out.bytes())),
        Err(message) => message,
    }
}

#[test]
fn sample() {
    let output = run(
        r#"[{"name":"a","price":2,"quantity":3,"active":true},{"name":"b","price":1,"quantity":1,"active":false}]"#,
    );
    assert_eq!(
        output,
        r#"{"count":1,"sum_total":6,"records":[{"name":"a","price":2,"quantity":3,"active":true,"total":6,"name_upper":"A"}]}"#
    );
}

#[test]
fn missing_and_fractional_numbers() {
    let output = run(
        r#"[{"price":1.5,"active":true},{"price":0.1,"quantity":3,"active":true,"name":7},{"active":"true"},5,{"z":1,"total":9,"active":true,"name":"straße"}]"#,
    );
    assert_eq!(
        output,
        r#"{"count":3,"sum_total":0.30000000000000004,"records":[{"price":1.5,"active":true,"total":0},{"price":0.1,"quantity":3,"active":true,"name":7,"total":0.30000000000000004},{"z":1,"total":0,"active":true,"name":"straße","name_upper":"STRASSE"}]}"#
    );
}

#[test]
fn empty_array_and_whitespace() {
    assert_eq!(run("[]"), r#"{"count":0,"sum_total":0,"records":[]}"#);
    assert_eq!(run(" \t\r\n[ ]\n"), r#"{"count":0,"sum_total":0,"records":[]}"#);
    assert_eq!(
        run("[ { \"active\" : true , \"name\" : \"x\" } ]"),
        r#"{"count":1,"sum_total":0,"records":[{"active":true,"name":"x","total":0,"name_upper":"X"}]}"#
    );
}

#[test]
fn repeated_keys_and_existing_computed_fields() {
    // The last value wins, at the first position; `name_upper` already present is updated in place,
    // `total` appended after it.
    assert_eq!(
        run(r#"[{"active":false,"name_upper":1,"name":"q","active":true,"price":2,"price":4,"quantity":0.5}]"#),
        r#"{"count":1,"sum_total":2,"records":[{"active":true,"name_upper":"Q","name":"q","price":4,"quantity":0.5,"total":2}]}"#
    );
    assert_eq!(run(r#"[1, "x", [2], null, {"active":true,"active":false}]"#), r#"{"count":0,"sum_total":0,"records":[]}"#);
}

#[test]
fn escaped_keys_and_names() {
    // `na\u006de` is `name`; keys are written back the way JSON.stringify writes them, values as they
    // came.
    assert_eq!(
        run(r#"[{"na\u006de":"a\"b\u00e9\ud83d\ude00\n","\/k":1,"active":true}]"#),
        "{\"count\":1,\"sum_total\":0,\"records\":[{\"name\":\"a\\\"b\\u00e9\\ud83d\\ude00\\n\",\"/k\":1,\"active\":true,\"total\":0,\"name_upper\":\"A\\\"B\u{c9}\u{1f600}\\n\"}]}"
    );
}

#[test]
fn nested_values_are_copied() {
    assert_eq!(
        run(r#"[{"active":true,"tags":["x",{"y":[1,2.5e3,null]}],"o":{}}]"#),
        r#"{"count":1,"sum_total":0,"records":[{"active":true,"tags":["x",{"y":[1,2.5e3,null]}],"o":{},"total":0}]}"#
    );
}

#[test]
fn errors_name_the_line_and_column() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "unexpected end of input at line 1 column 1"),
        (b"[{", "unexpected end of input at line 1 column 3"),
        (b"[1,\n 2,\n x]", "expected a value at line 3 column 2"),
        (b"[01]", "expected `,` or `]` at line 1 column 3"),
        (b"[1.]", "invalid number at line 1 column 4"),
        (b"[\"a\x01\"]", "control character in string at line 1 column 4"),
        (b"[\"\\x\"]", "invalid escape at line 1 column 3"),
        (b"[\"\xff\"]", "invalid UTF-8 at line 1 column 3"),
        (b"[\"\xed\xa0\x80\"]", "invalid UTF-8 at line 1 column 3"),
        (b"[] x", "trailing characters at line 1 column 4"),
        (b"{\"a\":}", "expected a value at line 1 column 6"),
    ];
    for (input, message) in cases {
        assert_eq!(error(input), format!("invalid JSON: {message}"), "{:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(error(b"{\"a\":1}"), "expected a JSON array of records");
    let deep = format!("[{}{}]", "[".repeat(126), "]".repeat(126));
    assert!(transform(deep.as_bytes()).is_ok());
    let deeper = format!("[{}{}]", "[".repeat(127), "]".repeat(127));
    assert_eq!(error(deeper.as_bytes()), "invalid JSON: nesting too deep at line 1 column 128");
}

#[test]
fn ascii_uppercase_matches_the_standard_library() {
    let all: Vec<u8> = (0..0x80u8).chain(0..0x80).chain(b"abc".iter().copied()).collect();
    for start in 0..all.len() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 27] {
            let Some(bytes) = all.get(start..start + len) else { continue };
            let mut ours = b"prefix".to_vec();
            push_ascii_uppercase(&mut ours, bytes);
            assert_eq!(ours[6..], bytes.to_ascii_uppercase(), "{start} {len}");
            assert_eq!(ours[..6], *b"prefix");
        }
    }
}

#[test]
fn short_numbers_are_read_a_word_at_a_time_exactly() {
    let cases = [
        "0", "7", "12345678", "99999999", "1.5", "326.06", "0.05", "1234567.8", "0.000001", "19", "-19", "-0.5", "100.00",
        "1e5", "1.5e2", "123456789", "1234567.89", "-12345678", "0.1234567",
    ];
    for text in cases {
        let mut padded = text.as_bytes().to_vec();
        padded.extend_from_slice(b",\"x\":1}]");
        let number = NumberText { rest: &padded, len: text.len() };
        assert_eq!(number.value().to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
    }
    // Every value with up to seven digits and two decimals, at the end of the input too.
    for n in (0..10_000_000u64).step_by(997) {
        let text = format!("{}.{:02}", n / 100, n % 100);
        let number = NumberText { rest: text.as_bytes(), len: text.len() };
        assert_eq!(number.value().to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
        let mut padded = text.clone().into_bytes();
        padded.extend_from_slice(b"}]");
        let number = NumberText { rest: &padded, len: text.len() };
        assert_eq!(number.value().to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
    }
    assert_eq!(short_decimal(u64::from_le_bytes(*b"12.4e567"), 8), None);
}

#[test]
fn digits_stop_at_the_first_byte_that_is_not_one() {
    for stop in 0..=255u8 {
        for at in 0..12 {
            let mut text = b"12345678901"[..at].to_vec();
            text.push(stop);
            text.extend_from_slice(b"9876543210");
            let mut scan = Scanner { b: &text, i: 0 };
            scan.digits();
            let expected = if stop.is_ascii_digit() { text.len() } else { at };
            assert_eq!(scan.i, expected, "{:?}", String::from_utf8_lossy(&text));
        }
    }
}

#[test]
fn known_keys_are_recognised_only_when_closed() {
    type Case<'a> = (&'a [u8], Option<(Role, usize)>);
    let cases: &[Case] = &[
        (b"\"name\":\"x\"}", Some((Role::Name, 4))),
        (b"\"price\":1}", Some((Role::Price, 5))),
        (b"\"active\":true}", Some((Role::Active, 6))),
        (b"\"quantity\":1}", Some((Role::Quantity, 8))),
        (b"\"names\":1}", None),
        (b"\"quantity2\":1}", None),
        (b"\"nam\\u0065\":1}", None),
        (b"\"name\"", None),
    ];
    for &(text, expected) in cases {
        assert!(known_key(text, 1) == expected, "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn error_body_escapes_the_message() {
    assert_eq!(error_body("a \"b\"\n"), b"{\"error\":\"a \\\"b\\\"\\n\"}".to_vec());
}

#[test]
fn numbers_are_written_like_javascript() {
    // Expected strings from Node 20: `JSON.stringify(x)`.
    let cases: &[(f64, &str)] = &[
        (6.0, "6"),
        (-6.0, "-6"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (2f64.powi(60), "1152921504606847000"),
        (2f64.powi(53), "9007199254740992"),
        (2f64.powi(53) + 2.0, "9007199254740994"),
        (-(2f64.powi(60)), "-1152921504606847000"),
        (1e-7, "1e-7"),
        (-1e-7, "-1e-7"),
        (1.5e-6, "0.0000015"),
        (0.000001, "0.000001"),
        (123.45, "123.45"),
        (-0.5, "-0.5"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.0 / 3.0, "0.3333333333333333"),
        (2.5e25, "2.5e+25"),
        (1234.5678e10, "12345678000000"),
        (1e-5, "0.00001"),
        (9.99e-6, "0.00000999"),
        (4503599627370495.5, "4503599627370495.5"),
        (9007199254740991.5, "9007199254740992"),
        (0.1 + 0.7, "0.7999999999999999"),
        (-326.06 * 19.0, "-6195.14"),
        (123456.789e-3, "123.456789"),
        (1125899906.5, "1125899906.5"),
        (1125899905.25, "1125899905.25"),
        (0.1 + 0.2 - 0.3, "5.551115123125783e-17"),
        (-0.000123, "-0.000123"),
        (1234.000001, "1234.000001"),
        (7.100000000000001, "7.100000000000001"),
        (f64::NAN, "null"),
        (f64::INFINITY, "null"),
    ];
    for &(x, expected) in cases {
        let mut out = Vec::new();
        write_js_number(&mut out, x);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{x:e}");
    }
}

/// ECMAScript's `Number::toString` laid out from ryu's shortest digits, with none of
/// `write_js_number`'s shortcuts. (The standard library's `{:e}` would be independent of ryu, but it
/// breaks ties between two shortest decimals upwards where ECMAScript, ryu and Node take the even one:
/// 2093585096037636.25 is `…636.2`.)
fn js_reference(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x.abs());
    let (mantissa, exponent) = text.split_once('e').map_or((text, 0), |(m, e)| (m, e.parse::<i32>().unwrap()));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{whole}{fraction}");
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    let leading = (all.len() - all.trim_start_matches('0').len()) as i32;
    let (k, n) = (digits.len() as i32, whole.len() as i32 - leading + exponent);
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let rest = if k > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        format!("{}{rest}e{}{}", &digits[..1], if n > 0 { '+' } else { '-' }, (n - 1).abs())
    };
    if x < 0.0 { format!("-{body}") } else { body }
}

#[test]
fn numbers_agree_with_a_plain_reference() {
    let mut g = Gen(0x2545_f491_4f6c_dd1d, false);
    for i in 0..300_000u64 {
        let x = match i % 3 {
            // Totals as the transform computes them: a price with up to two decimals times a count.
            0 => (g.below(10_000_000) as f64 / 100.0) * g.below(1000) as f64,
            1 => g.below(1 << 40) as f64 / [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7][g.below(8) as usize],
            // Any finite double.
            _ => f64::from_bits(g.next()),
        };
        let x = if g.below(2) == 0 { -x } else { x };
        let mut out = Vec::new();
        write_js_number(&mut out, x);
        assert_eq!(String::from_utf8(out).unwrap(), js_reference(x), "{x:e}");
    }
}

/// The same transform built on `serde_json::Value` (insertion-ordered maps): the reference for
/// inputs whose values are written the way serde_json writes them back.
fn reference(input: &str) -> String {
    let Value::Array(elements) = serde_json::from_str::<Value>(input).unwrap() else { panic!("not an array") };
    let num = |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let (mut records, mut sum_total) = (Vec::new(), 0.0);
    for element in elements {
        let Value::Object(mut record) = element else { continue };
        if record.get("active") != Some(&Value::Bool(true)) {
            continue;
        }
        let total = num(&record, "price") * num(&record, "quantity");
        sum_total += total;
        let mut text = Vec::new();
        write_js_number(&mut text, total);
        record.insert("total".into(), serde_json::from_slice(&text).unwrap_or(Value::Null));
        if let Some(Value::String(name)) = record.get("name") {
            let upper = name.to_uppercase();
            record.insert("name_upper".into(), Value::String(upper));
        }
        records.push(record);
    }
    let mut sum = Vec::new();
    write_js_number(&mut sum, sum_total);
    let mut body = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // `total` is written as computed (serde_json would write 6 as 6.0 once it is an f64).
        body.push(b'{');
        for (j, (key, value)) in record.iter().enumerate() {
            if j > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, key).unwrap();
            body.push(b':');
            if key == "total" {
                let total = num(record, "price") * num(record, "quantity");
                write_js_number(&mut body, total);
            } else {
                serde_json::to_writer(&mut body, value).unwrap();
            }
        }
        body.push(b'}');
    }
    format!(
        "{{\"count\":{},\"sum_total\":{},\"records\":[{}]}}",
        records.len(),
        String::from_utf8(sum).unwrap(),
        String::from_utf8(body).unwrap()
    )
}

/// A small deterministic generator (xorshift64*); a compact document has no whitespace, so most of
/// its records take the flat path.
struct Gen(u64, bool);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn ws(&mut self, out: &mut String) {
        if !self.1 && self.below(4) == 0 {
            out.push_str(self.pick(&[" ", "\n", "\t ", "\r\n  "]));
        }
    }
    /// A string value written as serde_json writes it back.
    fn string(&mut self, out: &mut String) {
        out.push('"');
        for _ in 0..self.below(12) {
            out.push_str(self.pick(&["a", "Z", "widget", " ", "ß", "é", "ﬁ", "😀", "\\\"", "\\\\", "\\n", "\\t", "\\u001f", "-", "7"]));
        }
        out.push('"');
    }
    fn number(&mut self, out: &mut String) {
        let n = self.next();
        match self.below(4) {
            0 => out.push_str(&(n % 100).to_string()),
            1 => out.push_str(&format!("-{}", n % 1000 + 1)),
            2 => {
                let mut text = format!("{}.{:02}", n % 1000, n / 1000 % 100);
                while text.ends_with('0') {
                    text.pop();
                }
                if text.ends_with('.') {
                    text.push('5');
                }
                out.push_str(&text);
            }
            _ => out.push_str(&format!("{}", (n % 10_000) as f64 / 8.0)),
        }
    }
    fn value(&mut self, out: &mut String, depth: u32) {
        match self.below(if depth > 3 { 5 } else { 7 }) {
            0 => self.string(out),
            1 | 2 => self.number(out),
            3 => out.push_str(self.pick(&["true", "false"])),
            4 => out.push_str("null"),
            5 => {
                out.push('[');
                for i in 0..self.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(out, depth + 1);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..self.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    // Distinct keys: the reference's maps would merge repeated ones.
                    out.push_str(&format!("\"{}{i}\"", self.pick(&["k", "é", "w\\\"", "\\n"])));
                    out.push(':');
                    self.value(out, depth + 1);
                }
                out.push('}');
            }
        }
    }
    fn record(&mut self, out: &mut String) {
        out.push('{');
        for i in 0..self.below(7) {
            if i > 0 {
                out.push(',');
            }
            self.ws(out);
            let key = self.pick(&[
                "\"name\"", "\"price\"", "\"quantity\"", "\"active\"", "\"total\"", "\"name_upper\"", "\"na\\u006de\"",
                "\"\\/x\"", "\"k\\\"ey\"", "\"ключ\"", "\"\"", "\"acti\\u0076e\"",
            ]);
            out.push_str(key);
            self.ws(out);
            out.push(':');
            self.ws(out);
            match key {
                "\"active\"" | "\"acti\\u0076e\"" => out.push_str(self.pick(&["true", "true", "false", "\"true\"", "1", "null"])),
                "\"name\"" | "\"na\\u006de\"" if self.below(4) > 0 => self.string(out),
                "\"price\"" | "\"quantity\"" if self.below(4) > 0 => self.number(out),
                _ => self.value(out, 2),
            }
            self.ws(out);
        }
        out.push('}');
    }
    fn document(&mut self) -> String {
        self.1 = self.below(2) == 0;
        let mut out = String::new();
        self.ws(&mut out);
        out.push('[');
        for i in 0..self.below(8) {
            if i > 0 {
                out.push(',');
            }
            self.ws(&mut out);
            if self.below(5) == 0 { self.value(&mut out, 1) } else { self.record(&mut out) }
            self.ws(&mut out);
        }
        out.push(']');
        self.ws(&mut out);
        out
    }
}

#[test]
fn agrees_with_a_serde_json_reference() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15, false);
    for _ in 0..20_000 {
        let doc = g.document();
        assert_eq!(run(&doc), reference(&doc), "input: {doc}");
    }
}

#[test]
fn accepts_exactly_what_serde_json_accepts() {
    // Damaged documents: cut short, or one byte replaced. Each is accepted exactly when it is UTF-8
    // that serde_json parses as an array.
    let mut g = Gen(0x0123_4567_89ab_cdef, false);
    let bytes: &[u8] = b"{}[],:\"\\ x0-.eE+u\x01\x7f\x80\xc3\xff9tfn";
    for _ in 0..20_000 {
        let mut doc = g.document().into_bytes();
        if g.below(3) == 0 {
            doc.truncate(g.below(doc.len() as u64 + 1) as usize);
        } else {
            let at = g.below(doc.len() as u64) as usize;
            doc[at] = bytes[g.below(bytes.len() as u64) as usize];
        }
        let valid = std::str::from_utf8(&doc).is_ok() && serde_json::from_slice::<serde::de::IgnoredAny>(&doc).is_ok();
        let array = doc.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[');
        match transform(&doc) {
            Ok(_) => assert!(valid && array, "accepted {:?}", String::from_utf8_lossy(&doc)),
            Err(message) if valid => {
                assert!(!array && message == "expected a JSON array of records", "{message}: {:?}", String::from_utf8_lossy(&doc))
            }
            Err(message) => assert!(message.starts_with("invalid JSON: "), "{message}"),
        }
    }
}
