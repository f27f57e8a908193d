//! Which requests are the MCP endpoint's: the request path as an MCP server
//! could read it, matched against `mcp_paths` and `public_paths`.
//!
//! **Fail closed.** The filter and the MCP server must never see two different
//! requests. Servers differ in how they read a path: some merge slashes,
//! resolve dot segments, decode percent-escapes, drop `;` parameters, ignore
//! case or a trailing slash, or serve everything below a prefix (axum's
//! `nest_service`, Express's non-strict routing). So a request is judged as
//! MCP when *any* of those readings puts it at or below an MCP path; it passes
//! unjudged only when its path is already in canonical form (every reading
//! agrees) and is one of `public_paths` (or `non_mcp_traffic: pass` says so);
//! and a path whose reading cannot be pinned down (an encoded `/`, `\` or
//! control character, a double escape, a malformed escape, no leading `/`)
//! is refused whenever the filter guards anything.
//!
//! This module owns path reading and the endpoint decision; it does not
//! authenticate, parse bodies or build replies (the exchange does).

/// How a request's path relates to the MCP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathClass {
    /// At or below an MCP path under some server's reading: judge it.
    Mcp,
    /// A canonical path listed in `public_paths`: may pass unjudged.
    Public,
    /// Some other canonical path.
    Other,
    /// A path no single reading can be given to (see [`Ambiguity`]).
    Ambiguous(Ambiguity),
}

/// Why a path has no single reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// `%2F`, `%5C`: one server decodes it into a separator, another does not.
    EncodedSeparator,
    /// A NUL or other control character, raw or escaped.
    ControlCharacter,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// An escape that still decodes to an escape (`%256d`).
    DoubleEscape,
    /// Neither `/…`, an absolute URL nor `*`.
    NotAPath,
}

impl Ambiguity {
    pub fn detail(self) -> &'static str {
        match self {
            Ambiguity::EncodedSeparator => {
                "the request path has an encoded `/` or `\\`; send the path unescaped"
            }
            Ambiguity::ControlCharacter => "the request path has a control character",
            Ambiguity::MalformedEscape => "the request path has a malformed percent-escape",
            Ambiguity::DoubleEscape => "the request path has a double percent-escape",
            Ambiguity::NotAPath => "the request target is not an absolute path",
        }
    }
}

/// An MCP endpoint path as configured: canonical, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpPath(String);

