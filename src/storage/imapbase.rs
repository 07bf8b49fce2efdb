//! Carrying the mailbox's UIDVALIDITY header over to the new first message.
//!
//! Without a pseudo message, the UIDVALIDITY lives only in the `X-IMAPbase:` (or `X-IMAP:`)
//! field of the first message, where our `imap`/`dovecot-uid` schemes, Dovecot and UW c-client
//! all look for it. Dovecot and c-client move the field when they expunge that message; so do
//! we, inside the same journalled rewrite (`commit::rewrite`): the field, its value bytes
//! unchanged and folded lines included, is inserted where Dovecot 2.3 and c-client put it:
//! right before the message's block of mail-program fields (its first `X-UID:`, `Status:`,
//! `X-Status:` or `X-Keywords:`; c-client writes `X-IMAPbase` first in that block, and Dovecot
//! 2.3.19 moved it in front of `X-UID` when it expunged message 1 of
//! `uidl-headers.dovecot-rewritten.mbox`), else at the end of the header section (where
//! Dovecot appends missing fields). It takes the line ending of the line before it. The field is mailbox-private: hidden from clients and left out of sizes and
//! every UIDL scheme's hash, so nothing a client sees changes.
//!
//! [`HeaderScan`] and [`plan`] are pure; [`plan_for_commit`] only reads the two header
//! sections from the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::index::{is_from_line, Index};
use super::uidl;

/// Longest field (all its lines) carried over; longer ones are left where they are. Dovecot
/// wraps keyword lists at 1 KiB, so real fields are far shorter.
const FIELD_CAP: usize = 64 * 1024;
/// Longest From_ line looked at (as `index::is_from_line` accepts).
const FROM_LINE_MAX: usize = 4096;
/// Bytes read at a time while scanning a header section.
const READ_CHUNK: usize = 64 * 1024;

/// The field name of a header line, by the indexer's rule: a colon within the first 16 bytes,
/// blanks before it tolerated.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let probe = &line[..line.len().min(16)];
    memchr::memchr(b':', probe).map(|colon| line[..colon].trim_ascii_end())
}

fn is_imap_field_name(line: &[u8]) -> bool {
    field_name(line)
        .is_some_and(|n| n.eq_ignore_ascii_case(b"X-IMAPbase") || n.eq_ignore_ascii_case(b"X-IMAP"))
}

/// The per-message fields Dovecot and c-client keep together (and write `X-IMAPbase` before).
fn is_status_field_name(line: &[u8]) -> bool {
    field_name(line).is_some_and(|n| {
        [&b"X-UID"[..], b"Status", b"X-Status", b"X-Keywords"]
            .iter()
            .any(|f| n.eq_ignore_ascii_case(f))
    })
}

/// What a header section holds, as far as the carry-over is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderInfo {
    /// The first `X-IMAPbase:`/`X-IMAP:` field with its folded lines, as stored; `None` when
    /// there is none or it is longer than [`FIELD_CAP`].
    pub field: Option<Vec<u8>>,
    /// Whether any `X-IMAPbase:`/`X-IMAP:` field is present.
    pub has_field: bool,
    /// Offset (from the start of the header section) of the empty line that ends it.
    pub end: Option<u64>,
    /// Bytes scanned (the whole region when no empty line was found).
    pub scanned: u64,
    /// The last line seen ended with a line end (vacuously true for no lines).
    pub last_complete: bool,
    /// The last complete line ended with CRLF; `None`: no complete line.
    pub last_crlf: Option<bool>,
    /// The first `X-UID:`/`Status:`/`X-Status:`/`X-Keywords:` line: its offset, and whether
    /// the line before it ended with CRLF (`None`: it is the first line).
    pub status: Option<(u64, Option<bool>)>,
}

