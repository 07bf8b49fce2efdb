//! One-pass mbox indexer.
//!
//! Each [`IndexedMessage`] records where its From_ line starts (`from_offset`), its RFC 1939
//! size, its UIDL, whether it is the hidden c-client/Dovecot pseudo message, and a fingerprint
//! of its From_ line (to detect foreign rewrites); [`IndexedMessage::header_offset`] is
//! derived, and so are [`Index::next_offset`] (the next message's `from_offset`, or the
//! indexed length) and [`Index::end_offset`]. Deleting message i removes exactly the bytes
//! `[from_offset, next_offset)`.
//!
//! # How the file is split
//!
//! The reader is consumed once, in 256 KiB blocks, and cut into lines with memchr; a line
//! longer than the block is handled in fragments, so memory stays O(number of messages)
//! whatever the file holds (NUL bytes, invalid UTF-8, megabyte lines, CRLF or mixed line
//! ends). A big file may be read by several threads at once ([`parallel`]); the result is
//! the same.
//!
//! - The file must start with a line beginning with `From ` (empty lines before it are
//!   tolerated and belong to no message); anything else is [`IndexError::NotMbox`]. A
//!   zero-length file is an empty maildrop.
//! - Later, a message starts at a line that follows an empty line (`\n` or `\r\n`) and passes
//!   [`is_from_line`]. That empty line is the separator: it belongs to neither message
//!   (Dovecot's convention), so `end_offset` is where it starts and `next_offset` where the
//!   From_ line starts. An empty line at the very end of the file is the last separator.
//! - mboxcl/mboxcl2: a `Content-Length:` header is trusted only when the body it delimits is
//!   followed by the end of the file, or by an empty line and then EOF or a valid From_ line
//!   (Dovecot's rule). While inside such a body the indexer also keeps the plain scanning
//!   interpretation running; if the length turns out wrong, that interpretation is used, so a
//!   bad `Content-Length` never hides or merges messages. Messages found by that fallback scan
//!   do not get their own `Content-Length` trusted.
//!
//! Differences from Dovecot 2.3, checked by hand on the same files: Dovecot also splits at a
//! valid From_ line that does *not* follow an empty line (we keep such a line in the body: MDAs
//! always write the empty line, and a body line is more likely than a missing separator), and
//! when the file does not end with an empty line Dovecot drops the last message's final line
//! end, where we keep it. Sizes and splits otherwise agree (see tests/fixtures/README.md).

use std::io::{self, Read};

use crate::sys::line_scan;

pub mod parallel;
pub mod persist;

use crate::storage::encode::{is_private_header, Counter, EncodeOptions, Encoder};
use crate::storage::format::{MboxFormat, UidlFormat};
use crate::storage::uidl::{self, MessageUidl, Uidl, UidlFields};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    pub format: MboxFormat,
    pub uidl: UidlFormat,
}

/// One message of the index: 48 bytes, whatever the scheme (an `X-UIDL` value longer than a
/// digest adds its own heap string). At 100,000 messages the index is the largest allocation
/// of a login, so the small fields share one `u16` ([`IndexedMessage::layout`]) and where a
/// message ends is derived from the next one's `from_offset` ([`Index::next_offset`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedMessage {
    /// First byte of the "From " line.
    pub from_offset: u64,
    /// The RFC 1939 size: octets RETR sends before ".\r\n", byte-stuffing dots not counted.
    pub size: u64,
    /// [`from_line_fingerprint`] of the From_ line's first bytes (line end included, capped
    /// at [`FROM_LINE_CAP`]), to notice that another program rewrote the file.
    pub from_line: u32,
    pub uidl: Uidl,
    /// Bits 0–12: length of the From_ line with its line end (at most [`FROM_LINE_MAX`]);
    /// bits 13–14: `next_offset - end_offset`, the separator line (0, 1 or 2 bytes); bit 15:
    /// the message looks like the pseudo message (it is one only as the first message).
    layout: u16,
    /// The c-client/Dovecot pseudo message: never listed, kept on commit.
    pub hidden: bool,
}

const HEADER_LEN_BITS: u16 = 0x1fff;
const END_GAP_SHIFT: u32 = 13;
const PSEUDO_BIT: u16 = 0x8000;

impl IndexedMessage {
    fn pack_layout(header_len: u64, end_gap: u64, pseudo: bool) -> u16 {
        debug_assert!(header_len <= FROM_LINE_MAX as u64 && end_gap <= 2);
        (header_len.min(u64::from(HEADER_LEN_BITS)) as u16)
            | ((end_gap.min(3) as u16) << END_GAP_SHIFT)
            | if pseudo { PSEUDO_BIT } else { 0 }
    }

    fn header_len(&self) -> u64 {
        u64::from(self.layout & HEADER_LEN_BITS)
    }

    fn end_gap(&self) -> u64 {
        u64::from((self.layout >> END_GAP_SHIFT) & 3)
    }

    fn pseudo(&self) -> bool {
        self.layout & PSEUDO_BIT != 0
    }

    /// First byte after the From_ line's line end.
    pub fn header_offset(&self) -> u64 {
        self.from_offset + self.header_len()
    }

    /// The same message `delta` bytes earlier in the file (after a commit removed bytes
    /// before it).
    pub fn shifted_back(&self, delta: u64) -> IndexedMessage {
        IndexedMessage {
            from_offset: self.from_offset - delta,
            ..self.clone()
        }
    }
}

/// A 32-bit fingerprint (64-bit FNV-1a, halves folded) of `bytes[..FROM_LINE_CAP]`. The mailbox re-reads a message's
/// From_ line before serving or committing it and compares fingerprints to notice that
/// another program rewrote the file; this is a cheap consistency check, not a defence against
/// an adversary (who could only make us serve their own file's bytes anyway).
pub fn from_line_fingerprint(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &bytes[..bytes.len().min(FROM_LINE_CAP)] {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub messages: Vec<IndexedMessage>,
    /// Bytes read (the file length at indexing time).
    pub length: u64,
    /// Where [`index_mbox_from`] continues when the file has only grown; `None`: from scratch.
    resume: Option<Resume>,
    /// UIDVALIDITY of the first message (the IMAP schemes).
    uidvalidity: Option<u32>,
    /// Some UIDLs got an occurrence suffix.
    renamed: bool,
    /// Some message has a `Content-Length:` header (its split may depend on what follows).
    content_length: bool,
    /// Made for an IMAP scheme (UIDLs depend on the first message's UIDVALIDITY).
    imap: bool,
}

/// The first message whose interpretation may depend on bytes past the indexed length: the
/// last one (its end, its Content-Length, a pending separator), or the owner of a
/// Content-Length that reached past the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    message: usize,
    /// Whether that message's Content-Length may be trusted.
    cl_allowed: bool,
}

impl Index {
    /// Where message `i` ends with its separator line: the next message's `from_offset`, or
    /// the indexed length after the last message.
    pub fn next_offset(&self, i: usize) -> u64 {
        self.messages
            .get(i + 1)
            .map_or(self.length, |n| n.from_offset)
    }

    /// End of message `i`'s content (the separator line before the next From_ is excluded).
    pub fn end_offset(&self, i: usize) -> u64 {
        self.next_offset(i) - self.messages[i].end_gap()
    }

    /// The offset from which [`index_mbox_from`] continues this index over a file that only
    /// grew (bytes below [`Index::length`] unchanged), or `None` when it must be indexed from
    /// scratch (no message yet, the file ended inside a line, or UIDLs had to be made unique).
    pub fn resume_offset(&self) -> Option<u64> {
        let r = self.resume?;
        self.messages.get(r.message).map(|m| m.from_offset)
    }

    /// The index of the file after a commit removed `deleted` (sorted message indexes) and
    /// nothing else, when that is exactly what indexing the new file would give: not for the
    /// IMAP schemes when the first message goes (the UIDVALIDITY is read from the first
    /// message), when UIDLs had occurrence suffixes (they may move), or when any message has
    /// a Content-Length (its split depends on the bytes that follow). `None` otherwise: index
    /// the file again. (A commit that moves an X-IMAPbase header is not such a commit either:
    /// the caller does not ask.)
    pub fn without(&self, deleted: &[usize]) -> Option<Index> {
        let first = deleted.first()?;
        if (*first == 0 && self.imap) || self.renamed || self.content_length {
            return None;
        }
        let last = self.messages.len().checked_sub(1)?;
        let mut messages = Vec::with_capacity(self.messages.len() - deleted.len());
        let mut removed = 0u64;
        let mut next = deleted.iter().peekable();
        for (i, m) in self.messages.iter().enumerate() {
            if next.peek() == Some(&&i) {
                next.next();
                removed += self.next_offset(i) - m.from_offset;
                continue;
            }
            let mut m = m.shifted_back(removed);
            // Only the first message can be the pseudo message.
            m.hidden = m.pseudo() && messages.is_empty();
            messages.push(m);
        }
        if next.next().is_some() || messages.is_empty() {
            return None;
        }
        // Without Content-Length headers the resume point is the last message. A file that
        // ended inside a line still does, unless that last message was deleted.
        let resume = (self.resume.is_some() || deleted.last() == Some(&last)).then(|| Resume {
            message: messages.len() - 1,
            cl_allowed: true,
        });
        Some(Index {
            length: self.length - removed,
            messages,
            resume,
            uidvalidity: self.uidvalidity,
            renamed: false,
            content_length: false,
            imap: self.imap,
        })
    }

