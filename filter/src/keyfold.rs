//! Which object keys a lenient JSON decoder could take for a key the filter
//! reads, although the two are not the same bytes.
//!
//! Owns one question, asked of every key the filter does not read in an
//! object whose keys it does read: "could some server's decoder read this key
//! as one of those?". If so the filter and the server would judge different
//! requests, and the caller refuses the message. This module knows nothing of
//! JSON-RPC, allocates nothing, and must never say "no" for a key a real
//! decoder maps onto a read key: when unsure, it says "yes".
//!
//! What decoders do, and so what a key is reduced to before comparing:
//! - ASCII letters are compared without case: Go's `encoding/json` matches a
//!   key to a struct field case-insensitively (CVE-2026-27896 in the Go MCP
//!   SDK), as do .NET `PropertyNameCaseInsensitive`, Jackson's
//!   `ACCEPT_CASE_INSENSITIVE_PROPERTIES`, jsoniter and go-json.
//! - `_` and `-` are dropped: `encoding/json/v2` with `case:ignore` or
//!   `MatchCaseInsensitiveNames` ignores them (`json_rpc`, `meta` for `_meta`).
//! - ASCII control characters and spaces are dropped, wherever they are: a
//!   Go MCP SDK parser took a key with a trailing `\u0000` for the key itself
//!   (GHSA-q382-vc8q-7jhj), and a decoder that trims or strips controls is a
//!   special case of dropping them anywhere.
//! - Any other character outside ASCII may stand for any ASCII text, none
//!   included. No table of the characters that fold onto ASCII is kept, on
//!   purpose: the set is open-ended and depends on the decoder and its
//!   Unicode version. Simple case folding alone has four (`ſ` U+017F → s,
//!   the Kelvin sign U+212A → k, and, in Go's `ToUpper(ToLower(r))` and
//!   Java's `equalsIgnoreCase`, `İ` U+0130 and `ı` U+0131 → i); full folding
//!   adds `ß`/`ẞ` → ss and the ligatures `ﬀ`…`ﬆ`; NFKC and width-insensitive
//!   collation (ICU, .NET culture comparisons) map over a thousand more
//!   (fullwidth `ｎ`, mathematical `𝐧`, circled `ⓝ`, Roman numerals); and
//!   zero-width, BOM, bidi, C1 and other format characters, NBSP and
//!   combining marks are ignored by some comparisons. A wildcard covers them
//!   all, needs no Unicode data in the wasm, and costs only the keys that
//!   contain such characters: the protocol defines none in the objects the
//!   filter reads (MCP restricts `_meta` key names to ASCII).
//!
//! The keys the filter reads are ASCII, so each is kept with its "skeleton"
//! (lowercase, without `_` and `-`). An ASCII key is ambiguous when its
//! literals (lowercased, without what decoders drop) are a skeleton; a key
//! with any other character, when its literals appear in a skeleton in order.

/// A key the filter reads, with the form every lenient spelling reduces to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadKey {
    pub(crate) key: &'static str,
    /// `key` in ASCII lowercase, without `_` and `-`.
    skeleton: &'static str,
}

impl ReadKey {
    pub(crate) const fn new(key: &'static str, skeleton: &'static str) -> Self {
        Self { key, skeleton }
    }

    /// Whether `skeleton` is what the documentation says it is (tests check
    /// every list of read keys with it).
    #[cfg(test)]
    pub(crate) fn is_consistent(&self) -> bool {
        let derived: String = self
            .key
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        self.key.is_ascii() && derived == self.skeleton
    }
}

/// The read key a lenient decoder could take `key` for. `key` must not be
/// exactly one of `read` (the caller has matched those): a read key spells
/// its own skeleton.
pub(crate) fn lenient_reading(key: &str, read: &[ReadKey]) -> Option<&'static str> {
    // The common key, ASCII letters and digits only, spells exactly itself:
    // of another length than every skeleton, it can be none of them.
    if key.bytes().all(|b| b.is_ascii_alphanumeric())
        && read.iter().all(|r| r.skeleton.len() != key.len())
    {
        return None;
    }
    let wild = !key.is_ascii();
    read.iter()
        .find(|r| could_spell(key, r.skeleton.as_bytes(), wild))
        .map(|r| r.key)
}

/// Whether the literals of `key` spell `skeleton`: exactly when `key` is
/// ASCII; when it is not (`wild`), in order with anything between them, a
/// slight over-approximation of "each other character stands for any text"
/// that needs no backtracking. One pass over each, no allocation.
fn could_spell(key: &str, skeleton: &[u8], wild: bool) -> bool {
    let mut rest = skeleton.iter();
    for b in key.bytes().filter_map(literal) {
        let found = if wild {
            rest.any(|&s| s == b)
        } else {
            rest.next() == Some(&b)
        };
        if !found {
            return false;
        }
    }
    wild || rest.next().is_none()
}

