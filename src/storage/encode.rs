//! The transmit encoder.
//!
//! A streaming, allocation-bounded state machine that turns stored message bytes
//! (`[header_offset, end_offset)` of an indexed message) into POP3 transmit form:
//!
//! - every LF, with or without a preceding CR, becomes CRLF; a CR that is not followed by LF is
//!   ordinary data and is passed through unchanged;
//! - a line starting with "." gets one more "." (RFC 1939 byte-stuffing);
//! - mailbox-private header fields ([`PRIVATE_HEADERS`]) and their folded continuation lines are
//!   dropped from the header section;
//! - with [`MboxFormat::Mboxrd`], a line matching `>+From ` loses one `>` (in the header section
//!   too: an mboxrd writer quotes every line of the message);
//! - `top: Some(k)` stops after the header section, the blank line and `k` body lines;
//! - the output always ends with CRLF (one is added when the message lacks a final newline).
//!
//! Sizes are computed by running the very same encoder into a counting [`Sink`], so the size a
//! client sees always equals the octets RETR sends before the terminating ".\r\n", once the
//! client has removed the byte-stuffing dots (RFC 1939 §11 sizes do not count them).
//!
//! The API `mailbox` relies on (plus [`Sink`], [`Counter`], `feed_into`,
//! `finish_into` and [`encode_bytes`]):
//! ```ignore
//! pub struct EncodeOptions { pub format: MboxFormat, pub top: Option<u64> }
//! impl Encoder {
//!     pub fn new(opts: EncodeOptions) -> Self;
//!     pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>);  // out grows by O(input)
//!     pub fn finish(&mut self, out: &mut Vec<u8>);  // ensures final CRLF
//!     pub fn done(&self) -> bool;                   // TOP limit reached: stop reading early
//! }
//! pub fn encode_to<R: Read, W: Write + ?Sized>(src: R, opts: EncodeOptions, out: &mut W) -> io::Result<u64>;
//! pub fn encode_slice<W: Write + ?Sized>(message: &[u8], opts: EncodeOptions, out: &mut W) -> io::Result<u64>;
//! pub fn transmit_size(message: &[u8], format: MboxFormat) -> u64;
//! ```

use std::io::{self, Read, Write};
use std::sync::LazyLock;

use crate::storage::format::MboxFormat;
use crate::sys::line_copy;

/// Header fields that belong to the mailbox (flags, IMAP state, mboxcl lengths), not to the
/// message. Dovecot hides the same list; clients must not see them, and sizes exclude them.
pub const PRIVATE_HEADERS: [&str; 7] = [
    "X-IMAP",
    "X-IMAPbase",
    "X-UID",
    "X-Keywords",
    "Status",
    "X-Status",
    "Content-Length",
];

/// Longest private header name plus its colon: a header line whose first bytes hold no colon
/// within this many bytes cannot be private, so the classifier never buffers more.
const NAME_PROBE: usize = 16;

/// Whether a header field name (without the colon) is mailbox-private. Trailing blanks before
/// the colon are tolerated, as lenient parsers (and Dovecot) accept `Status :`.
pub fn is_private_header(name: &[u8]) -> bool {
    let name = trim_trailing_blanks(name);
    PRIVATE_HEADERS
        .iter()
        .any(|p| p.as_bytes().eq_ignore_ascii_case(name))
}

fn trim_trailing_blanks(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Where the encoder's output goes: a buffer for RETR/TOP, a counter for sizes, or both.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// The extra "." of byte-stuffing. It is part of the transmission but not of the message:
    /// RFC 1939 sizes (and the counts fetchmail and others compare them with, taken after
    /// un-stuffing) exclude it, so the size counter ignores it.
    fn put_stuffing(&mut self) {
        self.put(b".");
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A sink that only counts octets: sizes come from the same code path as RETR output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counter(pub u64);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len() as u64;
    }

    fn put_stuffing(&mut self) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    pub format: MboxFormat,
    /// `Some(k)`: TOP — headers, the blank line and `k` body lines.
    pub top: Option<u64>,
}