    /// Heap bytes this index holds (for cache accounting).
    pub fn heap_bytes(&self) -> usize {
        let texts: usize = self
            .messages
            .iter()
            .map(|m| match &m.uidl {
                Uidl::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        self.messages.capacity() * std::mem::size_of::<IndexedMessage>() + texts
    }
}

#[derive(Debug)]
pub enum IndexError {
    /// The file is not an mbox (its first line is not a From_ line).
    NotMbox(String),
    Io(io::Error),
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::NotMbox(m) => write!(f, "not an mbox file: {m}"),
            IndexError::Io(e) => write!(f, "reading the mailbox failed: {e}"),
        }
    }
}

impl std::error::Error for IndexError {}

impl From<io::Error> for IndexError {
    fn from(e: io::Error) -> Self {
        IndexError::Io(e)
    }
}

/// How many bytes of the From_ line are kept in [`IndexedMessage::from_line`].
pub const FROM_LINE_CAP: usize = 256;
/// A longer line is never taken for a From_ line (real ones are well under 1 KiB).
const FROM_LINE_MAX: usize = 4096;
/// Read block size; also the longest line handled in one piece. 256 KiB reads already run
/// at memory speed; a bigger buffer would only add to the peak RSS of a login.
const BLOCK: usize = 256 << 10;
/// Longest header value captured for UIDL schemes and pseudo-message detection.
const CAPTURE_MAX: usize = 1024;
/// The c-client/Dovecot pseudo message's subject.
const PSEUDO_SUBJECT: &[u8] = b"DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA";

const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Whether `line` (with or without its line end) is a From_ line that may start a message.
///
/// The rule, after mutt's `is_from()` and Dovecot's `mbox_from_parse()`: the line starts with
/// `From `, is at most 4 KiB, and somewhere after the sender holds a ctime(3)-style date:
/// a weekday name, a month name, a day number (1–31), a time `h:mm` or `h:mm:ss`, and a year
/// (two or four digits) within the next three tokens, so timezone forms such as
/// `Thu Nov 26 03:32:14 2026`, `Thu Nov 26 03:32:14 UTC 2026` and
/// `Thu Nov 26 03:32 +0100 2026` all pass (names are case-insensitive). An unquoted body line
/// such as "From here on, we agree." after an empty line does not split the message.
pub fn is_from_line(line: &[u8]) -> bool {
    if !line.starts_with(b"From ") || line.len() > FROM_LINE_MAX {
        return false;
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let split = || {
        line[5..]
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|t| !t.is_empty())
    };
    // Every message's From_ line comes here: real ones have a dozen tokens, which fit on the
    // stack; only a longer line pays for a vector.
    const ON_STACK: usize = 32;
    let mut stack: [&[u8]; ON_STACK] = [&[]; ON_STACK];
    let mut n = 0;
    let mut heap = Vec::new();
    for t in split() {
        if n < ON_STACK {
            stack[n] = t;
            n += 1;
        } else {
            heap = split().collect();
            break;
        }
    }
    let tokens: &[&[u8]] = if heap.is_empty() { &stack[..n] } else { &heap };
    // The sender is the first token (possibly empty, e.g. "From  Thu ..."): the date search
    // starts at any later position.
    (0..tokens.len()).any(|i| date_at(&tokens[i..]) || rfc2822_date_at(&tokens[i..]))
}

/// `[Thu,] 26 Nov 2026 03:32:14 [+0000]`: RFC 2822 dates, which some MDAs write on the From_
/// line and Dovecot's parser accepts.
fn rfc2822_date_at(t: &[&[u8]]) -> bool {
    let name_in = |tok: &[u8], names: &[&[u8]]| names.iter().any(|n| n.eq_ignore_ascii_case(tok));
    let t = match t.first() {
        Some(w) if name_in(w.strip_suffix(b",").unwrap_or(w), &DAYS) => &t[1..],
        _ => t,
    };
    t.len() >= 4
        && matches!(number(t[0]), Some(1..=31))
        && t[0].len() <= 2
        && name_in(t[1], &MONTHS)
        && (t[2].len() == 4 || t[2].len() == 2)
        && number(t[2]).is_some()
        && is_time(t[3])
}

fn date_at(t: &[&[u8]]) -> bool {
    if t.len() < 5 {
        return false;
    }
    let name_in = |tok: &[u8], names: &[&[u8]]| names.iter().any(|n| n.eq_ignore_ascii_case(tok));
    if !name_in(t[0], &DAYS) || !name_in(t[1], &MONTHS) {
        return false;
    }
    let day_ok = matches!(number(t[2]), Some(1..=31)) && t[2].len() <= 2;
    if !day_ok || !is_time(t[3]) {
        return false;
    }
    t[4..t.len().min(7)]
        .iter()
        .any(|y| (y.len() == 4 || y.len() == 2) && number(y).is_some())
}