/// A streaming scanner of a header section (the bytes after the From_ line), fed in fragments
/// of any size; memory is bounded by [`FIELD_CAP`].
#[derive(Debug, Clone, Default)]
pub struct HeaderScan {
    info: HeaderInfo,
    /// The current line's first bytes (up to [`FIELD_CAP`]) and its full length so far.
    line: Vec<u8>,
    line_len: u64,
    capturing: bool,
    /// The first field was seen but is too long to carry.
    too_long: bool,
}

impl HeaderScan {
    pub fn new() -> Self {
        HeaderScan {
            info: HeaderInfo {
                last_complete: true,
                ..HeaderInfo::default()
            },
            ..HeaderScan::default()
        }
    }

    /// Whether the empty line ending the header section has been seen (feed no more).
    pub fn done(&self) -> bool {
        self.info.end.is_some()
    }

    /// Feed the next bytes of the section. Bytes after its end are ignored.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.done() {
            let (part, complete) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..=i], true),
                None => (bytes, false),
            };
            let room = FIELD_CAP.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            self.line_len += part.len() as u64;
            bytes = &bytes[part.len()..];
            if complete {
                self.line_done(true);
            }
        }
    }

    /// The end of the region: a last line without line end is classified too.
    pub fn finish(mut self) -> HeaderInfo {
        if self.line_len > 0 && !self.done() {
            self.line_done(false);
        }
        if self.too_long {
            self.info.field = None;
        }
        self.info
    }

    fn line_done(&mut self, complete: bool) {
        let line = std::mem::take(&mut self.line);
        let len = std::mem::take(&mut self.line_len);
        let truncated = len > line.len() as u64;
        if complete && (line == b"\n" || line == b"\r\n") {
            self.info.end = Some(self.info.scanned);
            return;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if self.capturing {
                let field = self.info.field.get_or_insert_with(Vec::new);
                if truncated || field.len() + line.len() > FIELD_CAP {
                    self.too_long = true;
                    self.capturing = false;
                } else {
                    field.extend_from_slice(&line);
                }
            }
        } else {
            self.capturing = false;
            if self.info.status.is_none() && is_status_field_name(&line) {
                self.info.status = Some((self.info.scanned, self.info.last_crlf));
            }
            if is_imap_field_name(&line) {
                if !self.info.has_field {
                    // Only the first occurrence counts, as for the indexer.
                    self.capturing = !truncated;
                    self.too_long = truncated;
                    self.info.field = Some(line.clone());
                }
                self.info.has_field = true;
            }
        }
        self.info.scanned += len;
        self.info.last_complete = complete;
        if complete {
            self.info.last_crlf = Some(line.ends_with(b"\r\n"));
        }
    }
}

/// The UIDVALIDITY a captured field announces, read the way the indexer reads it (the value
/// after the colon, folded lines joined without their line ends).
pub fn field_uidvalidity(field: &[u8]) -> Option<u32> {
    let colon = memchr::memchr(b':', field)?;
    let mut value = Vec::with_capacity(field.len());
    for line in field[colon + 1..].split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        value.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    uidl::parse_uidvalidity(&value)
}

/// `field` with every line ended by LF or CRLF as asked; the value bytes stay as they are.
pub fn with_line_ends(field: &[u8], crlf: bool) -> Vec<u8> {
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(field.len() + 8);
    for line in field.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(eol);
    }
    out
}

/// Bytes to insert into a message's header section: where (from the section's start) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    pub at: u64,
    pub bytes: Vec<u8>,
}

