//! Read-ahead for RETR and TOP.
//!
//! Clients that download a mailbox fetch its messages in order, and most messages are far
//! smaller than one read. Reading each one by itself costs a system call and a page-cache
//! walk per message; a read that continues where the last one ended therefore takes
//! [`READ_AHEAD`] bytes at once and the next messages are served from memory. A read that jumps
//! elsewhere (a client reading newest first, or one message) takes just the message, so a
//! random access pattern never reads more than it sends.
//!
//! The bytes held are never past the indexed end, and the caller still checks the file before
//! every message it serves: what is served from memory is what the file held when it was
//! read, below offsets that no legitimate writer changes during a session.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// Bytes read at once when reads are sequential; also the largest message served from memory
/// (larger ones are streamed by the caller).
pub const READ_AHEAD: usize = 64 * 1024;

/// The longest gap between one message's end and the next one's start (the CRLF of the
/// separating empty line).
const SEPARATOR_MAX: u64 = 2;

/// One session's read-ahead buffer. Empty (no allocation) until the first message is read.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// Only `buf[..len]` holds file bytes; the rest is kept allocated so refills do not clear.
    buf: Vec<u8>,
    len: usize,
    /// File offset of `buf[0]`.
    start: u64,
    /// Where the last message served ended: a message starting there (or just past the
    /// separator line) continues a sequence.
    next: Option<u64>,
}

impl ReadAhead {
    /// The bytes `range` of `file`, if the range is at most [`READ_AHEAD`] long; `None` for a
    /// larger message, which the caller streams. `limit` is the indexed end of the file: no
    /// byte at or past it is read. A file shorter than `range.end` gives `UnexpectedEof`.
    pub fn get(&mut self, file: &File, range: Range<u64>, limit: u64) -> io::Result<Option<&[u8]>> {
        debug_assert!(range.start <= range.end && range.end <= limit);
        let len = range.end - range.start;
        // Messages are separated by an empty line: a read that starts just past it continues.
        let sequential = self
            .next
            .is_some_and(|n| (n..=n + SEPARATOR_MAX).contains(&range.start));
        self.next = Some(range.end);
        if len > READ_AHEAD as u64 {
            return Ok(None);
        }
        let held = self.start..self.start + self.len as u64;
        if !(held.start <= range.start && range.end <= held.end) {
            let want = if sequential {
                limit
                    .saturating_sub(range.start)
                    .min(READ_AHEAD as u64)
                    .max(len)
            } else {
                len
            } as usize;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.start = range.start;
            self.len = 0;
            file.read_exact_at(&mut self.buf[..want], range.start)?;
            self.len = want;
        }
        let at = (range.start - self.start) as usize;
        Ok(Some(&self.buf[at..at + len as usize]))
    }

    /// Forget what is held (and free it).
    pub fn clear(&mut self) {
        *self = ReadAhead::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(&data).expect("write");
        (f, data)
    }

    #[test]
    fn serves_the_requested_bytes() {
        let (f, data) = file_of(300_000);
        let mut ra = ReadAhead::default();
        let limit = data.len() as u64;
        for r in [
            0..10,
            10..5000,
            5000..5001,
            5001..70_000,
            70_000..70_000,
            200_000..300_000,
        ] {
            let got = ra.get(f.as_file(), r.clone(), limit).expect("read");
            if r.end - r.start > READ_AHEAD as u64 {
                assert!(got.is_none());
            } else {
                assert_eq!(got.expect("held"), &data[r.start as usize..r.end as usize]);
            }
        }
    }

    #[test]
    fn sequential_reads_come_from_one_read_and_stop_at_the_limit() {
        let (f, data) = file_of(200_000);
        let mut ra = ReadAhead::default();
        ra.get(f.as_file(), 0..1000, 150_000).expect("read");
        // Not sequential yet: only the message was read.
        assert_eq!(ra.len, 1000);
        // The next message starts after a separator line.
        ra.get(f.as_file(), 1001..2000, 150_000).expect("read");
        assert_eq!((ra.start, ra.len), (1001, READ_AHEAD));
        let got = ra.get(f.as_file(), 2000..3000, 150_000).expect("read");
        assert_eq!(got.expect("held"), &data[2000..3000]);
        assert_eq!(ra.start, 1001, "served from memory");
        // Near the limit, the read-ahead stops at it.
        ra.get(f.as_file(), 3000..140_000, 150_000).expect("read");
        let got = ra
            .get(f.as_file(), 140_000..141_000, 150_000)
            .expect("read");
        assert_eq!(got.expect("held"), &data[140_000..141_000]);
        assert_eq!(ra.start + ra.len as u64, 150_000);
    }

    #[test]
    fn backwards_reads_take_only_the_message() {
        let (f, data) = file_of(100_000);
        let mut ra = ReadAhead::default();
        for k in (0..10u64).rev() {
            let r = k * 9000..k * 9000 + 8000;
            let got = ra.get(f.as_file(), r.clone(), 100_000).expect("read");
            assert_eq!(got.expect("held"), &data[r.start as usize..r.end as usize]);
            assert_eq!(ra.len, 8000);
        }
    }

    #[test]
    fn a_shrunk_file_is_an_error_and_nothing_stale_stays() {
        let (f, _) = file_of(100_000);
        let mut ra = ReadAhead::default();
        ra.get(f.as_file(), 0..10, 100_000).expect("read");
        f.as_file().set_len(50_000).expect("truncate");
        let e = ra.get(f.as_file(), 10..20, 100_000).expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(ra.len, 0);
        let e = ra
            .get(f.as_file(), 60_000..60_010, 100_000)
            .expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