fn number(t: &[u8]) -> Option<u32> {
    if t.is_empty() || t.len() > 9 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(t.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

fn is_time(t: &[u8]) -> bool {
    let mut parts = t.split(|&b| b == b':');
    let ok = |p: Option<&[u8]>, min: usize, max: usize| {
        p.is_some_and(|p| p.len() >= min && p.len() <= max && number(p).is_some())
    };
    let h = parts.next();
    let m = parts.next();
    let s = parts.next();
    ok(h, 1, 2) && ok(m, 2, 2) && (s.is_none() || ok(s, 2, 2)) && parts.next().is_none()
}

fn is_empty_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Which captured header a field line feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    None,
    Subject,
    ContentLength,
    XUidl,
    XUid,
    XImapBase,
}

/// Header values captured while indexing (bounded, unfolded).
#[derive(Debug, Clone, Default)]
struct Captured {
    subject: Option<Vec<u8>>,
    content_length: Option<Vec<u8>>,
    x_uidl: Option<Vec<u8>>,
    x_uid: Option<Vec<u8>>,
    x_imapbase: Option<Vec<u8>>,
    has_x_imap: bool,
}

impl Captured {
    fn slot_mut(&mut self, slot: Slot) -> Option<&mut Option<Vec<u8>>> {
        match slot {
            Slot::None => None,
            Slot::Subject => Some(&mut self.subject),
            Slot::ContentLength => Some(&mut self.content_length),
            Slot::XUidl => Some(&mut self.x_uidl),
            Slot::XUid => Some(&mut self.x_uid),
            Slot::XImapBase => Some(&mut self.x_imapbase),
        }
    }

    fn append(&mut self, slot: Slot, bytes: &[u8]) {
        if let Some(Some(v)) = self.slot_mut(slot) {
            let room = CAPTURE_MAX.saturating_sub(v.len());
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            v.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

/// One message being parsed.
#[derive(Debug, Clone)]
struct MessageParser {
    scheme: UidlFormat,
    from_offset: u64,
    header_offset: u64,
    from_line: u32,
    /// End of the content fed so far.
    end: u64,
    encoder: Encoder,
    size: Counter,
    in_headers: bool,
    /// Offset of the first body byte, once the header section has ended.
    body_offset: Option<u64>,
    field_hidden: bool,
    field_slot: Slot,
    captured: Captured,
    uidl: MessageUidl,
    /// Whether this message's Content-Length may be trusted (not for fallback-scan messages).
    content_length_allowed: bool,
}

impl MessageParser {
    fn new(opts: &IndexOptions, from_offset: u64, line: &[u8], cl_allowed: bool) -> Self {
        let mut uidl = MessageUidl::new(opts.uidl);
        uidl.from_line(line);
        let header_offset = from_offset + line.len() as u64;
        MessageParser {
            scheme: opts.uidl,
            from_offset,
            header_offset,
            from_line: from_line_fingerprint(line),
            end: header_offset,
            encoder: Encoder::new(EncodeOptions::retr(opts.format)),
            size: Counter::default(),
            in_headers: true,
            body_offset: None,
            field_hidden: false,
            field_slot: Slot::None,
            captured: Captured::default(),
            uidl,
            content_length_allowed: cl_allowed,
        }
    }

    /// Feed one fragment of content at `offset`; `start`: it begins a line.
    fn feed(&mut self, offset: u64, frag: &[u8], start: bool) {
        self.encoder.feed_into(frag, &mut self.size);
        self.end = offset + frag.len() as u64;
        if !self.in_headers {
            self.uidl.content(frag, start, true);
            return;
        }
        if start {
            if is_empty_line(frag) {
                self.in_headers = false;
                self.body_offset = Some(self.end);
                self.uidl.content(frag, start, true);
                return;
            }
            self.start_field(frag);
        } else {
            self.captured.append(self.field_slot, frag);
        }
        self.uidl.content(frag, start, !self.field_hidden);
    }

    /// Classify a header line (the same decision the encoder makes for hiding).
    fn start_field(&mut self, line: &[u8]) {
        if matches!(line[0], b' ' | b'\t') {
            self.captured.append(self.field_slot, line);
            return;
        }
        let probe = &line[..line.len().min(16)];
        let Some(colon) = memchr::memchr(b':', probe) else {
            self.field_hidden = false;
            self.field_slot = Slot::None;
            return;
        };
        let name = &line[..colon];
        self.field_hidden = is_private_header(name);
        let name = name.trim_ascii_end();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        self.field_slot = if is("Subject") {
            Slot::Subject
        } else if is("Content-Length") {
            Slot::ContentLength
        } else if is("X-UIDL") {
            Slot::XUidl
        } else if is("X-UID") {
            Slot::XUid
        } else if is("X-IMAPbase") || is("X-IMAP") {
            self.captured.has_x_imap |= is("X-IMAP");
            Slot::XImapBase
        } else {
            Slot::None
        };
        match self.captured.slot_mut(self.field_slot) {
            // Only the first occurrence of a field counts.
            Some(v @ None) => *v = Some(Vec::new()),
            Some(Some(_)) => self.field_slot = Slot::None,
            None => {}
        }
        self.captured.append(self.field_slot, &line[colon + 1..]);
    }

    fn content_length(&self) -> Option<u64> {
        let v = self.captured.content_length.as_deref()?.trim_ascii();
        if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    }

    /// Whether the next whole lines may go to [`MessageParser::feed_body`] in one block.
    fn body_fast_ok(&self) -> bool {
        !self.in_headers && self.encoder.at_body_line_start() && self.uidl.body_only()
    }

    /// Feed complete body lines at `offset` in one go (see [`body_run`], which found them).
    fn feed_body(&mut self, offset: u64, block: &[u8], run: BodyRun) {
        let has_cr = self
            .encoder
            .count_body_lines(block, run.newlines, run.cr, &mut self.size);
        self.uidl.body_lines(block, has_cr);
        self.end = offset + block.len() as u64;
    }

    /// Close the message: its content ends at `end_offset`, the next one starts at `next`.
    fn finish(mut self, end_offset: u64, next_offset: u64) -> Finished {
        self.encoder.finish_into(&mut self.size);
        let c = &self.captured;
        let subject_pseudo = c
            .subject
            .as_deref()
            .is_some_and(|s| memchr::memmem::find(s, PSEUDO_SUBJECT).is_some());
        let fields = UidlFields {
            x_uidl: c
                .x_uidl
                .as_deref()
                .map(|v| String::from_utf8_lossy(v.trim_ascii()).into_owned()),
            x_uid: c.x_uid.as_deref().and_then(uidl::parse_u32),
            uidvalidity: c.x_imapbase.as_deref().and_then(uidl::parse_uidvalidity),
        };
        // The c-client/Dovecot pseudo message carries both its fixed Subject and an `X-IMAP:`
        // header that parses as "UIDVALIDITY UIDNEXT" (Dovecot's own test). Either alone is
        // something any sender can put in a message, which would then vanish from POP3.
        let x_imap_parses = c.has_x_imap
            && c.x_imapbase.as_deref().is_some_and(|v| {
                let mut t = v
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|t| !t.is_empty());
                let digits = |t: Option<&[u8]>| t.is_some_and(|t| t.iter().all(u8::is_ascii_digit));
                digits(t.next()) && digits(t.next())
            });
        let hidden = subject_pseudo && x_imap_parses;
        let choice = self.uidl.finish(fields).choose(self.scheme);
        debug_assert!(self.header_offset - self.from_offset <= FROM_LINE_MAX as u64);
        debug_assert!(next_offset - end_offset <= 2);
        Finished {
            content_length: c.content_length.is_some(),
            message: IndexedMessage {
                from_offset: self.from_offset,
                size: self.size.0,
                from_line: self.from_line,
                // The scheme's value; IMAP schemes combine it with the numbers below at the end.
                uidl: choice.value,
                layout: IndexedMessage::pack_layout(
                    self.header_offset - self.from_offset,
                    next_offset - end_offset,
                    hidden,
                ),
                hidden,
            },
            x_uid: choice.x_uid,
            uidvalidity: choice.uidvalidity,
        }
    }
}

/// A closed message. Kept small (no per-scheme strings): at 100,000 messages the list of these
/// is the indexer's largest allocation.
#[derive(Debug)]
struct Finished {
    /// The message has a Content-Length header.
    content_length: bool,
    message: IndexedMessage,
    x_uid: Option<u32>,
    uidvalidity: Option<u32>,
}

/// An empty line not yet given to the current message: it is the separator if a From_ line
/// follows.
#[derive(Debug, Clone, Copy)]
struct Blank {
    offset: u64,
    crlf: bool,
}

impl Blank {
    fn bytes(&self) -> &'static [u8] {
        if self.crlf {
            b"\r\n"
        } else {
            b"\n"
        }
    }
}

/// The scanning interpretation: split at every valid From_ line after an empty line.
#[derive(Debug, Clone)]
struct Scan {
    current: MessageParser,
    blank: Option<Blank>,
}

impl Scan {
    /// First half of processing a fragment: if an empty line is pending, either it separates
    /// the current message from a new one starting with `frag` (returned, finished), or it is
    /// content and is fed now.
    fn release_blank(
        &mut self,
        opts: &IndexOptions,
        offset: u64,
        frag: &[u8],
        whole_line: bool,
        cl_allowed: bool,
    ) -> Option<Finished> {
        let blank = self.blank.take()?;
        if whole_line && is_from_line(frag) {
            let next = MessageParser::new(opts, offset, frag, cl_allowed);
            let done = std::mem::replace(&mut self.current, next);
            return Some(done.finish(blank.offset, offset));
        }
        self.current.feed(blank.offset, blank.bytes(), true);
        None
    }

    /// Second half: an empty line is held back (it may be a separator), anything else is fed.
    fn push(&mut self, offset: u64, frag: &[u8], start: bool, whole_line: bool) {
        if whole_line && is_empty_line(frag) {
            self.blank = Some(Blank {
                offset,
                crlf: frag.len() == 2,
            });
        } else {
            self.current.feed(offset, frag, start);
        }
    }

    /// Both halves, for the fallback interpretation kept during a Content-Length region.
    fn fragment(
        &mut self,
        opts: &IndexOptions,
        offset: u64,
        frag: &[u8],
        start: bool,
        whole_line: bool,
    ) -> Option<Finished> {
        if let Some(f) = self.release_blank(opts, offset, frag, whole_line, false) {
            return Some(f);
        }
        self.push(offset, frag, start, whole_line);
        None
    }

    fn finish(self, length: u64) -> Finished {
        let end = match self.blank {
            Some(b) => b.offset,
            None => self.current.end,
        };
        self.current.finish(end, length)
    }
}

/// Where a trusted-so-far Content-Length region stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClPhase {
    /// Inside the body the header announced; the body ends at `target`.
    Body,
    /// The body ended: an empty line (or EOF) must follow.
    WantBlank,
    /// The empty line came: a From_ line (or EOF) must follow.
    WantFrom,
}

/// A Content-Length region in progress, with the scanning interpretation kept in parallel.
#[derive(Debug)]
struct ClRegion {
    target: u64,
    phase: ClPhase,
    shadow: Scan,
    shadow_done: Vec<Finished>,
}

/// What a fragment means for an open Content-Length region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Part of the announced body.
    Body,
    /// The empty line after the announced body.
    Separator,
    /// The region is confirmed; process the fragment normally.
    Trusted,
    /// The Content-Length is wrong; fall back to scanning, then process the fragment normally.
    Wrong,
}

impl ClRegion {
    /// Classify `frag`, which comes next in the file, and advance the phase.
    fn verdict(&mut self, offset: u64, frag: &[u8], whole_line: bool) -> Verdict {
        let end = offset + frag.len() as u64;
        match self.phase {
            ClPhase::Body if end < self.target => Verdict::Body,
            ClPhase::Body if end == self.target => {
                // If the body does not end with a newline it must end the file: any later
                // fragment then fails the WantBlank test.
                self.phase = ClPhase::WantBlank;
                Verdict::Body
            }
            ClPhase::Body => Verdict::Wrong,
            ClPhase::WantBlank if whole_line && is_empty_line(frag) => {
                self.phase = ClPhase::WantFrom;
                Verdict::Separator
            }
            ClPhase::WantBlank => Verdict::Wrong,
            ClPhase::WantFrom if whole_line && is_from_line(frag) => Verdict::Trusted,
            ClPhase::WantFrom => Verdict::Wrong,
        }
    }
}

struct Indexer {
    opts: IndexOptions,
    done: Vec<IndexedMessage>,
    /// X-UID per message of `done`, for the IMAP schemes only (empty otherwise).
    x_uids: Vec<Option<u32>>,
    /// Messages of `done` taken from an earlier index: their UIDLs are final.
    kept: usize,
    uidvalidity: Option<u32>,
    scan: Option<Scan>,
    cl: Option<ClRegion>,
    /// Whether the first message's Content-Length may be trusted.
    first_cl_allowed: bool,
    /// Some message has a Content-Length header.
    content_length: bool,
    /// Earlier blocks of messages, oldest first: full blocks of `done` moved out when `chunk`
    /// is set (the later parts of a parallel index), and the blocks of parts merged into this
    /// one. [`Indexer::finish`] makes them one vector.
    spilled: Vec<Vec<IndexedMessage>>,
    chunk: usize,
}

impl Indexer {
    fn new(opts: &IndexOptions) -> Self {
        Indexer {
            opts: *opts,
            done: Vec::new(),
            x_uids: Vec::new(),
            kept: 0,
            uidvalidity: None,
            scan: None,
            cl: None,
            first_cl_allowed: true,
            content_length: false,
            spilled: Vec::new(),
            chunk: 0,
        }
    }

    fn imap_scheme(&self) -> bool {
        matches!(self.opts.uidl, UidlFormat::Imap | UidlFormat::DovecotUid)
    }

    fn push_done(&mut self, f: Finished) {
        self.content_length |= f.content_length;
        if self.done.is_empty() && self.spilled.is_empty() {
            self.uidvalidity = f.uidvalidity;
        }
        if self.imap_scheme() {
            self.x_uids.push(f.x_uid);
        }
        self.done.push(f.message);
        if self.chunk > 0 && self.done.len() == self.chunk {
            let full = std::mem::replace(&mut self.done, Vec::with_capacity(self.chunk));
            self.spilled.push(full);
        }
    }