impl EncodeOptions {
    /// Full-message (RETR) encoding.
    pub fn retr(format: MboxFormat) -> Self {
        EncodeOptions { format, top: None }
    }
}

/// Per-line state. A line's fate (sent, hidden, unquoted) is decided from its first bytes, which
/// are held in `head` until the decision can be made; the rest of the line is then streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Header section, start of a line: classify it (blank, continuation, private or not).
    HeaderStart,
    /// Start of a line that will be sent; its first byte has not been seen yet.
    Visible,
    /// mboxrd: this many '>' seen at the start of a visible line, not yet sent.
    GtRun(u64),
    /// mboxrd: after a '>' run, collecting the next bytes in `from` to compare with "From ".
    FromCheck(u64),
    /// Sending the rest of the line.
    Copy,
    /// Dropping the rest of a hidden header line.
    Skip,
}

/// The streaming transmit encoder; see the module documentation.
#[derive(Debug, Clone)]
pub struct Encoder {
    opts: EncodeOptions,
    in_headers: bool,
    line: Line,
    /// First bytes of the current header line, awaiting classification (at most `NAME_PROBE`).
    head: Vec<u8>,
    /// mboxrd: the bytes after a '>' run, compared with "From " (at most 5).
    from: [u8; 5],
    from_len: usize,
    /// The current header field is private: its continuation lines are hidden too.
    hiding_field: bool,
    /// A CR ended the previous input; whether it belongs to a CRLF is not known yet.
    pending_cr: bool,
    /// Something was sent since the last CRLF (so `finish` must close the line).
    mid_line: bool,
    body_lines: u64,
    done: bool,
}

impl Encoder {
    pub fn new(opts: EncodeOptions) -> Self {
        let done = false;
        Encoder {
            opts,
            in_headers: true,
            line: Line::HeaderStart,
            head: Vec::with_capacity(NAME_PROBE),
            from: [0; 5],
            from_len: 0,
            hiding_field: false,
            pending_cr: false,
            mid_line: false,
            body_lines: 0,
            done,
        }
    }

