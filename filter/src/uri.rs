//! Resource URIs a server would read as another URI than the one written.
//! Servers parse a resource URI before they look it up: the Python SDK as
//! pydantic's `AnyUrl`, the TypeScript SDK with WHATWG `new URL()`. Both
//! remove dot segments (`/docs/../secret` is `/secret`, `%2e` counting as a
//! dot), lowercase the scheme, strip tabs and line breaks and leading or
//! trailing spaces and controls, percent-encode non-ASCII and `"<>` and a
//! backquote; in the special schemes (`http`, `https`, `ws`, `wss`, `ftp`,
//! `file`) they also add a missing `//`, read `\` as `/`, lowercase the host,
//! map a percent-encoded, non-ASCII or numeric host (IDNA, `0x7f.1`), drop a
//! default or empty port and `file://localhost`. The policy matches the URI
//! as written, so one any of these would change is refused, not guessed.
//!
//! Owns only that judgement. Must not: pass a URI a server could read
//! otherwise. It refuses a little more (any address as a special scheme's
//! host, dotted decimal included: a resource URI names a host), and no more
//! than that: a query or fragment is not resolved, and a non-special
//! scheme's host keeps its case, so those pass as written.

/// Why a server could read `uri` as another URI; `None`: as written.
/// (Byte by byte, without string searchers: the `.wasm` has a size budget.)
pub fn ambiguity(uri: &str) -> Option<&'static str> {
    let bytes = uri.as_bytes();
    // Spaces and controls are stripped or encoded, a backslash is `/` in
    // special schemes, non-ASCII and `"`, `<`, `>`, a backquote are
    // percent-encoded in a path.
    if bytes
        .iter()
        .any(|&b| b <= b' ' || b >= 0x7f || b"\\\"<>`".contains(&b))
    {
        return Some("it holds a character servers encode, strip or read as `/`");
    }
    let colon = bytes.iter().position(|&b| b == b':')?;
    let (scheme, rest) = (bytes.get(..colon)?, bytes.get(colon + 1..)?);
    if scheme.iter().any(u8::is_ascii_uppercase) {
        return Some("its scheme is not lowercase");
    }
    let end = rest
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let mut path = rest.get(..end)?;
    let special = [&b"http"[..], b"https", b"ws", b"wss", b"ftp", b"file"].contains(&scheme);
    match path.strip_prefix(b"//") {
        Some(after) => {
            let slash = after.iter().position(|&b| b == b'/').unwrap_or(after.len());
            let (authority, tail) = after.split_at(slash);
            path = tail;
            // A special scheme's host, written plainly; `file:///` has none,
            // but then no further `/` may open the path (`file:////x`).
            let plain = || match (scheme, authority) {
                (b"file", b"") => !tail.starts_with(b"//"),
                _ => !authority.is_empty() && plain_host(scheme, authority),
            };
            if special && !plain() {
                return Some("its host or port is not written the way servers write it");
            }
        }
        // `file:/x`, `https:host/x`: servers add the slashes.
        None if special => return Some("its scheme is not followed by `//`"),
        None => {}
    }
    path.split(|&b| b == b'/')
        .any(|segment| matches!(dots(segment), 1 | 2))
        .then_some("it has a `.` or `..` segment")
}

/// How many dots a path segment is (`.` or `%2e` each), or 0 if it is
/// anything else.
fn dots(segment: &[u8]) -> usize {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if e | 0x20 == b'e' => tail,
            _ => return 0,
        };
        dots += 1;
    }
    dots
}

/// A special scheme's authority servers serialize unchanged: a lowercase
/// name (not an address: `0x7f.1` is `127.0.0.1` to them), no user, no
/// default, empty or zero-led port.
fn plain_host(scheme: &[u8], authority: &[u8]) -> bool {
    let at = authority
        .iter()
        .rposition(|&b| b == b':')
        .unwrap_or(authority.len());
    let (host, port) = authority.split_at(at);
    let default: &[u8] = match scheme {
        b"http" | b"ws" => b":80",
        b"https" | b"wss" => b":443",
        b"ftp" => b":21",
        _ => b"",
    };
    let port_kept = port.is_empty()
        || (port != default
            && port.get(1).is_some_and(|&b| (b'1'..=b'9').contains(&b))
            && port.iter().skip(1).all(u8::is_ascii_digit));
    let name = host
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let last_label = host.rsplit(|&b| b == b'.').next().unwrap_or_default();
    let numeric = last_label.first().is_some_and(u8::is_ascii_digit);
    port_kept && name && !numeric && !(scheme == b"file" && host == b"localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_servers_read_as_written_passes() {
        for uri in [
            "file:///docs/a",
            "file:///docs/{name}",
            "file:///a..b/.../.x",
            "https://docs.example.com/a?x=../y#../z",
            "https://docs.example.com:8443/a",
            "custom://Host/a",
            "custom://10.0.0.1/a",
            "urn:isbn:0451450523",
            "no-scheme",
        ] {
            assert_eq!(ambiguity(uri), None, "{uri:?}");
        }
    }

    #[test]
    fn what_servers_resolve_otherwise_is_refused() {
        for uri in [
            "file:///docs/../x",
            "file:///docs/%2e%2E/x",
            "file:///docs/./x",
            "file:///docs/x/..",
            "File:///x",
            "file:///x\ty",
            "file:///x\\y",
            "file://localhost/x",
            "https://Docs.example.com/x",
            "https://docs.example.com:443/x",
            "http://docs.example.com:80/x",
            "https://docs.example.com:/x",
            "https://docs.example.com:0443/x",
            "https://docs.ex%61mple.com/x",
            "https://dоcs.example.com/x",
            "https://u@docs.example.com/x",
            "https://0x7f.1/x",
            "https://127.1/x",
            "https://127.000.0.1/x",
            "https://10.0.0.1/x",
            "https://[::1]/x",
            "custom://h/a/../b",
            // A special scheme without exactly `//` and a host: both read
            // `file:///secrets/x` / `https://internal.example.com/x`.
            "file:/secrets/x",
            "file:secrets/x",
            "file:////secrets/x",
            "https:internal.example.com/x",
            "https:/internal.example.com/x",
            "https:///internal.example.com/x",
            // Percent-encoded by both before lookup.
            "file:///s\u{e9}crets/x",
            "file:///a<b>/x",
            "file:///a\"b/x",
            "file:///a`b/x",
        ] {
            assert!(ambiguity(uri).is_some(), "{uri:?}");
        }
    }
}
