//! The byte form of an [`Index`], for the on-disk index cache (`storage::disk_cache`). Pure:
//! bytes in, bytes out.
//!
//! Little-endian, fixed-width fields; a message is 30 bytes plus its UIDL's digest or text. As
//! in memory, a message's end is the next one's start (the recorded length for the last). The
//! decoder trusts nothing: a count is bounded by the bytes left before anything is allocated,
//! and every message must be where an index of a file of the recorded length could put it
//! (increasing offsets, inside the file, sane lengths, a valid unique-id), so a damaged or
//! hostile input yields [`Invalid`], never a panic later nor an offset outside the mailbox.

use super::{Index, IndexedMessage, Resume, FROM_LINE_MAX};
use crate::storage::uidl::{is_valid_uidl, Uidl};

/// Why bytes are not an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

/// The smallest encoded message: offset, size, fingerprint, lengths, flags, UIDL kind.
const MIN_RECORD: usize = 8 * 2 + 4 + 2 + 2 + 1 + 1 + 4;

const KIND_HEX16: u8 = 0;
const KIND_HEX8: u8 = 1;
const KIND_TEXT: u8 = 2;

const FLAG_HIDDEN: u8 = 1;
const FLAG_PSEUDO: u8 = 2;

/// Appends the encoding of `index` to `out`.
pub fn encode(index: &Index, out: &mut Vec<u8>) {
    out.reserve(64 + index.messages.len() * (MIN_RECORD + 16));
    out.extend_from_slice(&index.length.to_le_bytes());
    match index.resume {
        Some(r) => {
            out.push(1 + u8::from(r.cl_allowed));
            out.extend_from_slice(&(r.message as u64).to_le_bytes());
        }
        None => {
            out.push(0);
            out.extend_from_slice(&0u64.to_le_bytes());
        }
    }
    match index.uidvalidity {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.extend_from_slice(&[0; 5]),
    }
    out.push(
        u8::from(index.renamed) | u8::from(index.content_length) << 1 | u8::from(index.imap) << 2,
    );
    out.extend_from_slice(&(index.messages.len() as u64).to_le_bytes());
    for m in &index.messages {
        out.extend_from_slice(&m.from_offset.to_le_bytes());
        out.extend_from_slice(&m.size.to_le_bytes());
        out.extend_from_slice(&m.from_line.to_le_bytes());
        // Both fit: a From_ line is at most FROM_LINE_MAX bytes, a separator at most 2.
        out.extend_from_slice(&(m.header_len() as u16).to_le_bytes());
        out.extend_from_slice(&(m.end_gap() as u16).to_le_bytes());
        let flags =
            if m.hidden { FLAG_HIDDEN } else { 0 } | if m.pseudo() { FLAG_PSEUDO } else { 0 };
        out.push(flags);
        match &m.uidl {
            Uidl::Hex16(b, n) => {
                out.push(KIND_HEX16);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(b);
            }
            Uidl::Hex8(b, n) => {
                out.push(KIND_HEX8);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(b);
            }
            Uidl::Text(t) => {
                out.push(KIND_TEXT);
                // A valid unique-id has at most 70 characters.
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
}

/// A cursor over untrusted bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        if n > self.bytes.len() {
            return Err(Invalid("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Invalid> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Invalid> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, Invalid> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, Invalid> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

/// Decodes an index written by [`encode`], checking that it describes a file of its recorded
/// length consistently (see the module documentation).
pub fn decode(r: &mut Reader<'_>) -> Result<Index, Invalid> {
    let length = r.u64()?;
    let resume_tag = r.u8()?;
    let resume_message = r.u64()?;
    // Only the canonical form is accepted: what decodes, encodes back to the same bytes.
    let resume = match resume_tag {
        0 if resume_message == 0 => None,
        1 | 2 => Some(Resume {
            message: usize::try_from(resume_message).map_err(|_| Invalid("resume point"))?,
            cl_allowed: resume_tag == 2,
        }),
        _ => return Err(Invalid("resume tag")),
    };
    let uidvalidity = match (r.u8()?, r.u32()?) {
        (0, 0) => None,
        (1, v) => Some(v),
        _ => return Err(Invalid("uidvalidity tag")),
    };
    let flags = r.u8()?;
    if flags & !7 != 0 {
        return Err(Invalid("index flags"));
    }
    let count = r.u64()?;
    // Bounded by the bytes present before anything is allocated.
    if count > (r.remaining() / MIN_RECORD) as u64 {
        return Err(Invalid("message count"));
    }
    let count = count as usize;
    let mut messages = Vec::with_capacity(count);
    for i in 0..count {
        let from_offset = r.u64()?;
        let size = r.u64()?;
        let from_line = r.u32()?;
        let header_len = r.u16()?;
        let end_gap = r.u16()?;
        let mflags = r.u8()?;
        let kind = r.u8()?;
        let suffix = r.u32()?;
        let uidl = match kind {
            KIND_HEX16 => Uidl::Hex16(r.array()?, suffix),
            KIND_HEX8 => Uidl::Hex8(r.array()?, suffix),
            KIND_TEXT => {
                let t = r.take(suffix as usize)?;
                if !is_valid_uidl(t) {
                    return Err(Invalid("text unique-id"));
                }
                let t = std::str::from_utf8(t).map_err(|_| Invalid("text unique-id"))?;
                Uidl::Text(t.into())
            }
            _ => return Err(Invalid("unique-id kind")),
        };
        // Within these bounds `layout` keeps both exactly (the checks below read them back).
        if header_len == 0
            || usize::from(header_len) > FROM_LINE_MAX
            || end_gap > 2
            || mflags & !(FLAG_HIDDEN | FLAG_PSEUDO) != 0
        {
            return Err(Invalid("message bounds"));
        }
        let hidden = mflags & FLAG_HIDDEN != 0;
        let pseudo = mflags & FLAG_PSEUDO != 0;
        if hidden && (i > 0 || !pseudo) {
            return Err(Invalid("hidden message"));
        }
        messages.push(IndexedMessage {
            from_offset,
            size,
            from_line,
            uidl,
            layout: IndexedMessage::pack_layout(u64::from(header_len), u64::from(end_gap), pseudo),
            hidden,
        });
    }
    // Each message ends where the next starts (the last at the recorded length), after its
    // From_ line: offsets increase and stay inside the file.
    let ends = messages
        .iter()
        .skip(1)
        .map(|n| n.from_offset)
        .chain(std::iter::once(length));
    for (m, next_offset) in messages.iter().zip(ends) {
        let header_end = m.from_offset.checked_add(m.header_len());
        let body_end = next_offset.checked_sub(m.end_gap());
        let (Some(header_end), Some(body_end)) = (header_end, body_end) else {
            return Err(Invalid("message bounds"));
        };
        if header_end > body_end
            // Sizes count line ends as CRLF: at most twice the content, plus a final CRLF.
            || m.size > (body_end - header_end).saturating_mul(2).saturating_add(2)
        {
            return Err(Invalid("message bounds"));
        }
    }
    if resume.is_some_and(|r| r.message >= messages.len()) {
        return Err(Invalid("resume point"));
    }
    Ok(Index {
        messages,
        length,
        resume,
        uidvalidity,
        renamed: flags & 1 != 0,
        content_length: flags & 2 != 0,
        imap: flags & 4 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::format::{MboxFormat, UidlFormat};
    use crate::storage::index::{index_mbox, IndexOptions};

    fn sample() -> Index {
        let data = b"From a@b Thu Nov 26 03:32:14 2026\nX-UIDL: abc\n\nhello\n\n\
                     From c@d Thu Nov 26 03:32:14 2026\nSubject: y\n\nbye\n";
        let o = IndexOptions {
            format: MboxFormat::Mboxo,
            uidl: UidlFormat::XUidl,
        };
        index_mbox(&data[..], &o).expect("indexes")
    }

    fn round_trip(ix: &Index) -> Result<Index, Invalid> {
        let mut v = Vec::new();
        encode(ix, &mut v);
        let mut r = Reader::new(&v);
        let out = decode(&mut r)?;
        assert_eq!(r.remaining(), 0);
        Ok(out)
    }

    #[test]
    fn round_trips_text_and_digest_uidls() {
        let ix = sample();
        assert!(matches!(ix.messages[0].uidl, Uidl::Text(_)));
        assert_eq!(round_trip(&ix), Ok(ix));
    }

    #[test]
    fn every_truncation_is_refused() {
        let mut v = Vec::new();
        encode(&sample(), &mut v);
        for n in 0..v.len() {
            assert!(
                decode(&mut Reader::new(&v[..n])).is_err(),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn offsets_outside_the_file_or_out_of_order_are_refused() {
        let good = sample();
        let mut longer = good.clone();
        longer.length += 1;
        assert!(round_trip(&longer).is_ok());
        let mut cut = good.clone();
        cut.length = good.messages[1].header_offset() - 1;
        assert_eq!(round_trip(&cut), Err(Invalid("message bounds")));
        let mut outside = good.clone();
        outside.messages[1].from_offset = good.length + 1;
        assert_eq!(round_trip(&outside), Err(Invalid("message bounds")));
        let mut back = good.clone();
        back.messages[1].from_offset = good.messages[0].from_offset;
        assert_eq!(round_trip(&back), Err(Invalid("message bounds")));
        let mut inside = good.clone();
        inside.messages[1].from_offset = good.messages[0].header_offset() - 1;
        assert_eq!(round_trip(&inside), Err(Invalid("message bounds")));
        let mut short = good.clone();
        let m = &mut short.messages[0];
        m.layout = IndexedMessage::pack_layout(2000, m.end_gap(), m.pseudo());
        assert_eq!(round_trip(&short), Err(Invalid("message bounds")));
        let mut wrap = good.clone();
        let m = &mut wrap.messages[0];
        m.layout = IndexedMessage::pack_layout(m.header_len(), 2, m.pseudo());
        wrap.messages[1].from_offset = 1;
        assert!(round_trip(&wrap).is_err());
        let mut big = good.clone();
        big.messages[0].size = u64::MAX;
        assert_eq!(round_trip(&big), Err(Invalid("message bounds")));
        // Offsets near the top of the range: no overflow in the size bound.
        let mut far = good.clone();
        far.length = u64::MAX;
        assert!(round_trip(&far).is_ok());
        let mut hidden = good.clone();
        hidden.messages[1].hidden = true;
        let m = &mut hidden.messages[1];
        m.layout = IndexedMessage::pack_layout(m.header_len(), m.end_gap(), true);
        assert_eq!(round_trip(&hidden), Err(Invalid("hidden message")));
        let mut resume = good;
        resume.resume = Some(Resume {
            message: 2,
            cl_allowed: true,
        });
        assert_eq!(round_trip(&resume), Err(Invalid("resume point")));
    }

    #[test]
    fn an_absurd_count_allocates_nothing() {
        let mut v = Vec::new();
        encode(&sample(), &mut v);
        // The count sits after length (8), resume (9), uidvalidity (5) and flags (1).
        v[23..31].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode(&mut Reader::new(&v)).err(),
            Some(Invalid("message count"))
        );
    }
}