    /// Encode `input` (the next bytes of the stored message) into `out`. Runs of whole body
    /// lines are encoded in one tight loop ([`Encoder::encode_body_lines`]).
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.done {
            if self.at_body_line_start() {
                let n = self.encode_body_lines(input, out);
                if n > 0 {
                    input = &input[n..];
                    continue;
                }
            }
            let used = self.step(input, out);
            input = &input[used..];
        }
    }

    /// Encode the whole lines at the start of `input` into `out` (at a body line start):
    /// CRLF line ends, stuffing dots; stops before an mboxrd `>` line, which the state machine
    /// unquotes. Returns the bytes consumed. Same output as the state machine, line by line.
    fn encode_body_lines(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let Some(last) = memchr::memrchr(b'\n', input) else {
            return 0;
        };
        let rd = self.opts.format == MboxFormat::Mboxrd;
        let (used, lines) = line_copy::encode_lines(&input[..=last], out, rd);
        self.body_lines += lines;
        self.mid_line = false;
        used
    }

    /// Finish the message: flush held bytes and make sure the output ends with CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish_into(out);
    }

    /// The TOP limit has been reached: nothing more will be output, stop reading.
    pub fn done(&self) -> bool {
        self.done
    }

    /// At the start of a body line with nothing held back and no TOP limit: the state in which
    /// [`Encoder::count_body_lines`] applies.
    pub fn at_body_line_start(&self) -> bool {
        !self.in_headers
            && self.line == Line::Visible
            && !self.pending_cr
            && !self.done
            && self.opts.top.is_none()
    }

    /// Count the transmit size of whole body lines (`block` ends with LF) in one pass, exactly
    /// as [`Encoder::feed_into`] with a [`Counter`] would, without visiting each line: every
    /// line end becomes CRLF, stuffing dots are not counted, and with mboxrd a `>+From ` line
    /// loses one `>`. Only valid when [`Encoder::at_body_line_start`]; the state is unchanged.
    ///
    /// `lf` is the number of LFs in `block` and `maybe_cr` is false only if it holds no CR (the
    /// caller's scan found both). Returns whether `block` holds a CR (callers that scan it
    /// again can skip their search).
    pub fn count_body_lines(
        &mut self,
        block: &[u8],
        lf: u64,
        maybe_cr: bool,
        counter: &mut Counter,
    ) -> bool {
        debug_assert!(self.at_body_line_start() && block.last() == Some(&b'\n'));
        debug_assert_eq!(lf, memchr::memchr_iter(b'\n', block).count() as u64);
        let has_cr = maybe_cr && memchr::memchr(b'\r', block).is_some();
        let crlf = if has_cr {
            memchr::memchr_iter(b'\r', block)
                .filter(|&i| block.get(i + 1) == Some(&b'\n'))
                .count() as u64
        } else {
            0
        };
        let mut size = block.len() as u64 + lf - crlf;
        if self.opts.format == MboxFormat::Mboxrd {
            size -= quoted_from_lines(block);
        }
        counter.0 += size;
        self.body_lines += lf;
        has_cr
    }

    /// [`Encoder::feed`] into any sink (a [`Counter`] for sizes).
    pub fn feed_into<S: Sink + ?Sized>(&mut self, mut input: &[u8], sink: &mut S) {
        while !input.is_empty() && !self.done {
            let used = self.step(input, sink);
            input = &input[used..];
        }
    }

    /// [`Encoder::finish`] into any sink.
    pub fn finish_into<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        if self.done {
            return;
        }
        if self.line == Line::HeaderStart && !self.head.is_empty() {
            // An unterminated last header line: classify it as a whole line.
            self.classify_header(true, sink);
            self.flush_head(sink);
        }
        // Also after the flush above: an mboxrd '>' run may still be held back.
        match self.line {
            Line::GtRun(n) => self.put_gts(n, sink),
            Line::FromCheck(n) => {
                self.put_gts(n, sink);
                self.flush_from(sink);
            }
            _ => {}
        }
        if self.pending_cr {
            self.pending_cr = false;
            self.put(b"\r", sink);
        }
        if self.mid_line {
            self.put(b"\r\n", sink);
            self.mid_line = false;
        }
        self.done = true;
    }

    fn put<S: Sink + ?Sized>(&mut self, bytes: &[u8], sink: &mut S) {
        if !bytes.is_empty() {
            sink.put(bytes);
            self.mid_line = true;
        }
    }

    fn put_gts<S: Sink + ?Sized>(&mut self, n: u64, sink: &mut S) {
        const GTS: [u8; 64] = [b'>'; 64];
        let mut left = n;
        while left > 0 {
            let k = left.min(GTS.len() as u64) as usize;
            self.put(&GTS[..k], sink);
            left -= k as u64;
        }
    }

    /// Re-run the held `head` bytes through the state machine after the line was classified.
    fn flush_head<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        let head = std::mem::take(&mut self.head);
        let mut rest: &[u8] = &head;
        while !rest.is_empty() && !self.done {
            let used = self.step(rest, sink);
            rest = &rest[used..];
        }
        // Give the allocation back so the encoder stays allocation-free per line.
        self.head = head;
        self.head.clear();
    }

    /// Send the bytes held after a '>' run as ordinary line data.
    fn flush_from<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        let (from, len) = (self.from, self.from_len);
        self.from_len = 0;
        self.line = Line::Copy;
        let mut rest = &from[..len];
        while !rest.is_empty() && !self.done {
            let used = self.step(rest, sink);
            rest = &rest[used..];
        }
    }

    /// A line has been terminated (its CRLF sent, or a hidden line's LF dropped).
    fn end_line(&mut self, sent: bool) {
        self.mid_line = false;
        if self.in_headers {
            self.line = Line::HeaderStart;
        } else {
            self.line = Line::Visible;
            if sent {
                self.body_lines += 1;
                if self.opts.top.is_some_and(|k| self.body_lines >= k) {
                    self.done = true;
                }
            }
        }
    }

    /// Consume a prefix of `input` (at least one byte) and return its length.
    fn step<S: Sink + ?Sized>(&mut self, input: &[u8], sink: &mut S) -> usize {
        match self.line {
            Line::HeaderStart => {
                let want = NAME_PROBE - self.head.len();
                let take = input.len().min(want);
                let take = match memchr::memchr(b'\n', &input[..take]) {
                    Some(i) => i + 1,
                    None => take,
                };
                self.head.extend_from_slice(&input[..take]);
                if self.classify_header(false, sink) {
                    self.flush_head(sink);
                }
                take
            }
            Line::Visible => {
                match input[0] {
                    b'.' => {
                        sink.put_stuffing();
                        self.mid_line = true;
                        self.line = Line::Copy;
                    }
                    b'>' if self.opts.format == MboxFormat::Mboxrd => self.line = Line::GtRun(0),
                    _ => self.line = Line::Copy,
                }
                0
            }
            Line::GtRun(n) => {
                let run = input.iter().take_while(|&&b| b == b'>').count();
                if run < input.len() {
                    self.line = Line::FromCheck(n + run as u64);
                } else {
                    self.line = Line::GtRun(n + run as u64);
                }
                run
            }
            Line::FromCheck(n) => {
                const FROM: &[u8] = b"From ";
                let b = input[0];
                self.from[self.from_len] = b;
                self.from_len += 1;
                let matches = FROM[self.from_len - 1] == b;
                if !matches || self.from_len == FROM.len() {
                    let quoted = matches && self.from_len == FROM.len();
                    self.put_gts(if quoted { n - 1 } else { n }, sink);
                    self.flush_from(sink);
                }
                1
            }
            Line::Copy => self.copy(input, sink),
            Line::Skip => match memchr::memchr(b'\n', input) {
                Some(i) => {
                    self.pending_cr = false;
                    self.end_line(false);
                    i + 1
                }
                None => input.len(),
            },
        }
    }

    fn copy<S: Sink + ?Sized>(&mut self, input: &[u8], sink: &mut S) -> usize {
        if self.pending_cr {
            self.pending_cr = false;
            if input[0] == b'\n' {
                self.put(b"\r\n", sink);
                self.end_line(true);
                return 1;
            }
            self.put(b"\r", sink);
        }
        match memchr::memchr(b'\n', input) {
            Some(i) => {
                let data = &input[..i];
                let data = data.strip_suffix(b"\r").unwrap_or(data);
                self.put(data, sink);
                self.put(b"\r\n", sink);
                self.end_line(true);
                i + 1
            }
            None => {
                // Hold a trailing CR: the next input decides whether it starts a CRLF.
                let (data, cr) = match input.strip_suffix(b"\r") {
                    Some(d) => (d, true),
                    None => (input, false),
                };
                self.put(data, sink);
                self.pending_cr = cr;
                input.len()
            }
        }
    }

    /// Decide the fate of the header line whose first bytes are in `head`. Returns whether a
    /// decision was made (then `head` must be flushed); `complete` means no more bytes follow.
    fn classify_header<S: Sink + ?Sized>(&mut self, complete: bool, sink: &mut S) -> bool {
        let head = &self.head[..];
        if head == b"\n" || head == b"\r\n" {
            // End of the header section: the blank line is sent, then the body starts.
            self.head.clear();
            self.put(b"\r\n", sink);
            self.mid_line = false;
            self.in_headers = false;
            self.line = Line::Visible;
            if self.opts.top == Some(0) {
                self.done = true;
            }
            return false;
        }
        if head == b"\r" && !complete {
            return false;
        }
        let has_lf = head.last() == Some(&b'\n');
        let hidden = match head.first() {
            Some(b' ' | b'\t') => self.hiding_field,
            _ => match memchr::memchr(b':', head) {
                Some(colon) => is_private_header(&head[..colon]),
                None if complete || has_lf || head.len() >= NAME_PROBE => false,
                None => return false,
            },
        };
        self.hiding_field = hidden;
        self.line = if hidden { Line::Skip } else { Line::Visible };
        true
    }
}