impl McpPath {
    /// The canonical form of a configured path, or why it cannot be one.
    pub fn parse(path: &str) -> Result<Self, &'static str> {
        let canonical = canonical_config_path(path)?;
        Ok(Self(
            String::from_utf8_lossy(&fold(canonical.as_bytes())).into_owned(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a folded path is this path or lies below it.
    fn covers(&self, folded: &[u8]) -> bool {
        let me = self.0.as_bytes();
        folded == me
            || (folded.starts_with(me) && (me == b"/" || folded.get(me.len()) == Some(&b'/')))
    }
}

/// A path that may pass the filter unjudged, matched exactly (case included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPath(String);

impl PublicPath {
    pub fn parse(path: &str) -> Result<Self, &'static str> {
        canonical_config_path(path).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn canonical_config_path(path: &str) -> Result<String, &'static str> {
    if path.contains(['?', '#']) {
        return Err("must be a path without query or fragment");
    }
    match read(path.as_bytes()) {
        Ok(reading) if reading.canonical => Ok(path.to_string()),
        Ok(_) => Err("must be in canonical form (no empty, `.` or `..` segments, `;` parameters, escapes or trailing `/`)"),
        Err(_) => Err("must be an absolute path (`/…`) without escapes or control characters"),
    }
}

/// The paths that make up the MCP endpoint, and those that may pass around it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// Empty: every path is the MCP endpoint.
    pub mcp_paths: Vec<McpPath>,
    pub public_paths: Vec<PublicPath>,
}

impl Endpoint {
    /// Classifies a request's `:path`.
    pub fn classify(&self, raw: &str) -> PathClass {
        let reading = match read(raw.as_bytes()) {
            Ok(reading) => reading,
            // `OPTIONS *`: about the server, never an MCP message.
            Err(_) if raw == "*" => return PathClass::Other,
            Err(why) => return PathClass::Ambiguous(why),
        };
        let public = || {
            reading.canonical
                && self
                    .public_paths
                    .iter()
                    .any(|p| p.0.as_bytes() == reading.resolved.as_slice())
        };
        if self.mcp_paths.is_empty() {
            return if public() {
                PathClass::Public
            } else {
                PathClass::Mcp
            };
        }
        let resolved = fold(&reading.resolved);
        let literal = fold(&reading.literal);
        let mcp = self
            .mcp_paths
            .iter()
            .any(|p| p.covers(&resolved) || p.covers(&literal));
        if mcp {
            PathClass::Mcp
        } else if public() {
            PathClass::Public
        } else {
            PathClass::Other
        }
    }
}

/// Two readings of a path, and whether the raw path already is the first.
#[derive(Debug)]
struct Reading {
    /// Decoded, empty/`.` segments and `;` parameters dropped, `..` resolved,
    /// no trailing `/` (except the root).
    resolved: Vec<u8>,
    /// The same with `..` kept as a literal segment (a server that does not
    /// resolve dot segments but matches a prefix reads it this way).
    literal: Vec<u8>,
    /// The raw path is an origin-form path (query aside) byte-identical to `resolved`.
    canonical: bool,
}

fn read(raw: &[u8]) -> Result<Reading, Ambiguity> {
    let (target, absolute) = strip_origin(raw);
    let end = target
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(target.len());
    let path = target.get(..end).unwrap_or_default();
    if path.first() != Some(&b'/') {
        return Err(Ambiguity::NotAPath);
    }
    let decoded = decode(path)?;
    let mut resolved: Vec<&[u8]> = Vec::new();
    let mut literal: Vec<&[u8]> = Vec::new();
    // A raw `\` is a separator to some servers (and to browsers).
    for segment in decoded.split(|b| *b == b'/' || *b == b'\\') {
        let segment = segment.split(|b| *b == b';').next().unwrap_or(segment);
        match segment {
            b"" | b"." => {}
            b".." => {
                resolved.pop();
                literal.push(segment);
            }
            _ => {
                resolved.push(segment);
                literal.push(segment);
            }
        }
    }
    let resolved = join(&resolved);
    let literal = join(&literal);
    let canonical = !absolute && resolved == path;
    Ok(Reading {
        resolved,
        literal,
        canonical,
    })
}

/// `http://host/p` (an absolute-form request target) → `/p`, and whether it was one.
fn strip_origin(raw: &[u8]) -> (&[u8], bool) {
    for scheme in [&b"http://"[..], b"https://"] {
        if raw
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            let rest = raw.get(scheme.len()..).unwrap_or_default();
            let path = match rest.iter().position(|b| matches!(b, b'/' | b'?' | b'#')) {
                Some(i) if rest.get(i) == Some(&b'/') => rest.get(i..).unwrap_or(b"/"),
                _ => b"/",
            };
            return (path, true);
        }
    }
    (raw, false)
}

fn join(segments: &[&[u8]]) -> Vec<u8> {
    if segments.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for s in segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    out
}

/// Percent-decodes once, refusing what a second reader could read differently.
fn decode(path: &[u8]) -> Result<Vec<u8>, Ambiguity> {
    if path.iter().any(|b| b.is_ascii_control()) {
        return Err(Ambiguity::ControlCharacter);
    }
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hex = |j: usize| path.get(j).and_then(|c| (*c as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return Err(Ambiguity::MalformedEscape);
        };
        let byte = (hi * 16 + lo) as u8;
        match byte {
            b'/' | b'\\' => return Err(Ambiguity::EncodedSeparator),
            c if c.is_ascii_control() => return Err(Ambiguity::ControlCharacter),
            _ => out.push(byte),
        }
        i += 3;
    }
    // What a second decode would change: `%25` followed by two hex digits.
    let twice = out
        .windows(3)
        .any(|w| matches!(w, [b'%', a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()));
    if twice {
        return Err(Ambiguity::DoubleEscape);
    }
    Ok(out)
}

/// Case-insensitive form: ASCII lowercase, and the two non-ASCII letters that
/// Unicode simple case folding maps onto ASCII (`ſ` U+017F → `s`, Kelvin `K`
/// U+212A → `k`), which a router matching with Unicode-aware folding accepts.
fn fold(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        let rest = path.get(i..).unwrap_or_default();
        if rest.starts_with(&[0xC5, 0xBF]) {
            out.push(b's');
            i += 2;
        } else if rest.starts_with(&[0xE2, 0x84, 0xAA]) {
            out.push(b'k');
            i += 3;
        } else {
            out.push(b.to_ascii_lowercase());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(mcp: &[&str], public: &[&str]) -> Endpoint {
        Endpoint {
            mcp_paths: mcp.iter().map(|p| McpPath::parse(p).unwrap()).collect(),
            public_paths: public
                .iter()
                .map(|p| PublicPath::parse(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn every_reading_a_server_could_give_to_the_mcp_path_is_judged() {
        let e = endpoint(&["/mcp"], &["/healthz"]);
        for path in [
            "/mcp",
            "/mcp?x=1",
            "/mcp#f",
            "/mcp/",
            "/mcp/x",
            "/mcp/.",
            "/mcp//",
            "//mcp",
            "/%6dcp",
            "/%6Dcp",
            "/MCP",
            "/Mcp/",
            "/mcp;x",
            "/mcp;x/y",
            "/x/../mcp",
            "/./mcp",
            "/healthz/../mcp",
            "/mcp/../healthz",
            "http://host/mcp/",
            "HTTPS://host:1/mcp",
            "/\\mcp",
        ] {
            assert_eq!(e.classify(path), PathClass::Mcp, "{path}");
        }
        // Non-ASCII letters that fold onto ASCII ones.
        let folded = endpoint(&["/tasks"], &[]);
        assert_eq!(folded.classify("/ta\u{17F}ks"), PathClass::Mcp);
        assert_eq!(folded.classify("/ta%C5%BFks"), PathClass::Mcp);
        let kelvin = endpoint(&["/kit"], &[]);
        assert_eq!(kelvin.classify("/\u{212A}it"), PathClass::Mcp);
    }

    #[test]
    fn paths_no_reading_can_pin_down_are_ambiguous() {
        let e = endpoint(&["/mcp"], &[]);
        for (path, why) in [
            ("/mcp%2f", Ambiguity::EncodedSeparator),
            ("/x%2F..%2Fmcp", Ambiguity::EncodedSeparator),
            ("/mcp%5c", Ambiguity::EncodedSeparator),
            ("/mcp%00", Ambiguity::ControlCharacter),
            ("/mcp%0a", Ambiguity::ControlCharacter),
            ("/mcp\t", Ambiguity::ControlCharacter),
            ("/mcp%", Ambiguity::MalformedEscape),
            ("/mcp%zz", Ambiguity::MalformedEscape),
            ("/%256dcp", Ambiguity::DoubleEscape),
            ("mcp", Ambiguity::NotAPath),
            ("", Ambiguity::NotAPath),
        ] {
            assert_eq!(e.classify(path), PathClass::Ambiguous(why), "{path:?}");
        }
        assert_eq!(e.classify("*"), PathClass::Other);
    }

    #[test]
    fn only_canonical_public_paths_pass() {
        let e = endpoint(&["/mcp"], &["/healthz", "/.well-known/thing"]);
        assert_eq!(e.classify("/healthz"), PathClass::Public);
        assert_eq!(e.classify("/healthz?verbose"), PathClass::Public);
        assert_eq!(e.classify("/.well-known/thing"), PathClass::Public);
        for path in [
            "/healthz/",
            "//healthz",
            "/Healthz",
            "/healthz;x",
            "/%68ealthz",
            "/x/../healthz",
            "http://h/healthz",
        ] {
            assert_eq!(e.classify(path), PathClass::Other, "{path}");
        }
        assert_eq!(e.classify("/mcpx"), PathClass::Other);
        assert_eq!(e.classify("/other"), PathClass::Other);
    }

    #[test]
    fn without_mcp_paths_everything_but_public_paths_is_mcp() {
        let e = endpoint(&[], &["/healthz"]);
        assert_eq!(e.classify("/anything"), PathClass::Mcp);
        assert_eq!(e.classify("/healthz"), PathClass::Public);
        assert_eq!(e.classify("/healthz/"), PathClass::Mcp);
    }

    #[test]
    fn a_root_mcp_path_covers_every_path() {
        let e = endpoint(&["/"], &[]);
        assert_eq!(e.classify("/x/y"), PathClass::Mcp);
    }

    #[test]
    fn configured_paths_must_be_canonical() {
        assert_eq!(McpPath::parse("/MCP").unwrap().as_str(), "/mcp");
        assert!(McpPath::parse("/mcp/").is_err());
        assert!(McpPath::parse("mcp").is_err());
        assert!(McpPath::parse("/a/../mcp").is_err());
        assert!(McpPath::parse("/mcp?x").is_err());
        assert!(PublicPath::parse("/a%2fb").is_err());
        assert_eq!(PublicPath::parse("/Health").unwrap().as_str(), "/Health");
    }
}
