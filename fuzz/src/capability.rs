//! Capability tokens: parsing never panics, display is canonical, and `covers` is a partial order.

use wasmzip_package::{Capability, resolve};

/// Parses up to three tokens, one per line of `bytes`, and checks each one and each pair and triple:
/// parse → display → parse gives the same value and the same text; a failure names the token and a
/// position inside it (or just past its end); `covers` is reflexive, antisymmetric (two tokens that
/// cover each other are equal) and transitive; resolving never grants more than was requested.
pub fn tokens(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let caps: Vec<Capability> = text.splitn(3, '\n').filter_map(parse_checked).collect();
    for a in &caps {
        assert!(a.covers(a), "`{a}` does not cover itself");
        for b in &caps {
            if a.covers(b) && b.covers(a) {
                assert_eq!(a, b, "`{a}` and `{b}` cover each other but differ");
            }
            for c in &caps {
                if a.covers(b) && b.covers(c) {
                    assert!(a.covers(c), "`{a}` covers `{b}`, which covers `{c}`, but `{a}` does not cover `{c}`");
                }
            }
        }
    }
    if let Some((request, grants)) = caps.split_first() {
        let resolution = resolve(std::slice::from_ref(request), grants);
        assert_eq!(resolution.effective.len() + resolution.uncovered.len(), 1);
        assert!(resolution.effective.iter().chain(&resolution.uncovered).all(|c| c == request));
        assert_eq!(resolution.effective.is_empty(), !grants.iter().any(|g| g.covers(request)));
    }
}

fn parse_checked(token: &str) -> Option<Capability> {
    match token.parse::<Capability>() {
        Ok(cap) => {
            round_trips(&cap);
            Some(cap)
        }
        Err(e) => {
            assert_eq!(e.token, token);
            let end = token.chars().count() + 1;
            assert!((1..=end).contains(&e.position), "position {} outside 1..={end}: {e}", e.position);
            None
        }
    }
}

/// A parsed token displays as text that parses back to the same token and displays the same again.
pub fn round_trips(cap: &Capability) {
    let shown = cap.to_string();
    let again: Capability = match shown.parse() {
        Ok(again) => again,
        Err(e) => panic!("`{cap:?}` displays as `{shown}`, which does not parse: {e}"),
    };
    assert_eq!(&again, cap, "`{shown}` parses to another token");
    assert_eq!(again.to_string(), shown, "display of `{shown}` is not stable");
}