/// How many lines of `block` (which starts at a line start) match `>+From `.
fn quoted_from_lines(block: &[u8]) -> u64 {
    let is_quoted = |line: &[u8]| {
        let gts = line.iter().take_while(|&&b| b == b'>').count();
        gts > 0 && line[gts..].starts_with(b"From ")
    };
    let mut n = u64::from(is_quoted(block));
    static QUOTE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\n>"));
    for p in QUOTE.find_iter(block) {
        n += u64::from(is_quoted(&block[p + 1..]));
    }
    n
}

thread_local! {
    /// Input and output buffers, kept per thread: a RETR allocates nothing.
    static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Encode a stored message read from `src` into `out`; returns the octets written (for RETR
/// this equals the indexed size). Stops reading early once a TOP limit is reached. Output is
/// written in large blocks so a response leaves in few writes.
pub fn encode_to<R: Read, W: Write + ?Sized>(
    src: R,
    opts: EncodeOptions,
    out: &mut W,
) -> io::Result<u64> {
    BUFFERS.with(|b| match b.try_borrow_mut() {
        Ok(mut bufs) => {
            let (input, output) = &mut *bufs;
            encode_with(src, opts, out, input, output)
        }
        // Re-entered (a writer that encodes): fresh buffers.
        Err(_) => encode_with(src, opts, out, &mut Vec::new(), &mut Vec::new()),
    })
}

/// [`encode_to`] for a stored message already in memory (`[header_offset, end_offset)`).
pub fn encode_slice<W: Write + ?Sized>(
    message: &[u8],
    opts: EncodeOptions,
    out: &mut W,
) -> io::Result<u64> {
    let mut pieces = message.chunks(CHUNK);
    let mut run = |output: &mut Vec<u8>| {
        pump(opts, out, output, |enc, output| {
            Ok(pieces.next().map(|piece| enc.feed(piece, output)).is_some())
        })
    };
    BUFFERS.with(|b| match b.try_borrow_mut() {
        Ok(mut bufs) => run(&mut bufs.1),
        Err(_) => run(&mut Vec::new()),
    })
}

/// Input is read, and output written, in blocks of this size.
const CHUNK: usize = 64 * 1024;

fn encode_with<R: Read, W: Write + ?Sized>(
    mut src: R,
    opts: EncodeOptions,
    out: &mut W,
    input: &mut Vec<u8>,
    output: &mut Vec<u8>,
) -> io::Result<u64> {
    input.resize(CHUNK, 0);
    pump(opts, out, output, |enc, output| loop {
        match src.read(input) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                enc.feed(&input[..n], output);
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    })
}

/// Run an encoder over the pieces `feed` gives it (it returns false when there are no more)
/// and write its output to `out` in blocks of about [`CHUNK`]; returns the octets written.
fn pump<W: Write + ?Sized>(
    opts: EncodeOptions,
    out: &mut W,
    output: &mut Vec<u8>,
    mut feed: impl FnMut(&mut Encoder, &mut Vec<u8>) -> io::Result<bool>,
) -> io::Result<u64> {
    let mut enc = Encoder::new(opts);
    output.clear();
    // Worst case the output is twice the input (".\n" → "..\r\n") plus a few held bytes.
    output.reserve(2 * CHUNK + 2 * NAME_PROBE + 64);
    let mut total = 0u64;
    while !enc.done() && feed(&mut enc, output)? {
        if output.len() >= CHUNK {
            out.write_all(output)?;
            total += output.len() as u64;
            output.clear();
        }
    }
    enc.finish(output);
    out.write_all(output)?;
    Ok(total + output.len() as u64)
}

/// The transmit size of a stored message (`[header_offset, end_offset)` bytes).
pub fn transmit_size(message: &[u8], format: MboxFormat) -> u64 {
    let mut enc = Encoder::new(EncodeOptions::retr(format));
    let mut counter = Counter::default();
    enc.feed_into(message, &mut counter);
    enc.finish_into(&mut counter);
    counter.0
}

/// Encode a whole in-memory message (tests, small messages).
pub fn encode_bytes(message: &[u8], opts: EncodeOptions) -> Vec<u8> {
    let mut enc = Encoder::new(opts);
    let mut out = Vec::with_capacity(message.len() + message.len() / 16 + 2);
    enc.feed(message, &mut out);
    enc.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Octets of transmit-form `out` without the byte-stuffing dots: the RFC 1939 size.
    fn unstuffed_len(out: &[u8]) -> u64 {
        let stuffed = out
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b".."))
            .count();
        (out.len() - stuffed) as u64
    }

    fn retr(msg: &[u8]) -> Vec<u8> {
        encode_bytes(msg, EncodeOptions::retr(MboxFormat::Mboxo))
    }

    fn retr_rd(msg: &[u8]) -> Vec<u8> {
        encode_bytes(msg, EncodeOptions::retr(MboxFormat::Mboxrd))
    }

    fn top(msg: &[u8], k: u64) -> Vec<u8> {
        encode_bytes(
            msg,
            EncodeOptions {
                format: MboxFormat::Mboxo,
                top: Some(k),
            },
        )
    }

    /// Feed `msg` one byte at a time: the state machine must not depend on chunking.
    fn retr_bytewise(msg: &[u8], opts: EncodeOptions) -> Vec<u8> {
        let mut enc = Encoder::new(opts);
        let mut out = Vec::new();
        for b in msg {
            enc.feed(std::slice::from_ref(b), &mut out);
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn lf_and_crlf_become_crlf() {
        assert_eq!(retr(b"A: b\n\nx\ny\n"), b"A: b\r\n\r\nx\r\ny\r\n");
        assert_eq!(retr(b"A: b\r\n\r\nx\r\ny\r\n"), b"A: b\r\n\r\nx\r\ny\r\n");
        assert_eq!(retr(b"A: b\r\n\nx\ny\r\n"), b"A: b\r\n\r\nx\r\ny\r\n");
    }

    #[test]
    fn bare_cr_is_data() {
        assert_eq!(retr(b"A: b\n\nx\ry\n"), b"A: b\r\n\r\nx\ry\r\n");
        assert_eq!(retr(b"A: b\n\nx\r\r\n"), b"A: b\r\n\r\nx\r\r\n");
        // A CR at the very end is data too, and the line is then closed.
        assert_eq!(retr(b"A: b\n\nx\r"), b"A: b\r\n\r\nx\r\r\n");
        assert_eq!(retr(b"A: b\n\r"), b"A: b\r\n\r\r\n");
    }

    #[test]
    fn dots_are_stuffed() {
        assert_eq!(
            retr(b"A: b\n\n.\n..x\n.y\nz.\n"),
            b"A: b\r\n\r\n..\r\n...x\r\n..y\r\nz.\r\n"
        );
        assert_eq!(retr(b".A: b\n\nx\n"), b"..A: b\r\n\r\nx\r\n");
    }

    #[test]
    fn final_newline_is_added() {
        assert_eq!(retr(b"A: b\n\nno newline"), b"A: b\r\n\r\nno newline\r\n");
        assert_eq!(retr(b"A: b"), b"A: b\r\n");
        assert_eq!(retr(b""), b"");
        assert_eq!(retr(b"\n"), b"\r\n");
    }

    #[test]
    fn private_headers_and_their_continuations_are_hidden() {
        let msg = b"Subject: s\nStatus: RO\nX-Status: A\nX-Keywords: $Junk\n  more\nX-UID: 4\n\
X-IMAP: 1 2\nX-IMAPbase: 1 2\ncontent-length: 5\nX-Other: o\n\tcont\nStatus : RO\n\nStatus: body\n";
        assert_eq!(
            retr(msg),
            b"Subject: s\r\nX-Other: o\r\n\tcont\r\n\r\nStatus: body\r\n".to_vec()
        );
    }

    #[test]
    fn long_header_names_are_not_private() {
        let msg = b"X-Very-Long-Header-Name-Here: v\nContent-Lengthy: 3\n\nb\n";
        assert_eq!(
            retr(msg),
            b"X-Very-Long-Header-Name-Here: v\r\nContent-Lengthy: 3\r\n\r\nb\r\n"
        );
    }

    #[test]
    fn hidden_last_header_without_newline() {
        assert_eq!(retr(b"Subject: s\nStatus: RO"), b"Subject: s\r\n");
    }

    #[test]
    fn mboxrd_unquotes_one_level() {
        let msg = b"A: b\n\n>From x\n>>From y\n>>>From z\n>Fro\n>From\n> From a\nFrom b\n>>>>\n>";
        assert_eq!(
            retr_rd(msg),
            b"A: b\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\n>Fro\r\n>From\r\n> From a\r\nFrom b\r\n>>>>\r\n>\r\n"
                .to_vec()
        );
        // mboxo leaves the body as stored.
        assert_eq!(
            retr(msg).len(),
            msg.len() + msg.iter().filter(|&&b| b == b'\n').count() + 2
        );
    }

    #[test]
    fn mboxrd_unterminated_last_header_line_keeps_its_gt_run() {
        // A header section that ends the message without a newline, in a line starting
        // with '>': the held '>' run (and bytes after it) must still be sent.
        assert_eq!(retr_rd(b"A: b\n>"), b"A: b\r\n>\r\n");
        assert_eq!(retr_rd(b"A: b\n>>Fro"), b"A: b\r\n>>Fro\r\n");
        assert_eq!(retr_rd(b">From x"), b"From x\r\n");
        assert_eq!(
            transmit_size(b"A: b\n>>Fro", MboxFormat::Mboxrd),
            b"A: b\r\n>>Fro\r\n".len() as u64
        );
    }

    #[test]
    fn top_sends_headers_blank_line_and_k_lines() {
        let msg = b"A: b\nC: d\n\n1\n2\n3\n";
        assert_eq!(top(msg, 0), b"A: b\r\nC: d\r\n\r\n");
        assert_eq!(top(msg, 2), b"A: b\r\nC: d\r\n\r\n1\r\n2\r\n");
        assert_eq!(top(msg, 99), retr(msg));
        // No body, no blank line: the headers.
        assert_eq!(top(b"A: b\nC: d\n", 0), b"A: b\r\nC: d\r\n");
        assert_eq!(top(b"A: b\nC: d", 5), b"A: b\r\nC: d\r\n");
        // The k-th line without a final newline.
        assert_eq!(top(b"A: b\n\n1\n2", 2), b"A: b\r\n\r\n1\r\n2\r\n");
    }

    #[test]
    fn top_stops_early() {
        let mut enc = Encoder::new(EncodeOptions {
            format: MboxFormat::Mboxo,
            top: Some(1),
        });
        let mut out = Vec::new();
        enc.feed(b"A: b\n\n1\n2\n", &mut out);
        assert!(enc.done());
        enc.feed(b"more\n", &mut out);
        enc.finish(&mut out);
        assert_eq!(out, b"A: b\r\n\r\n1\r\n");
    }

    #[test]
    fn chunking_does_not_matter() {
        let msgs: [&[u8]; 4] = [
            b"Status: RO\r\nSubject: x\r\n\r\n>>From y\r\n.dot\r\nbare\rcr\r\nend\r",
            b"X-Keywords: a\n b\nA: b\n\r\n>From \n>\n.\n",
            b"Content-Length: 3\nSubject: a long subject line well past sixteen bytes\n\nabc",
            b"A\nB\r\n\n\n.\r",
        ];
        for msg in msgs {
            for format in [MboxFormat::Mboxo, MboxFormat::Mboxrd] {
                for top in [None, Some(0), Some(1), Some(3)] {
                    let opts = EncodeOptions { format, top };
                    assert_eq!(
                        retr_bytewise(msg, opts),
                        encode_bytes(msg, opts),
                        "{msg:?} {opts:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn size_equals_output_and_encode_to_streams() {
        let mut msg = b"Subject: big\nStatus: O\n\n".to_vec();
        for i in 0..20_000 {
            msg.extend_from_slice(format!(".line {i}\r\n>From x\nlong\r").as_bytes());
        }
        for format in [MboxFormat::Mboxo, MboxFormat::Mboxrd] {
            let mut out = Vec::new();
            let n = encode_to(&msg[..], EncodeOptions::retr(format), &mut out).expect("in memory");
            assert_eq!(n, out.len() as u64);
            // Stuffing dots are sent but are not part of the size.
            assert_eq!(unstuffed_len(&out), transmit_size(&msg, format));
            assert_eq!(out, encode_bytes(&msg, EncodeOptions::retr(format)));
        }
    }

    #[test]
    fn private_header_names() {
        assert!(is_private_header(b"status"));
        assert!(is_private_header(b"X-IMAPBASE"));
        assert!(is_private_header(b"Content-Length \t"));
        assert!(!is_private_header(b"X-UIDL"));
        assert!(!is_private_header(b"Subject"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Bytes rich in the characters the encoder cares about.
        fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"\r"[..]),
                Just(&b"."[..]),
                Just(&b">"[..]),
                Just(&b"From "[..]),
                Just(&b"Status: RO"[..]),
                Just(&b"X-Keywords:"[..]),
                Just(&b" "[..]),
                Just(&b"\t"[..]),
                Just(&b"Subject: x"[..]),
                Just(&b"\0\xff"[..]),
                Just(&b"abc"[..]),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|p| p.concat())
        }

        fn opts() -> impl Strategy<Value = EncodeOptions> {
            (
                prop_oneof![Just(MboxFormat::Mboxo), Just(MboxFormat::Mboxrd)],
                prop::option::of(0u64..5),
            )
                .prop_map(|(format, top)| EncodeOptions { format, top })
        }

        proptest! {
            #[test]
            fn chunking_never_changes_output(
                msg in message_bytes(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
                opts in opts(),
            ) {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(msg.len() + 1)).collect();
                cuts.sort_unstable();
                let mut enc = Encoder::new(opts);
                let mut out = Vec::new();
                let mut prev = 0;
                for c in cuts.into_iter().chain([msg.len()]) {
                    enc.feed(&msg[prev..c], &mut out);
                    prev = c;
                }
                enc.finish(&mut out);
                prop_assert_eq!(&out, &encode_bytes(&msg, opts));
            }

            #[test]
            fn block_encoding_equals_the_state_machine(
                msg in message_bytes(),
                cut in any::<prop::sample::Index>(),
                opts in opts(),
            ) {
                let cut = cut.index(msg.len() + 1);
                let mut fast = Encoder::new(opts);
                let mut a = Vec::new();
                fast.feed(&msg[..cut], &mut a);
                fast.feed(&msg[cut..], &mut a);
                fast.finish(&mut a);
                let mut slow = Encoder::new(opts);
                let mut b = Vec::new();
                slow.feed_into(&msg[..cut], &mut b);
                slow.feed_into(&msg[cut..], &mut b);
                slow.finish_into(&mut b);
                prop_assert_eq!(a, b);
            }

            #[test]
            fn output_is_well_formed_and_sized(msg in message_bytes(), opts in opts()) {
                let out = encode_bytes(&msg, opts);
                prop_assert!(out.is_empty() || out.ends_with(b"\r\n"));
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\n' {
                        prop_assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {}", i);
                    }
                }
                // Every line that starts with a dot was stuffed.
                for line in out.split(|&b| b == b'\n') {
                    if line.first() == Some(&b'.') {
                        prop_assert!(line.starts_with(b".."));
                    }
                }
                if opts.top.is_none() {
                    prop_assert_eq!(unstuffed_len(&out), transmit_size(&msg, opts.format));
                    let mut w = Vec::new();
                    prop_assert_eq!(encode_to(&msg[..], opts, &mut w).ok(), Some(out.len() as u64));
                    prop_assert_eq!(w, out);
                } else {
                    // TOP output is a prefix of RETR output.
                    let full = encode_bytes(&msg, EncodeOptions::retr(opts.format));
                    prop_assert!(full.starts_with(&out));
                }
            }
        }
    }
}