    /// Whether this indexer, having just read the From_ line at `split`, is where an indexer
    /// that started at that line is after reading it: no Content-Length region open, nothing
    /// pending, and a fresh message at `split` whose Content-Length may be trusted. From here
    /// on both would do exactly the same.
    fn continues_at(&self, split: u64) -> bool {
        self.cl.is_none()
            && self.scan.as_ref().is_some_and(|s| {
                s.blank.is_none()
                    && s.current.from_offset == split
                    && s.current.content_length_allowed
                    && s.current.end == s.current.header_offset
            })
    }

    /// This indexer's finished messages followed by the second part's, which started at the
    /// message this one has open (see [`Indexer::continues_at`]).
    fn merge(mut self, second: Part) -> Part {
        let Part {
            indexer: mut rest,
            length,
            line_end,
        } = second;
        // Only the lists of blocks are joined; `finish` copies the messages once, into one
        // vector.
        let mut blocks = std::mem::take(&mut self.spilled);
        blocks.push(std::mem::take(&mut self.done));
        blocks.append(&mut rest.spilled);
        rest.spilled = blocks;
        self.x_uids.append(&mut rest.x_uids);
        rest.x_uids = self.x_uids;
        rest.kept = self.kept;
        rest.uidvalidity = self.uidvalidity;
        rest.content_length |= self.content_length;
        Part {
            indexer: rest,
            length,
            line_end,
        }
    }

    /// Feed the longest run of whole body lines at the start of `s` in one block, when the
    /// current message is in its body with nothing pending. Returns the bytes consumed.
    fn body_run(&mut self, offset: u64, s: &[u8]) -> usize {
        if self.cl.is_some() {
            return 0;
        }
        let Some(scan) = self.scan.as_mut() else {
            return 0;
        };
        if scan.blank.is_some() || !scan.current.body_fast_ok() {
            return 0;
        }
        let run = body_run(s);
        if run.len > 0 {
            scan.current.feed_body(offset, &s[..run.len], run);
        }
        run.len
    }

    fn fragment(
        &mut self,
        offset: u64,
        frag: &[u8],
        start: bool,
        end: bool,
    ) -> Result<(), IndexError> {
        let whole_line = start && end;
        let Some(scan) = self.scan.as_mut() else {
            return self.first_line(offset, frag, whole_line);
        };

        if let Some(cl) = self.cl.as_mut() {
            let verdict = cl.verdict(offset, frag, whole_line);
            match verdict {
                Verdict::Body | Verdict::Separator => {
                    if verdict == Verdict::Body {
                        scan.current.feed(offset, frag, start);
                    } else {
                        scan.push(offset, frag, start, whole_line);
                    }
                    if let Some(f) = cl
                        .shadow
                        .fragment(&self.opts, offset, frag, start, whole_line)
                    {
                        cl.shadow_done.push(f);
                    }
                    return Ok(());
                }
                Verdict::Trusted => self.cl = None,
                Verdict::Wrong => self.fall_back(),
            }
        }

        let scan = self
            .scan
            .as_mut()
            .ok_or_else(|| IndexError::Io(io::Error::other("indexer lost its current message")))?;
        if scan.blank.is_some() && scan.current.in_headers && self.open_cl() {
            // The body starts with this fragment: judge it against the announced length.
            return self.fragment(offset, frag, start, end);
        }
        let Some(scan) = self.scan.as_mut() else {
            return Ok(());
        };
        if let Some(f) = scan.release_blank(&self.opts, offset, frag, whole_line, true) {
            self.push_done(f);
            return Ok(());
        }
        scan.push(offset, frag, start, whole_line);
        Ok(())
    }

    /// Before the first message: skip empty lines, then require a From_ line.
    fn first_line(&mut self, offset: u64, frag: &[u8], whole_line: bool) -> Result<(), IndexError> {
        if whole_line && is_empty_line(frag) {
            return Ok(());
        }
        if !(whole_line && frag.starts_with(b"From ") && frag.len() <= FROM_LINE_MAX) {
            let shown = String::from_utf8_lossy(&frag[..frag.len().min(60)]).into_owned();
            return Err(IndexError::NotMbox(format!(
                "the first line (offset {offset}) is not a From_ line: {:?}",
                shown.trim_end()
            )));
        }
        self.scan = Some(Scan {
            current: MessageParser::new(&self.opts, offset, frag, self.first_cl_allowed),
            blank: None,
        });
        Ok(())
    }

    /// An empty line is pending after the current message's header section. If the message
    /// announces a Content-Length that may be trusted, that line ends the header section (it
    /// is fed now) and a region opens whose fallback keeps it pending, as plain scanning would.
    /// Returns whether a region was opened.
    fn open_cl(&mut self) -> bool {
        let Some(scan) = self.scan.as_mut() else {
            return false;
        };
        if !scan.current.content_length_allowed {
            return false;
        }
        let Some(len) = scan.current.content_length() else {
            return false;
        };
        let Some(blank) = scan.blank else {
            return false;
        };
        let mut shadow = scan.clone();
        // If the length proves wrong, the scanning interpretation takes over for good.
        shadow.current.content_length_allowed = false;
        scan.blank = None;
        scan.current.feed(blank.offset, blank.bytes(), true);
        let body = blank.offset + blank.bytes().len() as u64;
        self.cl = Some(ClRegion {
            target: body.saturating_add(len),
            phase: if len == 0 {
                ClPhase::WantBlank
            } else {
                ClPhase::Body
            },
            shadow,
            shadow_done: Vec::new(),
        });
        true
    }

    /// The Content-Length was wrong: continue with the scanning interpretation.
    fn fall_back(&mut self) {
        if let Some(cl) = self.cl.take() {
            for f in cl.shadow_done {
                self.push_done(f);
            }
            self.scan = Some(cl.shadow);
        }
    }

    /// `line_end`: the input ended with a complete line.
    fn finish(mut self, length: u64, line_end: bool) -> Index {
        // The last messages are pushed below, onto the one vector.
        self.chunk = 0;
        if !self.spilled.is_empty() {
            // Into the first block, grown once; each later block is freed as soon as it is
            // moved, so the peak is the index plus one block.
            let mut blocks = std::mem::take(&mut self.spilled).into_iter();
            let mut all = blocks.next().unwrap_or_default();
            let more = blocks.as_slice().iter().map(Vec::len).sum::<usize>() + self.done.len();
            all.reserve_exact(more);
            for block in blocks {
                all.extend(block);
            }
            all.append(&mut self.done);
            self.done = all;
        }
        let mut resume = None;
        if let Some(cl) = self.cl.take() {
            // EOF confirms the region unless the announced body is longer than the file.
            if cl.phase == ClPhase::Body {
                resume = Some(Resume {
                    message: self.done.len(),
                    cl_allowed: true,
                });
                self.cl = Some(cl);
                self.fall_back();
            }
        }
        if let Some(scan) = self.scan.take() {
            let last = Resume {
                message: self.done.len(),
                cl_allowed: scan.current.content_length_allowed,
            };
            resume.get_or_insert(last);
            let f = scan.finish(length);
            self.push_done(f);
        }
        let uidvalidity = self.uidvalidity;
        let scheme = self.opts.uidl;
        let kept = self.kept;
        let mut messages = self.done;
        for (i, m) in messages.iter_mut().enumerate().skip(kept) {
            if let Some(v) =
                uidl::imap_uidl(scheme, uidvalidity, self.x_uids.get(i).copied().flatten())
            {
                m.uidl = v;
            }
            // Only the first message can be the folder's pseudo message.
            m.hidden &= i == 0;
        }
        let renamed = uidl::make_unique(&mut messages, |m| &m.uidl, |m| &mut m.uidl);
        messages.shrink_to_fit();
        // A file ending inside a line may end inside a From_ line that the rest of the line
        // would invalidate; renamed UIDLs are not base values any more. Either way a grown
        // file is indexed from scratch.
        if renamed || !line_end {
            resume = None;
        }
        let imap = matches!(scheme, UidlFormat::Imap | UidlFormat::DovecotUid);
        Index {
            messages,
            length,
            resume,
            // Kept for continuing an IMAP-scheme index only.
            uidvalidity: uidvalidity.filter(|_| imap),
            renamed,
            content_length: self.content_length,
            imap,
        }
    }
}

/// The longest prefix of `s` (which starts at a line start, inside a message body) made of
/// whole lines that can be fed as body content in one block: it ends at a line end and holds
/// no empty line that might separate messages, i.e. one followed by a line starting with
/// "From " or one that is the prefix's last line (the next line decides). Lines are not
/// judged further: the line-by-line path decides the rest exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRun {
    pub len: usize,
    /// LFs in the prefix.
    pub newlines: u64,
    /// The prefix may hold a CR (false: it holds none).
    pub cr: bool,
}

