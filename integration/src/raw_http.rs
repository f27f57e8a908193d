//! Requests with exact bytes on the wire: the request target as written
//! (no client normalising `/x/../mcp` or re-escaping `%6d`), HTTP/1.1 over a
//! plain socket, and HTTP/2 (prior knowledge) through `curl`.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::time::Duration;

/// An answer as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0: no answer, the stream was reset (HTTP/2 only).
    pub status: u16,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Envoy adds this only to answers that came from an upstream, never to
    /// the filter's (or Envoy's own) local replies.
    pub fn from_upstream(&self) -> bool {
        self.header("x-envoy-upstream-service-time").is_some()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// Sends `METHOD TARGET HTTP/1.1` with `headers` and `body` as given, and
/// reads one whole answer: to its `content-length` or last chunk, else to
/// the end of the connection. (Waiting for the close after a complete
/// answer costs a second each: Envoy delays closing a connection whose
/// request it answered early, to let the client read the answer.)
pub fn http1(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(buf.get(..n).unwrap_or_default());
        if answer_complete(&response) {
            break;
        }
    }
    parse_http1(&response).with_context(|| format!("{method} {target}"))
}

/// Whether `response` holds a whole answer (its head, and its body by
/// `content-length` or up to the last chunk); a body delimited by the close
/// of the connection is never complete before it.
fn answer_complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head =
        String::from_utf8_lossy(response.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let body = response.get(end + 4..).unwrap_or_default();
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return true;
    }
    let field = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return body.ends_with(b"0\r\n\r\n");
    }
    match field("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.len() >= len,
        None => false,
    }
}

fn parse_http1(response: &[u8]) -> Result<Answer> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status_line = lines.next().context("empty answer")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A `Transfer-Encoding: chunked` body, joined.
pub(crate) fn dechunk(body: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
        if size == 0 {
            break;
        }
        out.push_str(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).unwrap_or_default();
    }
    Ok(out)
}

/// The same over HTTP/2 with prior knowledge (h2c), through `curl`.
pub fn http2(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer> {
    use std::process::Stdio;
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        "-i",
        "--http2-prior-knowledge",
        "--path-as-is",
        "-X",
        method,
    ]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    if !body.is_empty() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{target}"));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running curl (needed for HTTP/2)")?;
    child.stdin.take().context("curl stdin")?.write_all(body)?;
    let out = child.wait_with_output()?;
    // Exit 92: Envoy reset the stream (its HTTP/2 codec refused the request).
    if out.status.code() == Some(92) {
        return Ok(Answer {
            status: 0,
            headers: Vec::new(),
            body: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    if !out.status.success() {
        bail!(
            "curl {method} {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_http1(&out.stdout)
}
