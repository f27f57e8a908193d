//! Stat names made once per worker: a sample's name (its base and label
//! segments, as `stat_name` builds it) is looked up by its parts, so a
//! request whose series was seen before allocates nothing for it.
//!
//! Owns: the cache and its bound. Must not: decide a label value (the
//! callers bound them) or change a name (a hit is the name `stat_name`
//! would build, compared part by part).

use super::stat_name;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// At most this many names are kept; past it a name is built per sample
/// (correct, only slower). Label values are bounded, so a worker's series
/// stay well under it.
const MAX_NAMES: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct StatNames {
    by_hash: HashMap<u64, Vec<Rc<str>>, BuildHasherDefault<Fx>>,
    len: usize,
}

impl StatNames {
    /// The name `stat_name(base, labels)` builds, shared.
    pub fn get(&mut self, base: &str, labels: &[(&str, &str)]) -> Rc<str> {
        let hash = hash_of(base, labels);
        if let Some(name) = self
            .by_hash
            .get(&hash)
            .and_then(|names| names.iter().find(|n| is_named(n, base, labels)))
        {
            return name.clone();
        }
        let name: Rc<str> = stat_name(base, labels).into();
        if self.len < MAX_NAMES {
            self.by_hash.entry(hash).or_default().push(name.clone());
            self.len += 1;
        }
        name
    }
}

/// A fast, non-keyed hash (the multiply-rotate of rustc's FxHasher): the
/// names hashed are the filter's own (bounded label values), so there is no
/// attacker-chosen key to flood a bucket, and a collision only costs a
/// comparison. SipHash here cost as much as the allocations it saved.
#[derive(Debug, Clone, Copy, Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }
    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The segments `stat_name` writes, hashed without building the name.
fn hash_of(base: &str, labels: &[(&str, &str)]) -> u64 {
    let mut h = Fx::default();
    h.write(base.as_bytes());
    for (key, value) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        h.write_u8(b'.');
        h.write(key.as_bytes());
        h.write_u8(b'=');
        h.write(value.as_bytes());
    }
    h.finish()
}

/// Whether `name` is exactly what `stat_name(base, labels)` builds.
fn is_named(name: &str, base: &str, labels: &[(&str, &str)]) -> bool {
    let Some(mut rest) = name.strip_prefix(base) else {
        return false;
    };
    for (key, value) in labels.iter().filter(|(_, v)| !v.is_empty()) {
        let Some(r) = rest
            .strip_prefix('.')
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('='))
            .and_then(|r| r.strip_prefix(value))
        else {
            return false;
        };
        rest = r;
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_name_is_the_name_stat_name_builds() {
        let mut names = StatNames::default();
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("m", &[]),
            ("m", &[("a", "b")]),
            ("m", &[("a", ""), ("c", "d")]),
            ("m", &[("a", "b"), ("c", "d")]),
            // Same text, other parts: `a=b.c=d` as one value.
            ("m", &[("a", "b.c=d")]),
            ("m.a=b", &[("c", "d")]),
            ("mcp_requests_total", &[("mcp_method_name", "tools/call")]),
        ];
        for _ in 0..2 {
            for (base, labels) in cases {
                assert_eq!(&*names.get(base, labels), stat_name(base, labels));
            }
        }
        let first = names.get("m", &[("a", "b")]);
        assert!(Rc::ptr_eq(&first, &names.get("m", &[("a", "b")])));
        assert!(!is_named("m.a=bc", "m", &[("a", "b")]));
        assert!(!is_named("m.a=b", "m", &[("a", "b"), ("c", "d")]));
    }

    #[test]
    fn past_the_bound_names_are_still_right() {
        let mut names = StatNames::default();
        for i in 0..MAX_NAMES + 10 {
            let v = i.to_string();
            assert_eq!(&*names.get("m", &[("i", &v)]), stat_name("m", &[("i", &v)]));
        }
        assert_eq!(names.len, MAX_NAMES);
    }
}
