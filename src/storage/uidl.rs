//! UIDL schemes (`uidl_format`).
//!
//! Every scheme's inputs are gathered during the single index pass ([`MessageUidl`] is fed the
//! message's lines by the indexer); [`assign`] then turns them into the final, unique UIDLs.
//!
//! - `native` (default): the 128-bit XXH3 hash (big-endian, as 32 hex digits) over the From_ line and the message
//!   content as stored, minus mailbox-private header lines (`Status`, `X-Status`, `X-UID`, …,
//!   which other programs rewrite) and minus the separator line, with every CRLF read as LF
//!   (Dovecot, for one, rewrites a CRLF header terminator as LF); 32 lowercase hex digits.
//!   Stable across sessions, restarts, deletions of other messages, and rewrites by mutt or
//!   Dovecot that only touch flags. Identical copies (same From_ line and content) share the
//!   digest and get an occurrence suffix (`-2`, `-3`, … in maildrop order); when an earlier copy
//!   is deleted a later one may inherit the shorter UIDL, which is harmless because the content
//!   is byte-identical.
//! - `popa3d`: popa3d 1.0's algorithm, byte for byte: MD5 over the raw header lines (name,
//!   value, folded continuations and the LF) of the first `Received:`, any `Delivered-To:`,
//!   `Date:` and `Message-ID:` only while no `Received:` has been seen yet, and `X-Delivery-ID:`
//!   (capital X only, as popa3d checks); the header section ends at a line that is exactly
//!   "\n". Shown as digest bytes 3,2,1,0,7,6,5,4 in hex (16 digits). popa3d lets identical
//!   messages collide; we add the occurrence suffix instead.
//! - `dovecot-md5`: Dovecot's `pop3_uidl_format = %m` with `mbox_md5 = apop3d` (its default),
//!   which is *not* popa3d's output: MD5 over the header *values* (after the colon and its
//!   blanks, without line ends; folded lines keep their leading blanks) of the first
//!   `Received` field, `Date`/`Message-ID` while no `Received` has been seen, and every
//!   `Delivered-To` and `X-Delivery-ID` (names compared case-insensitively, blanks before the
//!   colon ignored); 32 hex digits. Identical messages collide in Dovecot; we add the suffix.
//! - `x-uidl`: the value of the first `X-UIDL:` header (qpopper, mailutils) when it is 1–70
//!   characters in 0x21–0x7E; otherwise the native UIDL.
//! - `imap`: `%08x%08x` of the UIDVALIDITY (`X-IMAPbase:`/`X-IMAP:` of the first message) and
//!   the message's `X-UID:` (UW c-client's order); native when either is missing.
//! - `dovecot-uid`: the same numbers in Dovecot's default order (`%08Xu%08Xv`: X-UID, then
//!   UIDVALIDITY, lowercase hex), as Dovecot shows them for an mbox it has synced.
//!
//!   Without a pseudo message, the UIDVALIDITY is only in the first message's `X-IMAPbase`.
//!   Like Dovecot and c-client, a commit that deletes that message moves the field to the new
//!   first message (`imapbase`), so the other messages keep their UIDLs.
//!
//! Whatever the scheme, [`assign`] guarantees uniqueness within the maildrop: a repeated value
//! gets the next free suffix `-N` (N ≥ 2), the base being shortened if the result would exceed
//! 70 characters. A forged `X-UIDL` can therefore never shadow another
//! message.

use std::collections::{HashMap, HashSet};

use md5::{Digest as _, Md5};
use xxhash_rust::xxh3::Xxh3;

use crate::storage::format::UidlFormat;

/// RFC 1939: a unique-id is 1 to 70 characters in 0x21..=0x7E.
pub const MAX_UIDL_LEN: usize = 70;

