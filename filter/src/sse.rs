//! Incremental Server-Sent Events framing: chunks in, complete events out, each
//! as the exact bytes that carried it. Boundaries may fall anywhere (inside a
//! field, between CR and LF); only the unfinished event is held back.
//!
//! Line ends are LF, CRLF or a lone CR (the SSE grammar allows all three). A CR
//! at the end of the buffered bytes is not judged until the next byte arrives,
//! since it may be the first half of a CRLF. A UTF-8 BOM opening the stream is
//! dropped, as a client's UTF-8 decode drops it (WHATWG), so the first line
//! is read as the client reads it.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past the configured bound without ending.
    EventTooLarge { limit: usize },
}

/// Splits a byte stream into SSE events.
#[derive(Debug, Default)]
pub struct SseFramer {
    /// Bytes of the event in progress (everything before it was handed out).
    pending: Vec<u8>,
    /// How far `pending` has been scanned for line ends.
    scanned: usize,
    /// Start of the current line within `pending`.
    line_start: usize,
    max_event_bytes: usize,
    /// Past the stream's first bytes (a BOM there is dropped).
    begun: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseFramer {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            ..Self::default()
        }
    }

    /// Feeds a chunk; `on_event` sees every event it completes, in order.
    #[inline]
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        self.push_each(chunk, &mut on_event)
    }

    /// One copy of the framing for every caller (the `.wasm` has a size budget).
    fn push_each(
        &mut self,
        chunk: &[u8],
        on_event: &mut dyn FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        self.pending.extend_from_slice(chunk);
        if !self.begun {
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(());
            }
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
            }
            self.begun = true;
        }
        let mut event_start = 0;
        let mut i = self.scanned;
        let len = self.pending.len();
        while i < len {
            // The next line end: memchr2 scans a 100 KB event a word at a time.
            i = match self
                .pending
                .get(i..)
                .and_then(|rest| memchr::memchr2(b'\n', b'\r', rest))
            {
                Some(at) => i + at,
                None => len,
            };
            let terminator = match self.pending.get(i) {
                Some(b'\n') => 1,
                Some(b'\r') => match self.pending.get(i + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A trailing CR may be half of a CRLF: wait for the next byte.
                    None => break,
                },
                _ => break,
            };
            let line_is_empty = i == self.line_start;
            i += terminator;
            self.line_start = i;
            if line_is_empty {
                if let Some(raw) = self.pending.get(event_start..i) {
                    on_event(SseEvent { raw });
                }
                event_start = i;
            }
        }
        self.scanned = i;
        if event_start > 0 {
            self.pending.drain(..event_start);
            self.scanned -= event_start;
            self.line_start -= event_start;
        }
        if self.pending.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// End of stream: returns the bytes of an event that never ended (servers
    /// that close without a final blank line), and resets the framer.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.line_start = 0;
        self.begun = false;
        std::mem::take(&mut self.pending)
    }

    /// Bytes held back waiting for the rest of an event.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// One complete event, as the exact bytes that carried it (blank line included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub raw: &'a [u8],
}

impl<'a> SseEvent<'a> {
    /// Field lines as `(name, value)`, comments skipped, one leading space of
    /// the value removed (the SSE rule).
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        lines(self.raw).filter_map(|line| {
            if line.is_empty() || line.first() == Some(&b':') {
                return None;
            }
            match line.iter().position(|&b| b == b':') {
                None => Some((line, &b""[..])),
                Some(colon) => {
                    let (name, rest) = line.split_at(colon);
                    let value = rest.get(1..).unwrap_or_default();
                    Some((name, value.strip_prefix(b" ").unwrap_or(value)))
                }
            }
        })
    }

    /// The event's data: its `data` lines joined with LF. `None` when the
    /// event has no data line, or only empty ones (SSE does not dispatch those).
    pub fn data(&self) -> Option<Cow<'a, [u8]>> {
        let mut data: Option<Cow<'a, [u8]>> = None;
        for (name, value) in self.fields() {
            if name != b"data" {
                continue;
            }
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(prev) => {
                    let mut joined = prev.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        }
        data.filter(|d| !d.is_empty())
    }
}

/// One line of an event: its bytes with and without the terminator.
pub struct Line<'a> {
    pub raw: &'a [u8],
    pub content: &'a [u8],
}

/// Splits on LF, CRLF or CR, keeping each line's exact bytes beside its content.
pub fn lines_with_ends(raw: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        let skip = match rest.get(end..) {
            Some([b'\r', b'\n', ..]) => 2,
            Some([]) | None => 0,
            _ => 1,
        };
        let (line, tail) = rest.split_at((end + skip).min(rest.len()));
        rest = tail;
        Some(Line {
            raw: line,
            content: line.get(..end).unwrap_or_default(),
        })
    })
}

