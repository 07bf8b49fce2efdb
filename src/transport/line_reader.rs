//! A bounded line reader for POP3 command lines.
//!
//! The reader owns only its buffer, not the byte source: the connection driver has to write
//! responses to the same stream between reads (and a TLS stream cannot be split into halves),
//! so the source is lent to [`LineReader::read_line`] for each call.
//!
//! Lines end in LF or CRLF. The caller gives the cap for each line (the session knows whether a
//! SASL exchange allows a longer one). A line over the cap is consumed up to its line end without
//! being buffered and reported as [`Event::TooLong`], so memory stays bounded whatever the peer
//! sends and the stream resynchronises at the next line end.

use std::io::{self, Read};

use memchr::memchr;

/// Bytes asked from the source per read; larger caps grow the buffer as needed.
const READ_CHUNK: usize = 4096;

/// What one call to [`LineReader::read_line`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete line, without its LF or CRLF.
    Line(&'a [u8]),
    /// A line longer than the cap was consumed up to and including its line end.
    TooLong,
}

/// Why no line could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the stream. `partial` says whether an unterminated line was dropped.
    Eof {
        partial: bool,
    },
    /// The source reported a read timeout (`WouldBlock` / `TimedOut`).
    Timeout,
    /// A signal interrupted the read; buffered data is kept and the call may be repeated.
    Interrupted,
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Eof { .. } => write!(f, "end of stream"),
            ReadError::Timeout => write!(f, "read timed out"),
            ReadError::Interrupted => write!(f, "read interrupted"),
            ReadError::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// `buf[start..scanned]` is known to hold no LF, so searches resume where they stopped.
    scanned: usize,
    /// Inside an over-long line: bytes are dropped until the next LF.
    discarding: bool,
}

impl LineReader {
    pub fn new() -> Self {
        LineReader::default()
    }