/// Whether `s` is a valid RFC 1939 unique-id.
pub fn is_valid_uidl(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= MAX_UIDL_LEN && s.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

/// A unique-id as the index keeps it: digests stay bytes (rendered to hex only when sent), so a
/// message costs 24 bytes of UIDL instead of a heap string.
///
/// Values are canonical: [`Uidl::parse`] turns a string that *looks* like a digest (32 or 16
/// lowercase hex digits, optionally `-N` with N ≥ 2 and no leading zero) into the digest form,
/// so two values are equal exactly when their renderings are, and ordering is cheap.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Uidl {
    /// 32 hex digits (native, dovecot-md5), then `-N` when the suffix is ≥ 2.
    Hex16([u8; 16], u32),
    /// 16 hex digits (popa3d, imap, dovecot-uid), then `-N` when the suffix is ≥ 2.
    Hex8([u8; 8], u32),
    /// Anything else (an `X-UIDL:` value), suffix included.
    Text(Box<str>),
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Uidl {
    /// The canonical value of a unique-id string.
    pub fn parse(s: &str) -> Uidl {
        let (base, suffix) = match s.rsplit_once('-') {
            Some((b, n)) => match parse_suffix(n) {
                Some(n) => (b, n),
                None => (s, 0),
            },
            None => (s, 0),
        };
        let hex = |b: &str, out: &mut [u8]| -> bool {
            let b = b.as_bytes();
            if b.len() != out.len() * 2 {
                return false;
            }
            for (i, pair) in b.chunks(2).enumerate() {
                match (hex_digit(pair[0]), hex_digit(pair[1])) {
                    (Some(h), Some(l)) => out[i] = h << 4 | l,
                    _ => return false,
                }
            }
            true
        };
        let mut b16 = [0u8; 16];
        if hex(base, &mut b16) {
            return Uidl::Hex16(b16, suffix);
        }
        let mut b8 = [0u8; 8];
        if hex(base, &mut b8) {
            return Uidl::Hex8(b8, suffix);
        }
        Uidl::Text(s.into())
    }

    /// The rendered length in characters.
    pub fn len(&self) -> usize {
        let suffix_len = |n: u32| {
            if n >= 2 {
                1 + n.ilog10() as usize + 1
            } else {
                0
            }
        };
        match self {
            Uidl::Hex16(_, n) => 32 + suffix_len(*n),
            Uidl::Hex8(_, n) => 16 + suffix_len(*n),
            Uidl::Text(t) => t.len(),
        }
    }

    /// Never true (a unique-id has 1 to 70 characters); for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This base value with the occurrence suffix `-n` (n ≥ 2), shortened to fit 70 characters.
    fn with_suffix(&self, n: u32) -> Uidl {
        match self {
            Uidl::Hex16(b, 0) => Uidl::Hex16(*b, n),
            Uidl::Hex8(b, 0) => Uidl::Hex8(*b, n),
            other => {
                let base = other.to_string();
                let suffix = format!("-{n}");
                let keep = base.len().min(MAX_UIDL_LEN - suffix.len());
                // Bases are ASCII (validated or generated), so any byte index is a char boundary.
                Uidl::parse(&format!("{}{}", &base[..keep], suffix))
            }
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// `N` of a `-N` suffix as the uniqueness pass writes it: N ≥ 2, no leading zero.
fn parse_suffix(n: &str) -> Option<u32> {
    if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|&n| n >= 2)
}

impl std::fmt::Display for Uidl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 32];
        let (bytes, n): (&[u8], u32) = match self {
            Uidl::Hex16(b, n) => (b, *n),
            Uidl::Hex8(b, n) => (b, *n),
            Uidl::Text(t) => return f.write_str(t),
        };
        for (i, b) in bytes.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).unwrap_or_default())?;
        if n >= 2 {
            write!(f, "-{n}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Uidl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl From<&str> for Uidl {
    fn from(s: &str) -> Self {
        Uidl::parse(s)
    }
}

impl PartialEq<str> for Uidl {
    fn eq(&self, other: &str) -> bool {
        // Values are canonical: equal renderings are equal values.
        *self == Uidl::parse(other)
    }
}

impl PartialEq<&str> for Uidl {
    fn eq(&self, other: &&str) -> bool {
        *self == Uidl::parse(other)
    }
}

impl PartialEq<String> for Uidl {
    fn eq(&self, other: &String) -> bool {
        *self == Uidl::parse(other)
    }
}

/// popa3d's header-line hash, driven by line fragments exactly as popa3d's parser sees them.
#[derive(Debug, Clone)]
pub struct Popa3dHasher {
    md5: Md5,
    header: bool,
    fixed: bool,
    received: bool,
}

impl Default for Popa3dHasher {
    fn default() -> Self {
        Popa3dHasher {
            md5: Md5::new(),
            header: true,
            fixed: false,
            received: false,
        }
    }
}

impl Popa3dHasher {
    /// Feed one fragment of message content (after the From_ line). `start`: the fragment
    /// begins a line.
    pub fn fragment(&mut self, line: &[u8], start: bool) {
        if !self.header || line.is_empty() {
            return;
        }
        if start {
            if line[0] == b'\n' {
                self.header = false;
                return;
            }
            self.fixed = match line[0] {
                b'\t' | b' ' => self.fixed,
                b'R' | b'r' => {
                    let is_received = starts_with_ci(line, b"Received:");
                    let fixed = !self.received && is_received;
                    self.received |= is_received;
                    fixed
                }
                b'D' | b'd' => {
                    starts_with_ci(line, b"Delivered-To:")
                        || (!self.received && starts_with_ci(line, b"Date:"))
                }
                b'M' | b'm' => !self.received && starts_with_ci(line, b"Message-ID:"),
                b'X' => starts_with_ci(line, b"X-Delivery-ID:"),
                _ => false,
            };
        }
        if self.fixed {
            self.md5.update(line);
        }
    }

    /// The UIDL popa3d shows: digest bytes 3,2,1,0,7,6,5,4 as lowercase hex.
    pub fn finish(self) -> Uidl {
        let h = self.md5.finalize();
        let mut b = [0u8; 8];
        for (o, i) in b.iter_mut().zip([3, 2, 1, 0, 7, 6, 5, 4]) {
            *o = h[i];
        }
        Uidl::Hex8(b, 0)
    }
}

/// What Dovecot's apop3d hash does with the lines of the current header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DovecotField {
    Ignored,
    /// `Date`, `Message-ID`: hashed while no `Received` field has been seen.
    BeforeReceived,
    /// `Delivered-To`, `X-Delivery-ID`.
    Always,
    Received,
}

