//! What `connect`'s HTTP clients share: a client that follows a redirect
//! only within the remote's own origin and only when it keeps the method and
//! body (307/308), so headers, session id and message never go to another
//! host; and reading a remote's answers within bounds, so a remote server
//! cannot make the bridge hold more than one bounded event or body.
//! Must not: speak MCP (that is `remote` and `sse_client`).

use axum::body::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

/// The longest event or JSON body read from a remote (the SDK's own bound).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// An HTTP client for a remote MCP server.
pub fn client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !keeps_body || !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .build()
        .unwrap_or_default()
}

/// Too much without an end.
#[derive(Debug)]
pub struct TooLong(usize);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the remote sent more than {} bytes in one message",
            self.0
        )
    }
}

impl std::error::Error for TooLong {}

/// `bytes` of an event stream, ending in an error once more than `max`
/// bytes come without a blank line (the end of an event).
pub fn bounded_events<E>(
    bytes: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    max: usize,
) -> BoxStream<'static, Result<Bytes, std::io::Error>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    // Bytes since the last event's end, bytes in the current line, whether
    // the last byte was a CR (a line ends at CR LF, CR or LF; an event at
    // an empty line), and whether the stream has ended in an error.
    bytes
        .scan((0usize, 0usize, false, false), move |state, chunk| {
            let (open, line, after_cr, done) = state;
            if *done {
                return futures::future::ready(None);
            }
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    *done = true;
                    return futures::future::ready(Some(Err(std::io::Error::other(e))));
                }
            };
            for byte in chunk.iter() {
                let line_end = match byte {
                    b'\r' => true,
                    b'\n' => !*after_cr,
                    _ => false,
                };
                *after_cr = *byte == b'\r';
                if line_end {
                    if *line == 0 {
                        *open = 0;
                    }
                    *line = 0;
                } else if *byte != b'\n' {
                    *line += 1;
                }
                *open += 1;
                if *open > max {
                    *done = true;
                    return futures::future::ready(Some(Err(std::io::Error::other(TooLong(max)))));
                }
            }
            futures::future::ready(Some(Ok(chunk)))
        })
        .boxed()
}

/// A response's whole body, refused past `max` bytes.
pub async fn bounded_body(
    response: reqwest::Response,
    max: usize,
) -> Result<Bytes, std::io::Error> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(std::io::Error::other(TooLong(max)));
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if body.len() + chunk.len() > max {
            return Err(std::io::Error::other(TooLong(max)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn through(chunks: &[&'static str], max: usize) -> Result<String, String> {
        let stream = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        let mut out = String::new();
        let mut events = bounded_events(stream, max);
        while let Some(chunk) = events.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn events_within_the_bound_pass_and_a_longer_one_ends_the_stream() {
        let ok = through(&["data: 12345\n", "\ndata: 678", "90\r\n\r\n"], 16).await;
        assert_eq!(ok.as_deref(), Ok("data: 12345\n\ndata: 67890\r\n\r\n"));
        let cr_only = through(&["data: 12345\r\rdata: 67890\r\r"], 16).await;
        assert!(cr_only.is_ok(), "{cr_only:?}");
        let long = through(&["data: 1234567890", "1234567890"], 16).await;
        assert!(long.unwrap_err().contains("more than 16 bytes"));
    }
}