    /// Read the next line of at most `cap` bytes (line end excluded) from `src`.
    pub fn read_line<R: Read + ?Sized>(
        &mut self,
        src: &mut R,
        cap: usize,
    ) -> Result<Event<'_>, ReadError> {
        loop {
            if let Some(pos) = memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let lf = self.scanned + pos;
                let line_start = self.start;
                self.start = lf + 1;
                self.scanned = self.start;
                if self.discarding {
                    self.discarding = false;
                    return Ok(Event::TooLong);
                }
                let mut line_end = lf;
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                // The cap may have shrunk since these bytes were buffered.
                if line_end - line_start > cap {
                    return Ok(Event::TooLong);
                }
                return Ok(Event::Line(&self.buf[line_start..line_end]));
            }
            self.scanned = self.end;
            // No LF yet. Beyond cap + 1 bytes (room for a CR) the line is certainly too long.
            if self.discarding || self.end - self.start > cap.saturating_add(1) {
                self.discarding = true;
                self.start = 0;
                self.end = 0;
                self.scanned = 0;
            }
            self.make_room();
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    let partial = self.discarding || self.end > self.start;
                    self.discard_buffered();
                    return Err(ReadError::Eof { partial });
                }
                Ok(n) => self.end += n,
                Err(e) => {
                    return Err(match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadError::Timeout,
                        io::ErrorKind::Interrupted => ReadError::Interrupted,
                        _ => ReadError::Io(e),
                    })
                }
            }
        }
    }

    /// Whether a complete line is already buffered, i.e. the client pipelined another command
    /// and the driver may hold its output back to batch the responses.
    pub fn has_buffered_line(&self) -> bool {
        memchr(b'\n', &self.buf[self.scanned..self.end]).is_some()
    }

    /// Drop everything buffered. After STLS, bytes the client sent before the handshake were
    /// sent in plaintext and must not be taken as commands (CVE-2011-0411).
    pub fn discard_buffered(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scanned = 0;
        self.discarding = false;
    }

    /// Bytes received but not yet returned as lines.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// Ensure free space after `end`, compacting first. Reads happen only when no LF is
    /// buffered, and then at most `cap + 1` bytes are, so the buffer stays under
    /// `cap + 1 + READ_CHUNK` bytes.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        let want = self.end + READ_CHUNK;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A source that hands out its data in fixed pieces, then EOF.
    struct Chunked {
        pieces: Vec<Vec<u8>>,
        next: usize,
    }

    impl Chunked {
        fn new(data: &[u8], sizes: &[usize]) -> Self {
            let mut pieces = Vec::new();
            let mut rest = data;
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes
                    .get(i % sizes.len().max(1))
                    .copied()
                    .unwrap_or(1)
                    .max(1);
                let n = n.min(rest.len());
                pieces.push(rest[..n].to_vec());
                rest = &rest[n..];
                i += 1;
            }
            Chunked { pieces, next: 0 }
        }
    }

    impl Read for Chunked {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.pieces.get_mut(self.next) else {
                return Ok(0);
            };
            let n = piece.len().min(out.len());
            out[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.next += 1;
            }
            Ok(n)
        }
    }

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Got {
        Line(Vec<u8>),
        TooLong,
        Eof(bool),
    }

    fn collect<R: Read>(src: &mut R, cap: usize) -> Vec<Got> {
        let mut r = LineReader::new();
        let mut out = Vec::new();
        loop {
            match r.read_line(src, cap) {
                Ok(Event::Line(l)) => out.push(Got::Line(l.to_vec())),
                Ok(Event::TooLong) => out.push(Got::TooLong),
                Err(ReadError::Eof { partial }) => {
                    out.push(Got::Eof(partial));
                    return out;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }

    /// The specification the reader must meet, written the obvious way.
    fn model(data: &[u8], cap: usize) -> Vec<Got> {
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let mut line = &rest[..pos];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            out.push(if line.len() > cap {
                Got::TooLong
            } else {
                Got::Line(line.to_vec())
            });
            rest = &rest[pos + 1..];
        }
        out.push(Got::Eof(!rest.is_empty()));
        out
    }

    #[test]
    fn crlf_and_bare_lf() {
        let got = collect(&mut &b"USER a\r\nPASS b\nQUIT\r\n"[..], 1024);
        assert_eq!(
            got,
            vec![
                Got::Line(b"USER a".to_vec()),
                Got::Line(b"PASS b".to_vec()),
                Got::Line(b"QUIT".to_vec()),
                Got::Eof(false)
            ]
        );
    }

    #[test]
    fn cap_is_exclusive_of_line_end() {
        let got = collect(&mut &b"abcd\r\nabcde\r\nabc\n"[..], 4);
        assert_eq!(
            got,
            vec![
                Got::Line(b"abcd".to_vec()),
                Got::TooLong,
                Got::Line(b"abc".to_vec()),
                Got::Eof(false)
            ]
        );
    }

    #[test]
    fn huge_line_is_skipped_with_bounded_memory() {
        let mut data = vec![b'x'; 1 << 20];
        data.extend_from_slice(b"\r\nNOOP\r\n");
        let mut src = Chunked::new(&data, &[65536]);
        let mut r = LineReader::new();
        assert_eq!(r.read_line(&mut src, 1024).expect("ok"), Event::TooLong);
        assert!(
            r.buf.len() <= 1024 + 2 + READ_CHUNK,
            "buffer {}",
            r.buf.len()
        );
        assert_eq!(
            r.read_line(&mut src, 1024).expect("ok"),
            Event::Line(b"NOOP")
        );
    }

    #[test]
    fn unterminated_tail_is_reported_as_partial_eof() {
        assert_eq!(
            collect(&mut &b"NOOP\r\nQUI"[..], 10),
            vec![Got::Line(b"NOOP".to_vec()), Got::Eof(true)]
        );
        assert_eq!(collect(&mut &b""[..], 10), vec![Got::Eof(false)]);
    }

    #[test]
    fn timeouts_and_interrupts_are_distinct_and_keep_data() {
        struct Script(Vec<io::Result<Vec<u8>>>);
        impl Read for Script {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let data = self.0.remove(0)?;
                out[..data.len()].copy_from_slice(&data);
                Ok(data.len())
            }
        }
        let mut src = Script(vec![
            Ok(b"NO".to_vec()),
            Err(io::ErrorKind::WouldBlock.into()),
            Ok(b"OP".to_vec()),
            Err(io::ErrorKind::Interrupted.into()),
            Ok(b"\r\n".to_vec()),
            Err(io::ErrorKind::TimedOut.into()),
            Err(io::ErrorKind::ConnectionReset.into()),
        ]);
        let mut r = LineReader::new();
        assert!(matches!(
            r.read_line(&mut src, 100),
            Err(ReadError::Timeout)
        ));
        assert!(matches!(
            r.read_line(&mut src, 100),
            Err(ReadError::Interrupted)
        ));
        assert_eq!(
            r.read_line(&mut src, 100).expect("line"),
            Event::Line(b"NOOP")
        );
        assert!(matches!(
            r.read_line(&mut src, 100),
            Err(ReadError::Timeout)
        ));
        assert!(matches!(r.read_line(&mut src, 100), Err(ReadError::Io(_))));
        assert!(matches!(
            r.read_line(&mut src, 100),
            Err(ReadError::Eof { partial: false })
        ));
    }

    #[test]
    fn buffered_lines_and_stls_discard() {
        let mut src = &b"STLS\r\nUSER evil\r\nPASS x\r\n"[..];
        let mut r = LineReader::new();
        assert_eq!(
            r.read_line(&mut src, 100).expect("line"),
            Event::Line(b"STLS")
        );
        assert!(r.has_buffered_line());
        r.discard_buffered();
        assert!(!r.has_buffered_line());
        assert_eq!(r.buffered_len(), 0);
        assert!(matches!(
            r.read_line(&mut src, 100),
            Err(ReadError::Eof { partial: false })
        ));
    }

    #[test]
    fn has_buffered_line_ignores_partial_lines() {
        let mut src = &b"NOOP\r\nSTA"[..];
        let mut r = LineReader::new();
        assert_eq!(
            r.read_line(&mut src, 100).expect("line"),
            Event::Line(b"NOOP")
        );
        assert!(!r.has_buffered_line());
        assert_eq!(r.buffered_len(), 3);
    }

    #[test]
    fn larger_cap_for_sasl_then_smaller_again() {
        let long = vec![b'A'; 3000];
        let mut data = long.clone();
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\r\n");
        let mut src = &data[..];
        let mut r = LineReader::new();
        assert_eq!(
            r.read_line(&mut src, 4096).expect("ok"),
            Event::Line(&long[..])
        );
        assert_eq!(r.read_line(&mut src, 1024).expect("ok"), Event::TooLong);
    }

    proptest! {
        /// Any byte stream, cut into arbitrary chunks, gives the lines the model gives.
        #[test]
        fn chunking_does_not_matter(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), any::<u8>()], 0..3000),
            sizes in proptest::collection::vec(1usize..700, 1..20),
            cap in 0usize..600,
        ) {
            let want = model(&data, cap);
            prop_assert_eq!(collect(&mut Chunked::new(&data, &sizes), cap), want);
        }

        /// Lines of ordinary commands survive any chunking byte for byte.
        #[test]
        fn command_lines_round_trip(
            lines in proptest::collection::vec("[ -~]{0,80}", 0..20),
            crlf in any::<bool>(),
            sizes in proptest::collection::vec(1usize..50, 1..10),
        ) {
            let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut data = Vec::new();
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
                data.extend_from_slice(end);
            }
            let got = collect(&mut Chunked::new(&data, &sizes), 255);
            let mut want: Vec<Got> = lines.iter().map(|l| Got::Line(l.as_bytes().to_vec())).collect();
            want.push(Got::Eof(false));
            prop_assert_eq!(got, want);
        }
    }
}