/// Dovecot's `mbox_md5 = apop3d` header hash (the `%m` of `pop3_uidl_format`), driven by line
/// fragments of the message content.
#[derive(Debug, Clone)]
pub struct DovecotMd5Hasher {
    md5: Md5,
    header: bool,
    field: DovecotField,
    seen_received: bool,
    /// The current field is the first `Received`: once it ends, later ones are ignored.
    in_first_received: bool,
}

impl Default for DovecotMd5Hasher {
    fn default() -> Self {
        DovecotMd5Hasher {
            md5: Md5::new(),
            header: true,
            field: DovecotField::Ignored,
            seen_received: false,
            in_first_received: false,
        }
    }
}

impl DovecotMd5Hasher {
    /// Feed one fragment of message content (after the From_ line). `start`: the fragment
    /// begins a line.
    pub fn fragment(&mut self, line: &[u8], start: bool) {
        if !self.header || line.is_empty() {
            return;
        }
        let mut value = line;
        if start {
            if line == b"\n" || line == b"\r\n" {
                self.header = false;
                return;
            }
            if !matches!(line[0], b' ' | b'\t') {
                // A new field: the first Received field (with its folded lines) is over.
                if self.in_first_received {
                    self.in_first_received = false;
                    self.seen_received = true;
                }
                let (name, rest) = match memchr::memchr(b':', line) {
                    Some(colon) => (&line[..colon], &line[colon + 1..]),
                    None => (strip_eol(line), &b""[..]),
                };
                let name = name.trim_ascii_end();
                let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
                self.field = if is(b"Date") || is(b"Message-ID") {
                    DovecotField::BeforeReceived
                } else if is(b"Delivered-To") || is(b"X-Delivery-ID") {
                    DovecotField::Always
                } else if is(b"Received") {
                    DovecotField::Received
                } else {
                    DovecotField::Ignored
                };
                if self.field == DovecotField::Received && !self.seen_received {
                    self.in_first_received = true;
                }
                let blanks = rest
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                value = &rest[blanks..];
            }
        }
        let hashed = match self.field {
            DovecotField::Ignored => false,
            DovecotField::BeforeReceived => !self.seen_received,
            DovecotField::Always => true,
            DovecotField::Received => self.in_first_received,
        };
        if hashed {
            self.md5.update(strip_eol(value));
        }
    }

