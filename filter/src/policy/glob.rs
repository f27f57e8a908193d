//! Name patterns for policy targets: `*` matches any run of characters
//! (slashes included, so `file:///docs/*` is a prefix match), `?` one
//! character, everything else itself. No character classes: tool names and
//! URIs are matched, not file paths, and a smaller grammar is easier to audit.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
    /// No wildcard: compared for equality.
    literal: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.into(),
            literal: !pattern.contains(['*', '?']),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The one name this matches, when it has no wildcard.
    pub fn literal(&self) -> Option<&str> {
        self.literal.then_some(&*self.pattern)
    }

    /// Whether every name `other` matches, this matches too. Exact for a
    /// literal `other`; otherwise only `*` or the same pattern count (never
    /// a false yes: callers warn on it).
    pub fn covers(&self, other: &Glob) -> bool {
        if other.literal {
            self.matches(&other.pattern)
        } else {
            &*self.pattern == "*" || self.pattern == other.pattern
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.literal {
            return *self.pattern == *text;
        }
        wildcard_match(self.pattern.as_bytes(), text.as_bytes())
    }
}

/// Iterative matcher with single-star backtracking: linear in practice, and
/// never recursive (a hostile name cannot blow the stack).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                // `?` stands for one character, not one byte: skip a whole UTF-8 sequence.
                t += if c == b'?' { utf8_len(text, t) } else { 1 };
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

fn utf8_len(text: &[u8], at: usize) -> usize {
    let mut len = 1;
    while text
        .get(at + len)
        .is_some_and(|b| (b & 0b1100_0000) == 0b1000_0000)
    {
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).matches(t)
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("add", "add"));
        assert!(!m("add", "add2"));
        assert!(!m("add", "ad"));
    }

    #[test]
    fn star_matches_any_run_including_slashes() {
        assert!(m("github__*", "github__create_issue"));
        assert!(m("github__*", "github__"));
        assert!(!m("github__*", "jira__create_issue"));
        assert!(m("file:///docs/*", "file:///docs/a/b.txt"));
        assert!(m("*secret*", "my_secret_tool"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*", ""));
    }

    #[test]
    fn question_mark_is_one_character_even_outside_ascii() {
        assert!(m("t?ol", "tool"));
        assert!(m("t?ol", "t\u{e9}ol"));
        assert!(!m("t?ol", "tl"));
    }

    #[test]
    fn pathological_patterns_finish() {
        let text = "a".repeat(5000);
        assert!(!m("*a*a*a*a*a*b", &text));
    }
}