pub fn body_run(s: &[u8]) -> BodyRun {
    let none = BodyRun {
        len: 0,
        newlines: 0,
        cr: false,
    };
    let Some(last) = memchr::memrchr(b'\n', s) else {
        return none;
    };
    let mut end = last + 1;
    if let Some(start) = empty_line_ending_at(s, last) {
        end = start;
    }
    // One pass counts the lines and stops at each "\nFrom " (usually the next message's).
    let (mut pos, mut newlines, mut cr) = (0, 0, false);
    loop {
        let found = line_scan::until_from_line(&s[pos..end]);
        newlines += found.newlines;
        cr |= found.cr;
        let p = pos + found.stop;
        if p == end {
            break;
        }
        if let Some(start) = empty_line_ending_at(s, p) {
            // The prefix ends before the empty line; the LF at `p` is not in it, and neither
            // is anything after it.
            end = start;
            break;
        }
        newlines += 1;
        pos = p + 1;
    }
    if end == 0 {
        return none;
    }
    BodyRun {
        len: end,
        newlines,
        cr,
    }
}

/// If the line ending with the LF at `s[p]` is empty (`s` starts at a line start), its start.
fn empty_line_ending_at(s: &[u8], p: usize) -> Option<usize> {
    if p == 0 || s[p - 1] == b'\n' {
        return Some(p);
    }
    if s[p - 1] == b'\r' && (p == 1 || s[p - 2] == b'\n') {
        return Some(p - 1);
    }
    None
}

/// Index an mbox in one pass; see the module documentation for the rules.
pub fn index_mbox<R: Read>(reader: R, opts: &IndexOptions) -> Result<Index, IndexError> {
    run(reader, Indexer::new(opts), 0)
}

/// Continue `prefix` over the same file after it grew: `reader` yields the file's bytes from
/// [`Index::resume_offset`] on. The result equals [`index_mbox`] over the whole file when the
/// bytes below `prefix.length` are unchanged (the caller's check) and `opts` are the same.
/// Without a resume offset, `reader` must start at offset 0.
///
/// The prefix's message list is reused in place (its later messages are dropped and the new
/// ones appended), so continuing costs no copy of the index.
pub fn index_mbox_from<R: Read>(
    reader: R,
    opts: &IndexOptions,
    prefix: Index,
) -> Result<Index, IndexError> {
    let mut indexer = Indexer::new(opts);
    let Some(r) = prefix.resume else {
        return run(reader, indexer, 0);
    };
    let start = prefix.messages[r.message].from_offset;
    indexer.done = prefix.messages;
    indexer.done.truncate(r.message);
    indexer.kept = r.message;
    if r.message > 0 {
        indexer.uidvalidity = prefix.uidvalidity;
        if indexer.imap_scheme() {
            indexer.x_uids = vec![None; r.message];
        }
    }
    indexer.first_cl_allowed = r.cl_allowed;
    indexer.content_length = prefix.content_length;
    run(reader, indexer, start)
}

fn run<R: Read>(reader: R, indexer: Indexer, start: u64) -> Result<Index, IndexError> {
    scan(reader, indexer, start, None, None).map(Part::finish)
}

/// A stretch of the file indexed to its end but not finished (UIDLs not made unique, the last
/// message still open).
struct Part {
    indexer: Indexer,
    /// Offset of the end of the input.
    length: u64,
    /// The input ended with a complete line.
    line_end: bool,
}

impl Part {
    fn finish(self) -> Index {
        self.indexer.finish(self.length, self.line_end)
    }
}

/// Where this scan may hand over to a second one that indexed the rest of the file from the
/// From_ line at `split` (see [`parallel`]).
struct Join<'a> {
    split: u64,
    /// End of that From_ line.
    at: u64,
    /// Called once with whether the second part is wanted: it stops the second scan if not,
    /// waits for it, and returns its result if wanted and it succeeded.
    second: Option<Box<dyn FnOnce(bool) -> Option<Part> + 'a>>,
}

impl Join<'_> {
    fn take(mut self, wanted: bool) -> Option<Part> {
        self.second.take().and_then(|f| f(wanted))
    }
}

impl Drop for Join<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.second.take() {
            f(false);
        }
    }
}