    /// The UIDL Dovecot shows: the whole digest in lowercase hex.
    pub fn finish(self) -> Uidl {
        Uidl::Hex16(self.md5.finalize().into(), 0)
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    }
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Per-message UIDL inputs, fed during the index pass.
#[derive(Clone)]
pub struct MessageUidl {
    /// XXH3-128: one fast pass over the bytes (a cryptographic digest cost most of the index
    /// time); collisions only add an occurrence suffix.
    native: Box<Xxh3>,
    /// A CR ended the last hashed fragment: dropped if the next one starts with LF.
    native_cr: bool,
    popa3d: Option<Popa3dHasher>,
    dovecot: Option<DovecotMd5Hasher>,
}

impl MessageUidl {
    pub fn new(scheme: UidlFormat) -> Self {
        MessageUidl {
            native: Box::default(),
            native_cr: false,
            popa3d: (scheme == UidlFormat::Popa3d).then(Popa3dHasher::default),
            dovecot: (scheme == UidlFormat::DovecotMd5).then(DovecotMd5Hasher::default),
        }
    }

    /// Whether only the native hash still looks at content (every header hash has seen the
    /// end of its header section), so body lines may come in blocks.
    pub fn body_only(&self) -> bool {
        self.popa3d.as_ref().is_none_or(|p| !p.header)
            && self.dovecot.as_ref().is_none_or(|d| !d.header)
    }

    /// The message's From_ line (with its line end).
    pub fn from_line(&mut self, line: &[u8]) {
        self.hash_native(line);
    }

    /// A fragment of message content. `visible`: not part of a mailbox-private header field.
    pub fn content(&mut self, fragment: &[u8], start: bool, visible: bool) {
        if visible {
            self.hash_native(fragment);
        }
        if let Some(p) = &mut self.popa3d {
            p.fragment(fragment, start);
        }
        if let Some(d) = &mut self.dovecot {
            d.fragment(fragment, start);
        }
    }

    /// Whole body lines (see [`MessageUidl::body_only`]); `has_cr`: whether `block` holds a
    /// CR at all, which the caller's line count already knows, so most blocks skip the CR
    /// search.
    pub fn body_lines(&mut self, block: &[u8], has_cr: bool) {
        if has_cr || self.native_cr {
            return self.content(block, true, true);
        }
        self.native.update(block);
        if let Some(p) = &mut self.popa3d {
            p.fragment(block, true);
        }
        if let Some(d) = &mut self.dovecot {
            d.fragment(block, true);
        }
    }

    /// Hash `bytes` with CRLF read as LF, across fragment boundaries too.
    fn hash_native(&mut self, mut bytes: &[u8]) {
        if self.native_cr {
            self.native_cr = false;
            if bytes.first() != Some(&b'\n') {
                self.native.update(b"\r");
            }
        }
        // Skip every CR that precedes an LF (memchr for CR first: most files have none).
        while let Some(i) = memchr::memchr(b'\r', bytes) {
            if bytes.get(i + 1) == Some(&b'\n') {
                self.native.update(&bytes[..i]);
                bytes = &bytes[i + 1..];
            } else if i + 1 == bytes.len() {
                break;
            } else {
                self.native.update(&bytes[..=i]);
                bytes = &bytes[i + 1..];
            }
        }
        match bytes.strip_suffix(b"\r") {
            Some(rest) => {
                self.native.update(rest);
                self.native_cr = true;
            }
            None => self.native.update(bytes),
        }
    }

    /// Close the message's inputs; `fields` are the header values the index pass captured.
    pub fn finish(mut self, fields: UidlFields) -> UidlInput {
        if self.native_cr {
            self.native.update(b"\r");
        }
        UidlInput {
            native: Uidl::Hex16(self.native.digest128().to_be_bytes(), 0),
            popa3d: self.popa3d.map(Popa3dHasher::finish),
            dovecot_md5: self.dovecot.map(DovecotMd5Hasher::finish),
            x_uidl: fields
                .x_uidl
                .filter(|v| is_valid_uidl(v.as_bytes()))
                .map(|v| Uidl::parse(&v)),
            x_uid: fields.x_uid,
            uidvalidity: fields.uidvalidity,
        }
    }
}

impl std::fmt::Debug for MessageUidl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageUidl")
            .field("native_cr", &self.native_cr)
            .field("popa3d", &self.popa3d)
            .field("dovecot", &self.dovecot)
            .finish_non_exhaustive()
    }
}

