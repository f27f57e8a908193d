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
//! (lowercase, without `_` and `-`), and a key is reduced to a pattern of
//! lowercase ASCII literals and wildcards that must match a whole skeleton.

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
        self.key.is_ascii() && derived == self.skeleton && self.skeleton.len() <= MAX_LITERALS
    }
}

/// The read key a lenient decoder could take `key` for, when `key` is not
/// exactly one of `read`.
pub(crate) fn lenient_reading(key: &str, read: &[ReadKey]) -> Option<&'static str> {
    if read.iter().any(|r| r.key == key) {
        return None;
    }
    // Fast path, nearly every key: printable ASCII with nothing to drop is
    // its own skeleton up to case, so only same-length read keys can match.
    if key.bytes().all(is_plain) {
        return read
            .iter()
            .find(|r| r.skeleton.len() == key.len() && r.skeleton.eq_ignore_ascii_case(key))
            .map(|r| r.key);
    }
    let pattern = Pattern::of(key)?;
    read.iter()
        .find(|r| pattern.matches(r.skeleton.as_bytes()))
        .map(|r| r.key)
}

/// A byte the fast path keeps as is (up to case).
fn is_plain(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'_' && b != b'-'
}

/// Longest skeleton a pattern is compared with. A key with more literals than
/// this cannot match any (each literal matches one byte of a skeleton).
const MAX_LITERALS: usize = 48;

/// Stands for any run of ASCII, empty included. Never a literal (not ASCII).
const ANY: u8 = 0xFF;

/// A key as lowercase ASCII literals and [`ANY`], runs of [`ANY`] collapsed,
/// so at most `2 * MAX_LITERALS + 1` elements.
struct Pattern {
    elements: [u8; 2 * MAX_LITERALS + 1],
    len: usize,
}

impl Pattern {
    /// `None` when the key has too many literals to match any read key.
    fn of(key: &str) -> Option<Self> {
        let mut pattern = Pattern {
            elements: [0; 2 * MAX_LITERALS + 1],
            len: 0,
        };
        let mut literals = 0;
        for c in key.chars() {
            let element = match c {
                '_' | '-' | ' ' => continue,
                c if c.is_ascii_control() => continue,
                c if c.is_ascii() => c.to_ascii_lowercase() as u8,
                _ => ANY,
            };
            if element == ANY {
                if pattern.last() == Some(ANY) {
                    continue;
                }
            } else {
                literals += 1;
                if literals > MAX_LITERALS {
                    return None;
                }
            }
            pattern.push(element)?;
        }
        Some(pattern)
    }

    fn last(&self) -> Option<u8> {
        self.len
            .checked_sub(1)
            .and_then(|i| self.elements.get(i).copied())
    }

    fn push(&mut self, element: u8) -> Option<()> {
        *self.elements.get_mut(self.len)? = element;
        self.len += 1;
        Some(())
    }

    /// Whether the pattern matches all of `text` (wildcard matching with one
    /// backtrack point: O(len × text) at worst, both bounded).
    fn matches(&self, text: &[u8]) -> bool {
        let pattern = self.elements.get(..self.len).unwrap_or_default();
        let (mut p, mut t) = (0, 0);
        // Where to resume after the last wildcard: (pattern, text) positions.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            match (pattern.get(p), text.get(t)) {
                (Some(&ANY), _) => {
                    p += 1;
                    resume = Some((p, t));
                    continue;
                }
                (Some(a), Some(b)) if a == b => {
                    p += 1;
                    t += 1;
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            match resume {
                Some((rp, rt)) if rt < text.len() => {
                    resume = Some((rp, rt + 1));
                    p = rp;
                    t = rt + 1;
                }
                _ => return false,
            }
        }
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
    fn exact_read_keys_and_unrelated_keys_are_not_ambiguous() {
        for key in [
            "name",
            "_meta",
            "io.x/protocolVersion",
            "arguments",
            "names",
            "nam",
            "progressToken",
            "",
            "x\u{e9}",
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
        for key in ["x\u{17f}", "\u{17f}x", "nam\u{17f}ex", "zz\u{212a}"] {
            assert_eq!(reading(key), None, "{key:?}");
        }
    }

    #[test]
    fn long_and_pathological_keys_stay_cheap() {
        let long_wild = format!("n{}e", "\u{17f} ".repeat(100_000));
        assert_eq!(reading(&long_wild), Some("name"));
        let many_literals = format!("\u{17f}{}", "a".repeat(100_000));
        assert_eq!(reading(&many_literals), None);
        let alternating = "\u{17f}a".repeat(MAX_LITERALS);
        assert_eq!(reading(&alternating), None);
    }
}