/// Splits on LF, CRLF or CR, without the terminators.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    lines_with_ends(raw).map(|line| line.content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_opening_the_stream_is_dropped_at_any_split_and_only_there() {
        let stream = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
        for chunk in 1..=stream.len() {
            let mut framer = SseFramer::new(1024);
            let mut data = Vec::new();
            for piece in stream.chunks(chunk) {
                let pushed = framer.push(piece, |e| data.push(e.data().map(|d| d.to_vec())));
                assert_eq!(pushed, Ok(()));
            }
            // The second BOM is not the stream's start: its line has no field `data`.
            assert_eq!(data, [Some(b"a".to_vec()), None], "chunk {chunk}");
        }
        let mut framer = SseFramer::new(1024);
        assert_eq!(framer.push(b"\xEF\xBB", |_| {}), Ok(()));
        assert_eq!(framer.finish(), b"\xEF\xBB");
    }

    fn events_of(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut framer = SseFramer::new(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, |e| out.push(e.raw.to_vec())).unwrap();
        }
        (out, framer.finish())
    }

    const RMCP: &[u8] = b"data: \nid: 0/1\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\nid: 1/1\n\n";
    const PYTHON_CRLF: &[u8] =
        b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n";
    const MIXED: &[u8] = b": comment\r\rdata: a\rdata: b\r\r\nevent: x\ndata:c\n\n";

    #[test]
    fn splits_events_and_keeps_their_exact_bytes() {
        let (events, rest) = events_of(&[RMCP]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], b"data: \nid: 0/1\nretry: 3000\n\n");
        assert_eq!(events.concat(), RMCP);
        assert!(rest.is_empty());
    }

    #[test]
    fn crlf_and_lone_cr_line_ends_are_understood() {
        let (events, _) = events_of(&[PYTHON_CRLF]);
        assert_eq!(events, vec![PYTHON_CRLF.to_vec()]);
        let (events, _) = events_of(&[MIXED]);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events.concat(), MIXED);
    }

    #[test]
    fn every_split_point_yields_the_same_events() {
        for body in [RMCP, PYTHON_CRLF, MIXED] {
            let (whole, _) = events_of(&[body]);
            for cut in 0..=body.len() {
                let (a, b) = body.split_at(cut);
                assert_eq!(events_of(&[a, b]).0, whole, "cut at {cut}");
            }
            for cut1 in 0..=body.len() {
                for cut2 in cut1..=body.len() {
                    let chunks = [&body[..cut1], &body[cut1..cut2], &body[cut2..]];
                    assert_eq!(events_of(&chunks).0, whole, "cuts {cut1},{cut2}");
                }
            }
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            assert_eq!(events_of(&bytes).0, whole);
        }
    }

    #[test]
    fn data_lines_are_joined_and_empty_data_is_not_a_message() {
        let mut datas = Vec::new();
        let mut framer = SseFramer::new(1024);
        framer
            .push(
                b"data: \nid: 0\n\ndata: {\"a\":\ndata:  1}\n\n: only a comment\n\n",
                |e| datas.push(e.data().map(|d| d.into_owned())),
            )
            .unwrap();
        assert_eq!(datas, vec![None, Some(b"{\"a\":\n 1}".to_vec()), None]);
    }

    #[test]
    fn an_unterminated_event_is_returned_at_the_end() {
        let (events, rest) = events_of(&[b"data: 1\n\ndata: 2\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(rest, b"data: 2\n");
        let (events, rest) = events_of(&[b"data: 1\r"]);
        assert!(events.is_empty());
        assert_eq!(rest, b"data: 1\r");
    }

    #[test]
    fn an_event_past_the_bound_is_an_error() {
        let mut framer = SseFramer::new(8);
        assert!(framer.push(b"data: 1234", |_| {}).is_err());
        let mut framer = SseFramer::new(8);
        framer.push(b"data: 1\n\ndata: 2\n\n", |_| {}).unwrap();
        assert_eq!(framer.pending_len(), 0);
    }

    #[test]
    fn real_captures_reassemble_byte_for_byte() {
        let Some(dir) = crate::test_vectors::dir() else {
            return;
        };
        let mut seen = 0;
        for path in crate::test_vectors::files(&dir, "response-body.bin") {
            let body = std::fs::read(&path).unwrap();
            let (whole, rest) = events_of(&[&body]);
            assert_eq!([whole.concat(), rest.clone()].concat(), body, "{path:?}");
            for size in [1, 2, 3, 7, 64] {
                let chunks: Vec<&[u8]> = body.chunks(size).collect();
                let (events, tail) = events_of(&chunks);
                assert_eq!(events, whole, "{path:?} in chunks of {size}");
                assert_eq!(tail, rest);
            }
            seen += 1;
        }
        assert!(seen >= 20, "expected the mcp-wire captures, read {seen}");
    }
}