/// Header values the indexer captured for UIDL schemes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidlFields {
    /// Trimmed value of the first `X-UIDL:` field.
    pub x_uidl: Option<String>,
    /// `X-UID:` as a number.
    pub x_uid: Option<u32>,
    /// UIDVALIDITY from `X-IMAPbase:` or `X-IMAP:` (only meaningful on the first message).
    pub uidvalidity: Option<u32>,
}

/// The finished per-message inputs; small, kept until the whole maildrop is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlInput {
    pub native: Uidl,
    pub popa3d: Option<Uidl>,
    pub dovecot_md5: Option<Uidl>,
    pub x_uidl: Option<Uidl>,
    pub x_uid: Option<u32>,
    pub uidvalidity: Option<u32>,
}

/// Parse the first number of an `X-IMAPbase:`/`X-IMAP:` value (`uidvalidity uidnext [kw…]`).
pub fn parse_uidvalidity(value: &[u8]) -> Option<u32> {
    let first = value
        .split(|b| b.is_ascii_whitespace())
        .find(|t| !t.is_empty())?;
    parse_u32(first)
}

/// A decimal `u32` (surrounding blanks allowed).
pub fn parse_u32(value: &[u8]) -> Option<u32> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// What one message contributes to its UIDL once the scheme is known: the scheme's own value
/// (or the native fallback), plus the numbers the IMAP schemes combine with the first
/// message's UIDVALIDITY. The indexer keeps this instead of every scheme's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlChoice {
    pub value: Uidl,
    pub x_uid: Option<u32>,
    pub uidvalidity: Option<u32>,
}

impl UidlInput {
    pub fn choose(self, scheme: UidlFormat) -> UidlChoice {
        let value = match scheme {
            UidlFormat::Native | UidlFormat::Imap | UidlFormat::DovecotUid => self.native,
            UidlFormat::Popa3d => self.popa3d.unwrap_or(self.native),
            UidlFormat::DovecotMd5 => self.dovecot_md5.unwrap_or(self.native),
            UidlFormat::XUidl => self.x_uidl.unwrap_or(self.native),
        };
        UidlChoice {
            value,
            x_uid: self.x_uid,
            uidvalidity: self.uidvalidity,
        }
    }
}

/// The UIDL of the IMAP-based schemes, when the message has what they need: the first
/// message's UIDVALIDITY and its own X-UID.
pub fn imap_uidl(scheme: UidlFormat, uidvalidity: Option<u32>, x_uid: Option<u32>) -> Option<Uidl> {
    let pair = |a: u32, b: u32| {
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&a.to_be_bytes());
        v[4..].copy_from_slice(&b.to_be_bytes());
        Uidl::Hex8(v, 0)
    };
    match (scheme, uidvalidity, x_uid) {
        (UidlFormat::Imap, Some(v), Some(u)) => Some(pair(v, u)),
        (UidlFormat::DovecotUid, Some(v), Some(u)) => Some(pair(u, v)),
        _ => None,
    }
}