/// What a byte of a key is compared as: an ASCII letter without case, other
/// printable ASCII as is; nothing for what decoders drop (`_`, `-`, space,
/// controls) and for the bytes of characters outside ASCII (the wildcard).
fn literal(b: u8) -> Option<u8> {
    match b {
        b'_' | b'-' | b' ' => None,
        b if b.is_ascii_graphic() => Some(b.to_ascii_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &[ReadKey] = &[
        ReadKey::new("name", "name"),
        ReadKey::new("_meta", "meta"),
        ReadKey::new("token", "token"),
        ReadKey::new("io.x/protocolVersion", "io.x/protocolversion"),
    ];

    fn reading(key: &str) -> Option<&'static str> {
        lenient_reading(key, READ)
    }

    #[test]
    fn test_read_keys_are_consistent() {
        assert!(READ.iter().all(ReadKey::is_consistent));
        assert!(!ReadKey::new("_Meta", "_meta").is_consistent());
    }

    #[test]
    fn a_read_key_spells_its_own_skeleton() {
        for r in READ {
            assert_eq!(reading(r.key), Some(r.key), "callers match read keys first");
        }
    }

    #[test]
    fn unrelated_keys_are_not_ambiguous() {
        for key in [
            "arguments",
            "names",
            "nam",
            "progressToken",
            "",
            "q\u{e9}",
            "arguments\u{2713}",
            &"n".repeat(10_000),
        ] {
            assert_eq!(reading(key), None, "{key:?}");
        }
    }

    #[test]
    fn case_spellings_are_ambiguous() {
        for key in [
            "Name",
            "NAME",
            "nAmE",
            "_META",
            "_Meta",
            "IO.X/PROTOCOLVERSION",
        ] {
            assert!(reading(key).is_some(), "{key:?}");
        }
        assert_eq!(reading("NAME"), Some("name"));
        assert_eq!(reading("TOKEN"), Some("token"));
    }

    #[test]
    fn dropped_characters_are_ambiguous() {
        for key in [
            "name\0",
            "nam\0e",
            "\0name",
            "name ",
            " name",
            "na\tme",
            "name\u{7f}",
            "meta",
            "-meta",
            "__meta",
            "na_me",
            "io.x/protocol-version",
            "io.x/protocol_version",
        ] {
            assert!(reading(key).is_some(), "{key:?}");
        }
    }

    #[test]
    fn characters_outside_ascii_may_stand_for_any_letters() {
        for key in [
            "na\u{17f}e",                       // not a fold of `m`, still refused: a wildcard
            "\u{17f}ame",                       // ſ
            "to\u{212a}en",                     // Kelvin sign for k
            "\u{212a}",                         // one wildcard can be a whole key
            "n\u{131}ame",                      // ı standing for nothing
            "\u{130}o.x/protocolVersion",       // İ
            "name\u{200b}",                     // zero-width space
            "\u{feff}name",                     // BOM
            "na\u{ad}me",                       // soft hyphen
            "name\u{85}",                       // C1 control
            "n\u{a0}ame",                       // NBSP
            "n\u{308}ame",                      // combining diaeresis
            "\u{ff4e}\u{ff41}\u{ff4d}\u{ff45}", // fullwidth
            "\u{1d427}ame",                     // mathematical bold n
            "\u{24dd}ame",                      // circled n
            "io.x/proto\u{fb01}colVersion",     // stray ligature
            "to\u{212a}\u{212a}\u{212a}en",
        ] {
            assert!(reading(key).is_some(), "{key:?}");
        }
    }

    #[test]
    fn a_wildcard_cannot_cover_literals_the_skeleton_lacks() {
        for key in [
            "q\u{17f}",
            "\u{17f}q",
            "nam\u{17f}eq",
            "zz\u{212a}",
            "eman\u{17f}",
        ] {
            assert_eq!(reading(key), None, "{key:?}");
        }
    }

    #[test]
    fn long_and_pathological_keys_are_judged() {
        let long_wild = format!("n{}e", "\u{17f} ".repeat(100_000));
        assert_eq!(reading(&long_wild), Some("name"));
        let long_dropped = format!("n{}ame", "\0".repeat(100_000));
        assert_eq!(reading(&long_dropped), Some("name"));
        let many_literals = format!("\u{17f}{}", "a".repeat(100_000));
        assert_eq!(reading(&many_literals), None);
        assert_eq!(reading(&"NAME".repeat(100_000)), None);
    }
}