/// What to insert into the target's header section so it carries the carrier's UIDVALIDITY
/// field; `None` when there is nothing to carry (no field, or one that does not parse) or the
/// target already has such a field. `target_from_crlf` is the line end of the target's From_
/// line (`None`: it has none, so nothing can follow it).
pub fn plan(
    carrier: &HeaderInfo,
    target: &HeaderInfo,
    target_from_crlf: Option<bool>,
) -> Option<Insertion> {
    let field = carrier.field.as_deref()?;
    field_uidvalidity(field)?;
    let from_crlf = target_from_crlf?;
    if target.has_field {
        return None;
    }
    let (at, crlf) = match (target.status, target.end) {
        // Before the mail-program fields, in the style of the line before it.
        (Some((at, before)), _) => (at, before.unwrap_or(from_crlf)),
        // Before the empty line, likewise.
        (None, Some(end)) => (end, target.last_crlf.unwrap_or(from_crlf)),
        // No empty line: after the last header line if it is complete, else right after the
        // From_ line (the only line end we can rely on).
        (None, None) if target.last_complete => {
            (target.scanned, target.last_crlf.unwrap_or(from_crlf))
        }
        (None, None) => (0, from_crlf),
    };
    Some(Insertion {
        at,
        bytes: with_line_ends(field, crlf),
    })
}

/// Scan `[from, to)` of `file` as a header section.
fn scan_file(file: &File, from: u64, to: u64) -> io::Result<HeaderInfo> {
    let mut scan = HeaderScan::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut pos = from;
    while pos < to && !scan.done() {
        let n = buf.len().min((to - pos) as usize);
        file.read_exact_at(&mut buf[..n], pos)?;
        scan.feed(&buf[..n]);
        pos += n as u64;
    }
    Ok(scan.finish())
}

/// The line end of the From_ line that ends right before `header_offset`.
fn from_line_crlf(file: &File, from_offset: u64, header_offset: u64) -> io::Result<Option<bool>> {
    let n = (header_offset - from_offset).min(2) as usize;
    let mut tail = [0u8; 2];
    file.read_exact_at(&mut tail[..n], header_offset - n as u64)?;
    let tail = &tail[..n];
    Ok(tail.ends_with(b"\n").then(|| tail.ends_with(b"\r\n")))
}