/// Make the UIDLs held by `items` (in maildrop order) unique, in place. `get` and `get_mut`
/// reach an item's UIDL.
///
/// A base UIDL that occurs once is kept. Of repeated bases, the first copy keeps the plain
/// value and later copies get `-2`, `-3`, ... (skipping any value another message already
/// has), so identical messages and forged `X-UIDL:` headers never share a UIDL. Duplicates
/// are found by sorting 4-byte positions (no per-message copies); returns whether any UIDL
/// was renamed.
pub fn make_unique<T>(
    items: &mut [T],
    get: impl Fn(&T) -> &Uidl,
    mut get_mut: impl FnMut(&mut T) -> &mut Uidl,
) -> bool {
    let Ok(n) = u32::try_from(items.len()) else {
        return false;
    };
    let mut order: Vec<u32> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| {
        get(&items[a as usize])
            .cmp(get(&items[b as usize]))
            .then(a.cmp(&b))
    });
    let dup = order
        .windows(2)
        .any(|w| get(&items[w[0] as usize]) == get(&items[w[1] as usize]));
    if !dup {
        return false;
    }
    let renames = {
        let items: &[T] = items;
        let value = |i: u32| get(&items[i as usize]);
        let exists = |u: &Uidl| order.binary_search_by(|&i| value(i).cmp(u)).is_ok();
        // Whether item i is a repeated base's second or later copy: its predecessor in sorted
        // order (ties sorted by position) has the same value.
        let mut later_copy = vec![false; items.len()];
        for w in order.windows(2) {
            if value(w[0]) == value(w[1]) {
                later_copy[w[1] as usize] = true;
            }
        }
        // Next suffix per repeated base, so many copies (or a flood of one forged X-UIDL) cost
        // O(n log n), not O(n²).
        let mut next_suffix: HashMap<&Uidl, u32> = HashMap::new();
        let mut generated: HashSet<Uidl> = HashSet::new();
        let mut renames = Vec::new();
        for (i, &later) in later_copy.iter().enumerate() {
            if !later {
                continue;
            }
            let b = &items[i];
            let base = get(b);
            let n = next_suffix.entry(base).or_insert(2);
            loop {
                let candidate = base.with_suffix(*n);
                *n = n.saturating_add(1);
                if !exists(&candidate) && !generated.contains(&candidate) {
                    generated.insert(candidate.clone());
                    renames.push((i, candidate));
                    break;
                }
            }
        }
        renames
    };
    for (i, name) in renames {
        *get_mut(&mut items[i]) = name;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the indexer does with the inputs of all messages, in maildrop order.
    fn assign_inputs(scheme: UidlFormat, inputs: Vec<UidlInput>) -> Vec<String> {
        let uidvalidity = inputs.first().and_then(|i| i.uidvalidity);
        let mut uidls: Vec<Uidl> = inputs
            .into_iter()
            .map(|i| {
                let c = i.choose(scheme);
                imap_uidl(scheme, uidvalidity, c.x_uid).unwrap_or(c.value)
            })
            .collect();
        make_unique(&mut uidls, |u| u, |u| u);
        uidls.iter().map(Uidl::to_string).collect()
    }

    fn input(native: &str) -> UidlInput {
        UidlInput {
            native: Uidl::parse(native),
            popa3d: None,
            dovecot_md5: None,
            x_uidl: None,
            x_uid: None,
            uidvalidity: None,
        }
    }

    #[test]
    fn duplicates_get_suffixes_and_forged_suffixes_do_not_collide() {
        let mut a = input("n1");
        a.x_uidl = Some(Uidl::parse("abc"));
        let mut b = input("n2");
        b.x_uidl = Some(Uidl::parse("abc-2"));
        let mut c = input("n3");
        c.x_uidl = Some(Uidl::parse("abc"));
        let mut d = input("n4");
        d.x_uidl = Some(Uidl::parse("abc"));
        let got = assign_inputs(UidlFormat::XUidl, vec![a, b, c, d]);
        assert_eq!(got, ["abc", "abc-2", "abc-3", "abc-4"]);
    }

    #[test]
    fn uidl_values_are_canonical() {
        for s in [
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef-2",
            "0123456789abcdef",
            "0123456789abcdef-17",
            "0123456789ABCDEF",
            "0123456789abcdef-1",
            "0123456789abcdef-02",
            "0123456789abcdef-",
            "abc-2",
            "x",
        ] {
            assert_eq!(Uidl::parse(s).to_string(), s);
            assert_eq!(Uidl::parse(s).len(), s.len());
        }
        assert!(matches!(
            Uidl::parse("0123456789abcdef-17"),
            Uidl::Hex8(_, 17)
        ));
        assert!(matches!(Uidl::parse("0123456789abcdef-1"), Uidl::Text(_)));
        // A forged X-UIDL that looks like another message's digest is that digest: the
        // uniqueness pass sees the collision.
        let d = Uidl::Hex16([0xab; 16], 0);
        let mut v = vec![d.clone(), Uidl::parse(&d.to_string())];
        assert!(make_unique(&mut v, |u| u, |u| u));
        assert_eq!(v[1].to_string(), format!("{d}-2"));
    }

    #[test]
    fn many_copies_are_linear() {
        let inputs = vec![input("same"); 50_000];
        let got = assign_inputs(UidlFormat::Native, inputs.clone());
        assert_eq!(got[0], "same");
        assert_eq!(got[49_999], "same-50000");
    }

    #[test]
    fn native_digest_reads_crlf_as_lf_across_fragments() {
        let digest = |parts: &[&[u8]]| {
            let mut m = MessageUidl::new(UidlFormat::Native);
            m.from_line(parts[0]);
            for p in &parts[1..] {
                m.content(p, true, true);
            }
            m.finish(UidlFields::default()).native
        };
        let lf = digest(&[b"From a\n", b"A: b\n", b"\n", b"x\ry\n"]);
        assert_eq!(
            lf,
            digest(&[b"From a\r\n", b"A: b\r\n", b"\r\n", b"x\ry\r\n"])
        );
        assert_eq!(
            lf,
            digest(&[
                b"From a\r",
                b"\n",
                b"A: b\r",
                b"\n\r",
                b"\n",
                b"x\r",
                b"y\n"
            ])
        );
        // A bare CR is content.
        assert_ne!(lf, digest(&[b"From a\n", b"A: b\n", b"\n", b"xy\n"]));
        assert_ne!(lf, digest(&[b"From a\n", b"A: b\n", b"\n", b"x\ry\n\r"]));
    }

    #[test]
    fn long_bases_are_shortened_to_fit() {
        let long = "x".repeat(70);
        let got = assign_inputs(UidlFormat::Native, vec![input(&long), input(&long)]);
        assert_eq!(got[0], long);
        assert_eq!(got[1].len(), 70);
        assert!(got[1].ends_with("-2"));
        assert!(got.iter().all(|u| is_valid_uidl(u.as_bytes())));
    }

    #[test]
    fn imap_scheme_uses_first_message_uidvalidity() {
        let mut first = input("n1");
        first.uidvalidity = Some(0x3e8a_1b2c);
        first.x_uid = Some(1);
        let mut second = input("n2");
        second.x_uid = Some(0x2a);
        let third = input("n3");
        let got = assign_inputs(UidlFormat::Imap, vec![first, second, third]);
        assert_eq!(got, ["3e8a1b2c00000001", "3e8a1b2c0000002a", "n3"]);
    }

    #[test]
    fn invalid_x_uidl_values_fall_back() {
        let m = MessageUidl::new(UidlFormat::XUidl);
        let fields = UidlFields {
            x_uidl: Some("has space".into()),
            ..Default::default()
        };
        let i = m.finish(fields);
        assert_eq!(i.x_uidl, None);
        assert_eq!(i.native.to_string().len(), 32);
    }

    #[test]
    fn popa3d_hash_picks_popa3d_fields() {
        // Only the first Received: line (with its continuation) and Delivered-To: count once a
        // Received: was seen; Date:/Message-ID: after it are ignored; lowercase x- is ignored.
        let mut a = Popa3dHasher::default();
        for l in [
            "Received: from a\n",
            "\tby b\n",
            "Received: from c\n",
            "Date: x\n",
            "Message-ID: <m>\n",
            "Delivered-To: u\n",
            "x-delivery-id: q\n",
            "\n",
            "Received: body\n",
        ] {
            a.fragment(l.as_bytes(), true);
        }
        let mut md5 = Md5::new();
        md5.update(b"Received: from a\n\tby b\nDelivered-To: u\n");
        let h = md5.finalize();
        let want: String = [3, 2, 1, 0, 7, 6, 5, 4]
            .iter()
            .map(|&i| format!("{:02x}", h[i]))
            .collect();
        assert_eq!(a.finish().to_string(), want);
    }

    #[test]
    fn uidvalidity_and_uid_parsing() {
        assert_eq!(
            parse_uidvalidity(b" 1234567890 0000000042 $Junk"),
            Some(1234567890)
        );
        assert_eq!(parse_uidvalidity(b""), None);
        assert_eq!(parse_u32(b" 17 "), Some(17));
        assert_eq!(parse_u32(b"99999999999"), None);
        assert_eq!(parse_u32(b"1x"), None);
    }
}