/// Index `reader` (file bytes from `start`) to its end; or, with `join`, until the From_ line
/// where a second scan started, if this scan reaches it in the same state (then the two are
/// merged). `stop` ends the scan early with an error (a second scan that is not wanted).
fn scan<R: Read>(
    mut reader: R,
    mut indexer: Indexer,
    start: u64,
    mut join: Option<Join<'_>>,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Part, IndexError> {
    let mut buf = vec![0u8; BLOCK];
    let (mut lo, mut hi) = (0usize, 0usize); // unprocessed bytes are buf[lo..hi]
    let mut base = start; // file offset of buf[lo]
    let mut line_start = true;
    let mut eof = false;
    let mut line_end = true;
    loop {
        // Hand out every complete line in the buffer; whole runs of body lines in one block.
        while lo < hi {
            if let Some(j) = join.take_if(|j| base >= j.at) {
                if base == j.at && indexer.continues_at(j.split) {
                    if let Some(second) = j.take(true) {
                        drop(buf);
                        return Ok(indexer.merge(second));
                    }
                }
            }
            if line_start {
                let n = indexer.body_run(base, &buf[lo..hi]);
                if n > 0 {
                    lo += n;
                    base += n as u64;
                    continue;
                }
            }
            let Some(i) = memchr::memchr(b'\n', &buf[lo..hi]) else {
                break;
            };
            let len = i + 1;
            indexer.fragment(base, &buf[lo..lo + len], line_start, true)?;
            line_start = true;
            lo += len;
            base += len as u64;
        }
        if eof {
            if lo < hi {
                // The last line has no newline.
                indexer.fragment(base, &buf[lo..hi], line_start, true)?;
                base += (hi - lo) as u64;
                line_end = false;
            } else if !line_start {
                line_end = false;
            }
            break;
        }
        if lo > 0 {
            buf.copy_within(lo..hi, 0);
            hi -= lo;
            lo = 0;
        }
        if hi == buf.len() {
            // A line longer than the buffer: pass it on in pieces.
            indexer.fragment(base, &buf[..hi], line_start, false)?;
            line_start = false;
            base += hi as u64;
            hi = 0;
        }
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(IndexError::Io(io::Error::from(io::ErrorKind::Interrupted)));
        }
        match reader.read(&mut buf[hi..]) {
            Ok(0) => eof = true,
            Ok(n) => hi += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IndexError::Io(e)),
        }
    }
    // Not held while the index is finished (its peak is the login's peak).
    drop(buf);
    Ok(Part {
        indexer,
        length: base,
        line_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::encode::transmit_size;

    const F1: &str = "From a@example.org Thu Nov 26 03:32:14 2026";
    const F2: &str = "From b@example.org Fri Nov 27 13:02:44 2026";

    fn opts(format: MboxFormat, uidl: UidlFormat) -> IndexOptions {
        IndexOptions { format, uidl }
    }

    /// Index with every reader chunking we care about, check the invariants, return the index.
    fn index_with(bytes: &[u8], o: IndexOptions) -> Index {
        let idx = index_mbox(bytes, &o).expect("indexes");
        check_invariants(&idx, bytes, o.format);
        // One byte per read() call must give the very same index.
        let slow = index_mbox(OneByte(bytes), &o).expect("indexes bytewise");
        assert_eq!(slow, idx, "chunking changed the index");
        idx
    }

    fn index(bytes: &[u8]) -> Index {
        index_with(bytes, opts(MboxFormat::Mboxo, UidlFormat::Native))
    }

    fn content<'a>(bytes: &'a [u8], idx: &Index, i: usize) -> &'a [u8] {
        &bytes[idx.messages[i].header_offset() as usize..idx.end_offset(i) as usize]
    }

    pub(crate) fn check_invariants(idx: &Index, bytes: &[u8], format: MboxFormat) {
        assert_eq!(idx.length, bytes.len() as u64);
        for (i, m) in idx.messages.iter().enumerate() {
            assert!(m.from_offset < m.header_offset());
            assert!(m.header_offset() <= idx.end_offset(i));
            assert!(idx.end_offset(i) <= idx.next_offset(i));
            assert!(idx.next_offset(i) <= idx.length);
            let from = &bytes[m.from_offset as usize..];
            assert!(from.starts_with(b"From "));
            let line_len = (m.header_offset() - m.from_offset) as usize;
            assert_eq!(m.from_line, from_line_fingerprint(&from[..line_len]));
            // Only an empty line may lie between the content and the next message.
            let gap = &bytes[idx.end_offset(i) as usize..idx.next_offset(i) as usize];
            assert!(
                gap.is_empty() || gap == b"\n" || gap == b"\r\n",
                "gap {gap:?}"
            );
            assert_eq!(
                m.size,
                transmit_size(content(bytes, idx, i), format),
                "message {i} size"
            );
            assert!(crate::storage::uidl::is_valid_uidl(
                m.uidl.to_string().as_bytes()
            ));
        }
        let mut uidls: Vec<String> = idx.messages.iter().map(|m| m.uidl.to_string()).collect();
        uidls.sort_unstable();
        uidls.dedup();
        assert_eq!(uidls.len(), idx.messages.len(), "UIDLs are unique");
    }

    /// A reader that returns one byte per call.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((&b, rest)), false) => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn from_line_with_many_tokens() {
        let pad = " x".repeat(40);
        assert!(is_from_line(
            format!("From a@b{pad} Thu Nov 26 03:32:14 2026\n").as_bytes()
        ));
        assert!(!is_from_line(
            format!("From a@b{pad} Thu Nov 26\n").as_bytes()
        ));
        assert!(is_from_line(
            format!("From a@b Thu Nov 26 03:32:14 2026{pad}\n").as_bytes()
        ));
    }

    #[test]
    fn from_line_rule() {
        for ok in [
            "From a@b Thu Nov 26 03:32:14 2026",
            "From a@b Thu Nov 26 03:32:14 2026\n",
            "From a@b Thu Nov 26 03:32:14 2026\r\n",
            "From MAILER-DAEMON Thu Nov  6 03:32:14 2026",
            "From <> Thu Nov 26 03:32 2026",
            "From a@b Thu Nov 26 03:32:14 UTC 2026",
            "From a@b Thu Nov 26 03:32:14 +0100 2026",
            "From a@b Thu Nov 26 03:32:14 2026 +0100",
            "From a@b  Thu Nov 26 03:32:14 2026",
            "From  Thu Nov 26 03:32:14 2026",
            "From \"quoted name\"@b Thu Nov 26 03:32:14 2026",
            "From a@b thu nov 26 3:32:14 26 remote from uucp",
        ] {
            assert!(is_from_line(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "From here on, we agree.",
            "From a@b",
            "From a@b Thu Nov 26 2026",
            "From a@b Thu Nov 32 03:32:14 2026",
            "From a@b Thu Nov 26 03:32:14",
            "From a@b Thu Nov 26 3:2:14 2026",
            "From a@b Nov Thu 26 03:32:14 2026",
            "from a@b Thu Nov 26 03:32:14 2026",
            ">From a@b Thu Nov 26 03:32:14 2026",
            "From: a@b Thu Nov 26 03:32:14 2026 x",
        ] {
            // "From:" has no space after "From": it is a header, never a From_ line.
            assert!(!is_from_line(bad.as_bytes()), "{bad:?}");
        }
        let long = format!("From a@b {} Thu Nov 26 03:32:14 2026", "x".repeat(5000));
        assert!(!is_from_line(long.as_bytes()));
    }

    #[test]
    fn empty_file_is_an_empty_maildrop() {
        let idx = index(b"");
        assert!(idx.messages.is_empty());
        assert_eq!(idx.length, 0);
    }

    #[test]
    fn not_an_mbox() {
        for bad in [
            &b"Subject: hi\n\nbody\n"[..],
            b"\n\nhello\n",
            b"\0\0\0",
            b"From",
            b" From a@b Thu Nov 26 03:32:14 2026\n",
        ] {
            let err = index_mbox(bad, &opts(MboxFormat::Mboxo, UidlFormat::Native));
            assert!(matches!(err, Err(IndexError::NotMbox(_))), "{bad:?}");
        }
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let mbox = format!("\n\r\n{F1}\nA: b\n\nx\n");
        let idx = index(mbox.as_bytes());
        assert_eq!(idx.messages.len(), 1);
        assert_eq!(idx.messages[0].from_offset, 3);
    }

    #[test]
    fn first_line_needs_only_the_from_prefix() {
        let idx = index(b"From nobody\nA: b\n\nx\n");
        assert_eq!(idx.messages.len(), 1);
    }

    #[test]
    fn separators_and_offsets() {
        let mbox =
            format!("{F1}\nA: 1\n\nbody 1\n\n{F2}\nA: 2\n\nbody 2\n\n\n{F1}\nA: 3\n\nbody 3\n");
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 3);
        assert_eq!(content(b, &idx, 0), b"A: 1\n\nbody 1\n");
        // Two empty lines: the first is content, the second the separator.
        assert_eq!(content(b, &idx, 1), b"A: 2\n\nbody 2\n\n");
        // No trailing separator at EOF: the content runs to the end.
        assert_eq!(content(b, &idx, 2), b"A: 3\n\nbody 3\n");
        assert_eq!(idx.next_offset(2), b.len() as u64);
        assert_eq!(
            idx.messages[0].from_line,
            from_line_fingerprint(format!("{F1}\n").as_bytes())
        );
    }

    #[test]
    fn from_lines_in_bodies() {
        // Not after an empty line, or not a valid From_ line: no split.
        let mbox = format!(
            "{F1}\nA: 1\n\nbody\n{F2}\n\nFrom here on, we agree.\n\n>From quoted\n\n{F2}\nA: 2\n\nb\n"
        );
        let idx = index(mbox.as_bytes());
        assert_eq!(idx.messages.len(), 2);
        assert!(content(mbox.as_bytes(), &idx, 0).ends_with(b">From quoted\n"));
    }

    #[test]
    fn crlf_and_mixed_files() {
        let mbox = format!(
            "{F1}\r\nA: 1\r\n\r\nx\r\n\r\n{F2}\r\nA: 2\n\ny\r\n\n{F1}\nA: 3\r\n\r\nz\r\n\r\n"
        );
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 3);
        assert_eq!(content(b, &idx, 0), b"A: 1\r\n\r\nx\r\n");
        assert_eq!(content(b, &idx, 1), b"A: 2\n\ny\r\n");
        assert_eq!(content(b, &idx, 2), b"A: 3\r\n\r\nz\r\n");
        for m in &idx.messages {
            assert_eq!(m.size, 11);
        }
    }

    #[test]
    fn missing_final_newline() {
        let mbox = format!("{F1}\nA: 1\n\nx\n\n{F2}\nA: 2\n\nlast line");
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 2);
        assert_eq!(content(b, &idx, 1), b"A: 2\n\nlast line");
        assert_eq!(
            idx.messages[1].size,
            "A: 2\r\n\r\nlast line\r\n".len() as u64
        );
        // A file that is just a From_ line, without newline.
        let idx = index(F1.as_bytes());
        assert_eq!(idx.messages.len(), 1);
        assert_eq!(idx.messages[0].size, 0);
    }

    #[test]
    fn nul_bytes_and_invalid_utf8() {
        let mut mbox = format!("{F1}\nSubject: \u{e9}t\u{e9}\n").into_bytes();
        mbox.extend_from_slice(b"X-Bin: \xff\xfe\x00\x01\n\n\x00\x00\n\xc3\x28 bad\n\n");
        mbox.extend_from_slice(format!("{F2}\nA: 2\n\n\x00\n").as_bytes());
        let idx = index(&mbox);
        assert_eq!(idx.messages.len(), 2);
    }

    #[test]
    fn very_long_lines() {
        // 3 MiB without a newline, in the headers and in the body, and one exactly a block long.
        let long = vec![b'x'; 3 << 20];
        let mut mbox = format!("{F1}\nSubject: ").into_bytes();
        mbox.extend_from_slice(&long);
        mbox.extend_from_slice(b"\nStatus: RO");
        mbox.extend_from_slice(&long);
        mbox.extend_from_slice(b"\n\n");
        mbox.extend_from_slice(&long);
        mbox.extend_from_slice(format!("\n\n{F2}\nA: 2\n\n").as_bytes());
        mbox.extend_from_slice(&vec![b'.'; BLOCK]);
        mbox.extend_from_slice(b"\n\n");
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let idx = index_mbox(&mbox[..], &o).expect("indexes");
        check_invariants(&idx, &mbox, o.format);
        assert_eq!(idx.messages.len(), 2);
        let expected = "Subject: ".len() + long.len() + 2 + 2 + long.len() + 2;
        assert_eq!(idx.messages[0].size, expected as u64);
        // The line of dots is stuffed on RETR, but the stuffing dot is not part of the size.
        assert_eq!(idx.messages[1].size, (6 + 2 + BLOCK + 2) as u64);
    }

    #[test]
    fn content_length_trusted_when_it_lands_on_a_from_line() {
        // mboxcl2: an unquoted From_ line inside the body, after an empty line.
        let body = format!("one\n\n{F2}\nnot a new message\n");
        let mbox = format!(
            "{F1}\nContent-Length: {}\nA: 1\n\n{body}\n{F2}\nA: 2\n\nb\n",
            body.len()
        );
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 2);
        assert!(content(b, &idx, 0).ends_with(b"not a new message\n"));
        // At EOF, with and without the trailing separator.
        for tail in ["\n", ""] {
            let mbox = format!("{F1}\nContent-Length: {}\n\n{body}{tail}", body.len());
            let idx = index(mbox.as_bytes());
            assert_eq!(idx.messages.len(), 1, "{tail:?}");
        }
        // Zero length, empty body.
        let mbox = format!("{F1}\nContent-Length: 0\n\n\n{F2}\nA: 2\n\nb\n");
        assert_eq!(index(mbox.as_bytes()).messages.len(), 2);
        // A body without a final newline at EOF.
        let mbox = format!("{F1}\nContent-Length: 3\n\nabc");
        let idx = index(mbox.as_bytes());
        assert_eq!(idx.messages.len(), 1);
        assert_eq!(
            content(mbox.as_bytes(), &idx, 0),
            b"Content-Length: 3\n\nabc"
        );
    }

    #[test]
    fn wrong_content_length_falls_back_to_scanning() {
        let body = format!("one\n\n{F2}\nsecond\n");
        for len in [
            0,
            1,
            4,
            5,
            body.len() - 1,
            body.len() + 1,
            body.len() + 50,
            1 << 40,
        ] {
            let mbox = format!("{F1}\nContent-Length: {len}\nA: 1\n\n{body}\n{F2}\nA: 3\n\nc\n");
            let b = mbox.as_bytes();
            let idx = index(b);
            assert_eq!(idx.messages.len(), 3, "length {len}");
            assert_eq!(
                content(b, &idx, 0),
                format!("Content-Length: {len}\nA: 1\n\none\n").as_bytes()
            );
            assert_eq!(content(b, &idx, 1), b"second\n");
        }
        // Lands on a line start, but no From_ line follows the empty line.
        let mbox = format!("{F1}\nContent-Length: 4\n\none\n\nnot from\n\n{F2}\nA: 2\n\nb\n");
        let idx = index(mbox.as_bytes());
        assert_eq!(idx.messages.len(), 2);
        assert!(content(mbox.as_bytes(), &idx, 0).ends_with(b"not from\n"));
    }

    #[test]
    fn content_length_body_starting_with_a_from_line() {
        // mboxcl2: the body's first line is a valid From_ line right after the header section.
        let body = format!("{F2}\nforwarded\n");
        let mbox = format!(
            "{F1}\nContent-Length: {}\n\n{body}\n{F2}\nA: 2\n\nb\n",
            body.len()
        );
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 2);
        assert!(content(b, &idx, 0).ends_with(body.as_bytes()));
        // Same shape, but the length is wrong: scanning splits at that From_ line.
        let mbox = format!("{F1}\nContent-Length: 999\n\n{body}\n{F2}\nA: 2\n\nb\n");
        let b = mbox.as_bytes();
        let idx = index(b);
        assert_eq!(idx.messages.len(), 3);
        assert_eq!(content(b, &idx, 0), b"Content-Length: 999\n");
    }

    #[test]
    fn content_length_of_fallback_messages_is_not_trusted() {
        // The first length is wrong; the second message (found by scanning) announces a length
        // that would swallow the third; it is not trusted, so the third is still found.
        let mbox = format!(
            "{F1}\nContent-Length: 2\n\nabc\n\n{F2}\nContent-Length: 1000\n\nx\n\n{F1}\nA: 3\n\ny\n"
        );
        assert_eq!(index(mbox.as_bytes()).messages.len(), 3);
    }

    #[test]
    fn pseudo_message_is_hidden() {
        let pseudo = format!(
            "{F1}\nDate: Thu, 26 Nov 2026 03:32:14 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@h>\n\
Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1700000000 0000000003\nStatus: RO\n\n\
This text is part of the internal format of your mail folder.\n\n"
        );
        let mbox = format!("{pseudo}{F2}\nX-UID: 2\nA: 2\n\nb\n\n{F2}\nX-UID: 3\n\nc\n");
        let idx = index_with(mbox.as_bytes(), opts(MboxFormat::Mboxo, UidlFormat::Imap));
        assert_eq!(idx.messages.len(), 3);
        assert!(idx.messages[0].hidden);
        assert!(!idx.messages[1].hidden && !idx.messages[2].hidden);
        assert_eq!(
            idx.messages[1].uidl,
            format!("{:08x}{:08x}", 1_700_000_000u32, 2)
        );
        assert_eq!(
            idx.messages[2].uidl,
            format!("{:08x}{:08x}", 1_700_000_000u32, 3)
        );
        // Only the first message can be the pseudo message.
        let mbox = format!("{F2}\nA: 1\n\nx\n\n{pseudo}");
        let idx = index(mbox.as_bytes());
        assert!(!idx.messages[1].hidden);
    }

    #[test]
    fn deleting_the_first_message_can_uncover_a_pseudo_message() {
        let pseudo = format!(
            "{F1}\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1700000000 0000000003\n\ntext\n\n"
        );
        let first = format!("{F2}\nA: 1\n\nx\n\n");
        let last = format!("{F2}\nA: 3\n\nz\n");
        let idx = index(format!("{first}{pseudo}{last}").as_bytes());
        assert!(!idx.messages[1].hidden);
        let d = idx.without(&[0]).expect("derivable");
        assert_eq!(d, index(format!("{pseudo}{last}").as_bytes()));
        assert!(d.messages[0].hidden);
    }

    #[test]
    fn pseudo_message_look_alikes_stay_visible() {
        // The subject alone, an X-IMAP header alone, or an X-IMAP that does not parse: any
        // sender can write these, so they must not hide a real message.
        for headers in [
            "Subject: Re: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA",
            "Subject: one\nX-IMAP: 1795675571 0000000002",
            "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: garbage",
            "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAPbase: 1 2",
        ] {
            let mbox = format!("{F1}\n{headers}\n\nhello\n\n{F2}\nSubject: two\n\nbody\n");
            let idx = index(mbox.as_bytes());
            assert_eq!(idx.messages.len(), 2, "{headers}");
            assert!(!idx.messages[0].hidden, "{headers}");
        }
    }

    #[test]
    fn rfc2822_dates_on_from_lines() {
        for ok in [
            "From a@b Thu, 26 Nov 2026 03:32:14 +0000",
            "From a@b 26 Nov 2026 03:32:14 +0000",
            "From a@b Thu, 26 Nov 26 03:32",
        ] {
            assert!(is_from_line(ok.as_bytes()), "{ok}");
        }
        let mbox = format!("{F1}\nSubject: one\n\nbody\n\nFrom a@b Thu, 26 Nov 2026 03:32:14 +0000\nSubject: two\n\nbody\n");
        assert_eq!(index(mbox.as_bytes()).messages.len(), 2);
        assert!(!is_from_line(b"From 26 of us went home."));
    }

    #[test]
    fn imap_scheme_with_x_imapbase_and_fallback() {
        let mbox = format!(
            "{F1}\nX-IMAPbase: 1234 0000000010 $Junk\nX-UID: 7\n\na\n\n{F2}\nA: 2\n\nb\n\n{F2}\nX-UID: 7\n\nc\n"
        );
        let idx = index_with(mbox.as_bytes(), opts(MboxFormat::Mboxo, UidlFormat::Imap));
        assert!(!idx.messages[0].hidden);
        assert_eq!(idx.messages[0].uidl, "000004d200000007");
        assert_eq!(idx.messages[1].uidl.len(), 32, "no X-UID: native");
        assert_eq!(
            idx.messages[2].uidl, "000004d200000007-2",
            "a repeated X-UID stays unique"
        );
    }

    #[test]
    fn x_uidl_scheme() {
        let mbox = format!(
            "{F1}\nX-UIDL: abc123\n\na\n\n{F2}\nX-UIDL:   abc123  \n\nforged copy\n\n{F2}\nX-UIDL: bad value\n\nc\n\n{F1}\nx-uidl: 0123456789\n\t\n\nd\n"
        );
        let idx = index_with(mbox.as_bytes(), opts(MboxFormat::Mboxo, UidlFormat::XUidl));
        let u: Vec<String> = idx.messages.iter().map(|m| m.uidl.to_string()).collect();
        assert_eq!(u[0], "abc123");
        assert_eq!(u[1], "abc123-2");
        assert_eq!(u[2].len(), 32);
        assert_eq!(u[3], "0123456789");
    }

    #[test]
    fn native_uidl_is_stable_and_unique() {
        let m1 = format!("{F1}\nSubject: 1\n\nsame\n");
        let m2 = format!("{F2}\nSubject: 2\n\nother\n");
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let uidls = |s: &str| -> Vec<String> {
            index_with(s.as_bytes(), o)
                .messages
                .into_iter()
                .map(|m| m.uidl.to_string())
                .collect()
        };
        let base = uidls(&format!("{m1}\n{m2}\n{m1}\n"));
        assert_eq!(
            base[2],
            format!("{}-2", base[0]),
            "identical copies get a suffix"
        );
        // Another program rewrote flags and IMAP state: UIDLs unchanged.
        let flagged = m1.replace(
            "Subject: 1\n",
            "Subject: 1\nStatus: RO\nX-Status: A\nX-Keywords: k\n  k2\nX-UID: 9\n",
        );
        assert_eq!(uidls(&format!("{flagged}\n{m2}\n{m1}\n")), base);
        // Deleting the middle message changes nobody else's UIDL.
        assert_eq!(
            uidls(&format!("{m1}\n{m1}\n")),
            [base[0].clone(), base[2].clone()]
        );
        // The mbox format setting does not change native UIDLs.
        let rd = index_with(
            format!("{m1}\n{m2}\n{m1}\n").as_bytes(),
            opts(MboxFormat::Mboxrd, UidlFormat::Native),
        );
        assert_eq!(
            rd.messages
                .iter()
                .map(|m| m.uidl.clone())
                .collect::<Vec<_>>(),
            base
        );
        // A different From_ line (another delivery) is another message.
        let other = uidls(&format!("{}\n", m1.replace(F1, F2)));
        assert_ne!(other[0], base[0]);
    }

    #[test]
    fn mboxrd_sizes_count_unquoted_lines() {
        let mbox = format!("{F1}\nA: 1\n\n>From x\n>>From y\n\n");
        let b = mbox.as_bytes();
        let rd = index_with(b, opts(MboxFormat::Mboxrd, UidlFormat::Native));
        let o = index_with(b, opts(MboxFormat::Mboxo, UidlFormat::Native));
        assert_eq!(rd.messages[0].size + 2, o.messages[0].size);
    }

    #[test]
    fn a_message_costs_48_bytes() {
        assert_eq!(std::mem::size_of::<IndexedMessage>(), 48);
        assert_eq!(std::mem::size_of::<Uidl>(), 24);
    }

    fn body_run_len_of(s: &[u8]) -> usize {
        body_run(s).len
    }

    /// The three-pass form `body_run` replaced: a substring search, then counts of the prefix.
    fn body_run_reference(s: &[u8]) -> (usize, u64, bool) {
        let Some(last) = memchr::memrchr(b'\n', s) else {
            return (0, 0, false);
        };
        let mut end = last + 1;
        if let Some(start) = empty_line_ending_at(s, last) {
            end = start;
        }
        for p in memchr::memmem::find_iter(&s[..end], b"\nFrom ") {
            if let Some(start) = empty_line_ending_at(s, p) {
                end = start;
                break;
            }
        }
        let prefix = &s[..end];
        let lf = memchr::memchr_iter(b'\n', prefix).count() as u64;
        (end, lf, prefix.contains(&b'\r'))
    }

    proptest::proptest! {
        #[test]
        fn body_runs_match_the_three_pass_reference(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(&b"\n"[..]),
                    proptest::strategy::Just(&b"\r\n"[..]),
                    proptest::strategy::Just(&b"\r"[..]),
                    proptest::strategy::Just(&b"From x\n"[..]),
                    proptest::strategy::Just(&b"From "[..]),
                    proptest::strategy::Just(&b"a body line of some length\n"[..]),
                    proptest::strategy::Just(&b"F"[..]),
                ],
                0..60,
            ),
        ) {
            let s = pieces.concat();
            let run = body_run(&s);
            let (len, lf, cr) = body_run_reference(&s);
            proptest::prop_assert_eq!((run.len, run.newlines), (len, lf));
            // A CR may be suspected where there is none (the caller then looks), never missed.
            proptest::prop_assert!(run.cr || !cr);
        }
    }

    #[test]
    fn body_runs_stop_before_possible_separators() {
        assert_eq!(body_run_len_of(b"a\nb\n"), 4);
        assert_eq!(body_run_len_of(b"a\nb"), 2, "whole lines only");
        assert_eq!(body_run_len_of(b"a\n\n"), 2, "a final empty line waits");
        assert_eq!(body_run_len_of(b"a\n\r\n"), 2);
        assert_eq!(
            body_run_len_of(b"a\n\nb\n"),
            5,
            "an empty line before an ordinary one"
        );
        assert_eq!(body_run_len_of(b"a\n\nFrom x\n"), 2);
        assert_eq!(body_run_len_of(b"a\n\r\nFrom x\n"), 2);
        assert_eq!(body_run_len_of(b"\nFrom x\n"), 0);
        assert_eq!(
            body_run_len_of(b"a\nFrom x\nb\n"),
            11,
            "no empty line before it"
        );
        assert_eq!(body_run_len_of(b""), 0);
    }

    #[test]
    fn growth_resumes_at_the_last_message() {
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let old = format!("{F1}\nA: 1\n\nx\n\n{F2}\nA: 2\n\ny\n");
        let prefix = index(old.as_bytes());
        let at = prefix.resume_offset().expect("resumable");
        assert_eq!(at, prefix.messages[1].from_offset);
        let new = format!("{old}more\n\n{F1}\nA: 3\n\nz\n");
        let grown = index_mbox_from(&new.as_bytes()[at as usize..], &o, prefix).expect("ok");
        assert_eq!(grown, index(new.as_bytes()));
        assert_eq!(grown.messages.len(), 3);
        // Ending inside a line: from scratch.
        let cut = index(&new.as_bytes()[..new.len() - 1]);
        assert_eq!(cut.resume_offset(), None);
    }

    #[test]
    fn io_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = index_mbox(Failing, &opts(MboxFormat::Mboxo, UidlFormat::Native));
        assert!(matches!(err, Err(IndexError::Io(_))));
    }

    pub(crate) mod props {
        use super::*;
        use proptest::prelude::*;

        /// A reader returning the data in the given chunk sizes (cycled).
        struct Chunked<'a> {
            data: &'a [u8],
            sizes: Vec<usize>,
            n: usize,
        }

        impl Read for Chunked<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let want = self.sizes[self.n % self.sizes.len()];
                self.n += 1;
                let k = want.min(buf.len()).min(self.data.len());
                buf[..k].copy_from_slice(&self.data[..k]);
                self.data = &self.data[k..];
                Ok(k)
            }
        }

        pub(crate) fn both_formats() -> impl Strategy<Value = MboxFormat> {
            prop_oneof![Just(MboxFormat::Mboxo), Just(MboxFormat::Mboxrd)]
        }

        pub(crate) fn every_uidl_format() -> impl Strategy<Value = UidlFormat> {
            prop_oneof![
                Just(UidlFormat::Native),
                Just(UidlFormat::Popa3d),
                Just(UidlFormat::DovecotMd5),
                Just(UidlFormat::XUidl),
                Just(UidlFormat::Imap),
                Just(UidlFormat::DovecotUid),
            ]
        }

        /// Mbox-like bytes from the pieces that decide splits, sizes and UIDLs.
        pub(crate) fn mbox_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"\n\n"[..]),
                Just(&b"\nFrom a@b Thu Nov 26 03:32:14 2026\n"[..]),
                Just(&b"\n\nFrom a@b Thu Nov 26 03:32:14 2026\n"[..]),
                Just(&b"\n\r\nFrom c@d Fri Nov 27 13:02:44 2026\r\n"[..]),
                Just(&b"From x\n"[..]),
                Just(&b"Content-Length: 3\n"[..]),
                Just(&b"Content-Length: 0\n"[..]),
                Just(&b"Content-Length: 40\n"[..]),
                Just(&b"X-UIDL: u1\n"[..]),
                Just(&b"X-UID: 7\n"[..]),
                Just(&b"X-IMAP: 1 2\n"[..]),
                Just(&b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"[..]),
                Just(&b"Status: RO\n"[..]),
                Just(&b">From "[..]),
                Just(&b".\r"[..]),
                Just(&b"abc"[..]),
                Just(&b"\0\xff"[..]),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|p| {
                let mut v = b"From first@x Thu Nov 26 03:32:14 2026\n".to_vec();
                v.extend(p.concat());
                v
            })
        }

        proptest! {
            #[test]
            fn any_bytes_index_consistently(
                data in mbox_bytes(),
                sizes in prop::collection::vec(1usize..64, 1..5),
                format in both_formats(),
                uidl in prop_oneof![
                    Just(UidlFormat::Native),
                    Just(UidlFormat::Popa3d),
                    Just(UidlFormat::DovecotMd5),
                    Just(UidlFormat::XUidl),
                    Just(UidlFormat::Imap),
                ],
            ) {
                let o = opts(format, uidl);
                let idx = index_mbox(&data[..], &o).expect("a From_ line first: always an mbox");
                check_invariants(&idx, &data, format);
                prop_assert!(!idx.messages.is_empty());
                prop_assert_eq!(idx.messages[0].from_offset, 0);
                let chunked = Chunked { data: &data, sizes, n: 0 };
                prop_assert_eq!(index_mbox(chunked, &o).expect("indexes"), idx);
            }

            #[test]
            fn an_index_without_deleted_messages_equals_the_full_index(
                data in mbox_bytes(),
                picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
                format in both_formats(),
                uidl in prop_oneof![
                    Just(UidlFormat::Native),
                    Just(UidlFormat::Popa3d),
                    Just(UidlFormat::XUidl),
                    Just(UidlFormat::Imap),
                    Just(UidlFormat::DovecotUid),
                ],
            ) {
                let o = opts(format, uidl);
                let idx = index_mbox(&data[..], &o).expect("indexes");
                let mut del: Vec<usize> = picks.iter().map(|p| p.index(idx.messages.len())).collect();
                del.sort_unstable();
                del.dedup();
                let mut kept = Vec::new();
                for (i, m) in idx.messages.iter().enumerate() {
                    if del.binary_search(&i).is_err() {
                        kept.extend_from_slice(&data[m.from_offset as usize..idx.next_offset(i) as usize]);
                    }
                }
                if let Some(d) = idx.without(&del) {
                    prop_assert_eq!(d, index_mbox(&kept[..], &o).expect("indexes"));
                }
            }

            #[test]
            fn an_index_survives_its_byte_form(
                data in mbox_bytes(),
                cut in any::<prop::sample::Index>(),
                format in both_formats(),
                uidl in every_uidl_format(),
            ) {
                // Whole files and files cut anywhere (inside a line, a Content-Length body).
                let o = opts(format, uidl);
                let cut = cut.index(data.len() + 1);
                for bytes in [&data[..], &data[..cut]] {
                    let Ok(idx) = index_mbox(bytes, &o) else { continue };
                    let mut v = Vec::new();
                    persist::encode(&idx, &mut v);
                    let mut r = persist::Reader::new(&v);
                    prop_assert_eq!(persist::decode(&mut r), Ok(idx.clone()));
                    prop_assert_eq!(r.remaining(), 0);
                    // A continued index from the decoded prefix is the full one.
                    if bytes.len() < data.len() {
                        let from = idx.resume_offset().unwrap_or(0) as usize;
                        let decoded = persist::decode(&mut persist::Reader::new(&v)).expect("decodes");
                        let grown = index_mbox_from(&data[from..], &o, decoded).expect("indexes");
                        prop_assert_eq!(grown, index_mbox(&data[..], &o).expect("indexes"));
                    }
                }
            }

            #[test]
            fn a_grown_file_continues_to_the_full_index(
                data in mbox_bytes(),
                cut in any::<prop::sample::Index>(),
                format in both_formats(),
                uidl in every_uidl_format(),
            ) {
                let o = opts(format, uidl);
                let full = index_mbox(&data[..], &o).expect("indexes");
                let cut = cut.index(data.len() + 1);
                if let Ok(prefix) = index_mbox(&data[..cut], &o) {
                    let from = prefix.resume_offset().unwrap_or(0) as usize;
                    prop_assert!(from <= cut);
                    let grown = index_mbox_from(&data[from..], &o, prefix).expect("indexes");
                    prop_assert_eq!(grown, full);
                }
            }
        }
    }
}
