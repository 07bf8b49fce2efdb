//! The bounded line reader over an in-memory source with arbitrary chunking, injected
//! timeouts/interrupts, per-call caps and STLS-style buffer discards.
//!
//! Input: `[ncaps, caps..., nchunks, chunks..., data...]`. A cap byte of 255 means "discard
//! the buffer" (STLS) instead of reading; a chunk byte of 0 or 1 injects `Interrupted` or
//! `WouldBlock`, other values are read sizes.
//!
//! Invariants: no panic; a returned line never exceeds the cap in force for that call; bytes
//! are conserved: every line is exactly the next bytes of the stream up to an LF or CRLF,
//! `TooLong` is reported exactly for lines over the cap, `Eof { partial }` exactly when an
//! unterminated tail remains; `buffered_len`/`has_buffered_line` describe exactly the bytes
//! handed out but not yet returned.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use mboxpopd::transport::line_reader::{Event, LineReader, ReadError};

struct Source<'a> {
    data: &'a [u8],
    given: usize,
    chunks: &'a [u8],
    next: usize,
}

impl Read for Source<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let c = if self.chunks.is_empty() {
            64
        } else {
            self.chunks[self.next % self.chunks.len()]
        };
        self.next += 1;
        match c {
            // Never fail twice in a row, so every call makes progress.
            0 | 1 if self.next % 2 == 0 => {
                return Err(if c == 0 {
                    io::ErrorKind::Interrupted.into()
                } else {
                    io::ErrorKind::WouldBlock.into()
                })
            }
            _ => {}
        }
        let n = (c as usize)
            .max(1)
            .min(out.len())
            .min(self.data.len() - self.given);
        out[..n].copy_from_slice(&self.data[self.given..self.given + n]);
        self.given += n;
        Ok(n)
    }
}

fn take<'a>(input: &mut &'a [u8]) -> &'a [u8] {
    let Some((&n, rest)) = input.split_first() else {
        return &[];
    };
    let n = (n as usize).min(rest.len());
    let (head, tail) = rest.split_at(n);
    *input = tail;
    head
}

fuzz_target!(|input: &[u8]| {
    let mut input = input;
    let caps = take(&mut input);
    let chunks = take(&mut input);
    let data = input;
    let cap_at = |i: usize| -> Option<usize> {
        if caps.is_empty() {
            return Some(16);
        }
        match caps[i % caps.len()] {
            255 => None,
            // Small caps exercise the over-long path, a few large ones the buffer growth.
            c if c >= 250 => Some(5000 + (c as usize - 250) * 1000),
            c => Some(c as usize),
        }
    };

    let mut src = Source {
        data,
        given: 0,
        chunks,
        next: 0,
    };
    let mut reader = LineReader::new();
    let mut cursor = 0usize; // bytes of `data` accounted for
    let mut max_cap = 0usize;
    let mut call = 0usize;
    let mut errors = 0usize;
    loop {
        let Some(cap) = cap_at(call) else {
            call += 1;
            reader.discard_buffered();
            assert_eq!(reader.buffered_len(), 0);
            assert!(!reader.has_buffered_line());
            cursor = src.given;
            if call > 4 * data.len() + 64 {
                return; // only discards: nothing more to check
            }
            continue;
        };
        max_cap = max_cap.max(cap);
        let rest = &data[cursor..];
        let line_len = memchr_lf(rest);
        match reader.read_line(&mut src, cap) {
            Ok(Event::Line(l)) => {
                assert!(l.len() <= cap, "line of {} over cap {cap}", l.len());
                let lf = line_len.expect("a line was returned, so an LF was there");
                let content = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
                assert_eq!(l, content, "line is not the next bytes of the stream");
                cursor += lf + 1;
            }
            Ok(Event::TooLong) => {
                let lf = line_len.expect("TooLong is reported at a line end");
                let content = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
                assert!(
                    content.len() > cap,
                    "line of {} reported too long for cap {cap}",
                    content.len()
                );
                cursor += lf + 1;
            }
            Err(ReadError::Eof { partial }) => {
                assert_eq!(src.given, data.len());
                assert!(line_len.is_none(), "EOF with a complete line unread");
                assert_eq!(partial, !rest.is_empty());
                assert_eq!(reader.buffered_len(), 0);
                return;
            }
            Err(ReadError::Timeout | ReadError::Interrupted) => {
                // The driver repeats the call with the same cap.
                errors += 1;
                assert!(errors <= 4 * data.len() + 64, "no progress");
                continue;
            }
            Err(ReadError::Io(e)) => panic!("unexpected error {e}"),
        }
        call += 1;
        // What is buffered is exactly what was handed out and not yet returned.
        assert_eq!(reader.buffered_len(), src.given - cursor);
        assert_eq!(
            reader.has_buffered_line(),
            data[cursor..src.given].contains(&b'\n')
        );
        assert!(reader.buffered_len() <= max_cap + 1 + 4096 + 255);
    }
});

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}