/// For a commit that deletes `deleted` (indices into `index.messages`, sorted): the bytes to
/// insert, at an absolute file offset, so that the new first message carries the UIDVALIDITY
/// field of the deleted first one. The new first message is the first kept one, or else the
/// first message appended since indexing (at `index.length`, the file being `old_len` bytes
/// now).
pub fn plan_for_commit(
    file: &File,
    index: &Index,
    deleted: &[usize],
    old_len: u64,
) -> io::Result<Option<Insertion>> {
    let messages = &index.messages;
    let indexed_len = index.length;
    let Some(first) = messages.first() else {
        return Ok(None);
    };
    // A pseudo message holds the UIDVALIDITY for good and is never deleted.
    if first.hidden || deleted.first() != Some(&0) {
        return Ok(None);
    }
    let carrier = scan_file(file, first.header_offset(), index.end_offset(0))?;
    if carrier.field.is_none() {
        return Ok(None);
    }
    let kept = (0..messages.len()).find(|i| deleted.binary_search(i).is_err());
    let (from_offset, header_offset, end) = match kept {
        Some(i) => {
            let m = &messages[i];
            (m.from_offset, m.header_offset(), index.end_offset(i))
        }
        None if old_len > indexed_len => {
            // Mail delivered during the session: its From_ line starts right at the indexed
            // length (MDAs write whole messages under the locks we hold now).
            let n = (old_len - indexed_len).min(FROM_LINE_MAX as u64) as usize;
            let mut head = vec![0u8; n];
            file.read_exact_at(&mut head, indexed_len)?;
            let Some(eol) = memchr::memchr(b'\n', &head) else {
                return Ok(None);
            };
            if !is_from_line(&head[..=eol]) {
                return Ok(None);
            }
            (indexed_len, indexed_len + eol as u64 + 1, old_len)
        }
        None => return Ok(None),
    };
    let target = scan_file(file, header_offset, end)?;
    let from_crlf = from_line_crlf(file, from_offset, header_offset)?;
    let Some(ins) = plan(&carrier, &target, from_crlf) else {
        return Ok(None);
    };
    let at = header_offset + ins.at;
    // The rewrite inserts in place, reading ahead of what it writes: the bytes removed before
    // the insertion point must outnumber the inserted ones. The deleted first message holds
    // the same field and a From_ line, so only a pathological field can fail this.
    let removed_before: u64 = deleted
        .iter()
        .map(|&i| (messages[i].from_offset, index.next_offset(i)))
        .filter(|&(_, next)| next <= at)
        .map(|(from, next)| next - from)
        .sum();
    if ins.bytes.len() as u64 >= removed_before {
        log::warn!("the X-IMAPbase field is too long to carry over; left out");
        return Ok(None);
    }
    Ok(Some(Insertion {
        at,
        bytes: ins.bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(bytes: &[u8]) -> HeaderInfo {
        let mut s = HeaderScan::new();
        s.feed(bytes);
        s.finish()
    }

    #[test]
    fn finds_the_field_the_end_and_the_line_ends() {
        let h = b"Subject: x\nX-IMAPbase: 1795673851 0000000014\nX-UID: 1   \nStatus: RO\n\nbody\nX-IMAP: 9 9\n";
        let info = scan(h);
        assert_eq!(
            info.field.as_deref(),
            Some(&b"X-IMAPbase: 1795673851 0000000014\n"[..])
        );
        assert!(info.has_field);
        let blank = h.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
        assert_eq!(info.end, Some(blank as u64));
        assert_eq!(info.last_crlf, Some(false));
        let crlf = scan(b"A: 1\r\nx-imap : 5 6\r\n\tkw\r\nB: 2\r\n\r\n");
        assert_eq!(
            crlf.field.as_deref(),
            Some(&b"x-imap : 5 6\r\n\tkw\r\n"[..])
        );
        assert_eq!(crlf.end, Some(31));
        assert_eq!(crlf.last_crlf, Some(true));
        assert_eq!(field_uidvalidity(crlf.field.as_deref().unwrap()), Some(5));
    }

    #[test]
    fn only_the_first_field_and_not_in_the_body() {
        let info = scan(b"X-IMAP: 1 2\nX-IMAPbase: 3 4\n\n");
        assert_eq!(info.field.as_deref(), Some(&b"X-IMAP: 1 2\n"[..]));
        let info = scan(b"A: 1\n\nX-IMAPbase: 3 4\n");
        assert!(!info.has_field && info.field.is_none());
        // Look-alikes are not the field.
        let info = scan(b"X-IMAPbasement: 1 2\nX-IMAP-Foo: 1\n\n");
        assert!(!info.has_field);
    }

    #[test]
    fn value_spread_over_folded_lines_parses_like_the_indexer() {
        assert_eq!(
            field_uidvalidity(b"X-IMAPbase:\n 17 0000000002\n"),
            Some(17)
        );
        assert_eq!(field_uidvalidity(b"X-IMAPbase: garbage\n"), None);
    }

    #[test]
    fn plan_places_the_field_like_dovecot_in_the_targets_style() {
        let carrier = scan(b"X-IMAPbase: 1795673851 0000000014 $Junk\nX-UID: 1\n\n");
        let target = scan(b"Subject: two\r\nX-UID: 2\r\n\r\nbody\r\n");
        let ins = plan(&carrier, &target, Some(true)).expect("carried");
        // Right before X-UID, as Dovecot does.
        assert_eq!(ins.at, 14);
        assert_eq!(ins.bytes, b"X-IMAPbase: 1795673851 0000000014 $Junk\r\n");
        let target = scan(b"Subject: two\r\nTo: x\n\r\nbody\r\n");
        let ins = plan(&carrier, &target, Some(true)).expect("carried");
        assert_eq!((ins.at, ins.bytes.ends_with(b"\r\n")), (20, false));
        // The first of the mail-program fields, wherever it is; none of them first.
        let t = scan(b"A: 1\nstatus : RO\nX-Keywords: k\nX-UID: 3\n\n");
        assert_eq!(plan(&carrier, &t, Some(false)).map(|i| i.at), Some(5));
        let t = scan(b"X-Status: A\r\nA: 1\r\n\r\n");
        let ins = plan(&carrier, &t, Some(true)).expect("carried");
        assert_eq!((ins.at, ins.bytes.ends_with(b"\r\n")), (0, true));
        // The target already has one: nothing is added.
        let has = scan(b"X-IMAP: 1 2\n\n");
        assert_eq!(plan(&carrier, &has, Some(false)), None);
        // The carrier has none, or one that does not parse.
        assert_eq!(plan(&scan(b"A: 1\n\n"), &target, Some(true)), None);
        assert_eq!(plan(&scan(b"X-IMAPbase: x\n\n"), &target, Some(true)), None);
        // Headers without an empty line (at EOF): after the last complete line, else after
        // the From_ line.
        let t = scan(b"A: 1\nB: 2\n");
        assert_eq!(t.status, None);
        assert_eq!(plan(&carrier, &t, Some(false)).map(|i| i.at), Some(10));
        let t = scan(b"A: 1\nB: 2");
        assert_eq!(plan(&carrier, &t, Some(true)).map(|i| i.at), Some(0));
        // No header lines at all: the From_ line's style.
        let t = scan(b"\r\nbody\r\n");
        let ins = plan(&carrier, &t, Some(true)).expect("carried");
        assert_eq!((ins.at, ins.bytes.ends_with(b"\r\n")), (0, true));
        // A From_ line without line end (at EOF) takes nothing after it.
        assert_eq!(plan(&carrier, &scan(b""), None), None);
    }

    #[test]
    fn overlong_fields_are_not_carried() {
        let mut h = b"X-IMAPbase: 1 2".to_vec();
        h.extend(std::iter::repeat_n(b'k', FIELD_CAP));
        h.extend_from_slice(b"\n\n");
        let info = scan(&h);
        assert!(info.has_field && info.field.is_none());
        assert_eq!(info.end, Some(h.len() as u64 - 1));
    }

    proptest! {
        #[test]
        fn any_fragmentation_scans_alike(
            lines in proptest::collection::vec(prop_oneof![
                Just(&b"X-IMAPbase: 12 0000000003 kw\n"[..]),
                Just(&b"X-IMAP: 7 8\r\n"[..]),
                Just(&b" folded\n"[..]),
                Just(&b"\tfolded\r\n"[..]),
                Just(&b"Subject: s\n"[..]),
                Just(&b"X-UID: 1\n"[..]),
                Just(&b"Status: RO\r\n"[..]),
                Just(&b"Received: r\r\n"[..]),
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"no colon line\n"[..]),
                Just(&b"partial"[..]),
            ], 0..20),
            cuts in proptest::collection::vec(1usize..9, 1..6),
        ) {
            let bytes = lines.concat();
            let whole = scan(&bytes);
            let mut s = HeaderScan::new();
            let (mut pos, mut k) = (0, 0);
            while pos < bytes.len() {
                let n = cuts[k % cuts.len()].min(bytes.len() - pos);
                s.feed(&bytes[pos..pos + n]);
                pos += n;
                k += 1;
            }
            prop_assert_eq!(s.finish(), whole.clone());
            // The insertion lands on a line start inside the header, and adding it makes the
            // target carry exactly one field, the carrier's.
            let carrier = scan(b"X-IMAPbase: 99 0000000001\n\n");
            if let Some(ins) = plan(&carrier, &whole, Some(false)) {
                let at = ins.at as usize;
                prop_assert!(at == 0 || bytes[at - 1] == b'\n');
                let mut out = bytes[..at].to_vec();
                out.extend_from_slice(&ins.bytes);
                out.extend_from_slice(&bytes[at..]);
                let after = scan(&out);
                prop_assert!(after.has_field);
                prop_assert_eq!(after.field.as_deref().and_then(field_uidvalidity), Some(99));
                prop_assert_eq!(after.end, whole.end.map(|e| e + ins.bytes.len() as u64));
            }
        }
    }
}
