//! The mbox indexer on arbitrary bytes, in every `MboxFormat` dialect.
//!
//! Input: `[selector, mbox...]`; the selector picks the UIDL scheme and the read chunking.
//!
//! Invariants: no panic; NotMbox exactly when the first non-empty line does not start with
//! "From "; the messages cover the file from the first From_ line to the end, in order and
//! without overlap (`from < header <= end <= next`, `next` = the next message's `from`);
//! every message starts with "From " (a valid From_ line after an empty line for all but the
//! first), only an empty line separates content from the next message; the From_ line
//! fingerprint matches; each size equals the octets the encoder emits for the content, once
//! unstuffed (and the wire output passes the encoder checks); UIDLs are valid and unique;
//! reading in small chunks gives the same index, and so does indexing in parts on several threads.
#![no_main]

mod common;

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::storage::encode::{encode_bytes, EncodeOptions};
use mboxpopd::storage::index::{
    from_line_fingerprint, index_mbox, is_from_line, parallel, IndexError, IndexOptions,
};
use mboxpopd::storage::uidl::is_valid_uidl;

const UIDLS: [UidlFormat; 6] = [
    UidlFormat::Native,
    UidlFormat::Popa3d,
    UidlFormat::XUidl,
    UidlFormat::Imap,
    UidlFormat::DovecotMd5,
    UidlFormat::DovecotUid,
];

struct Chunked<'a> {
    data: &'a [u8],
    size: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let uidl = UIDLS[selector as usize % UIDLS.len()];
    let chunk = (selector as usize / UIDLS.len()) % 7 + 1;

    // Leading empty lines belong to no message.
    let mut lead = 0;
    loop {
        if bytes[lead..].starts_with(b"\n") {
            lead += 1;
        } else if bytes[lead..].starts_with(b"\r\n") {
            lead += 2;
        } else {
            break;
        }
    }
    let rest = &bytes[lead..];

    for format in [MboxFormat::Mboxo, MboxFormat::Mboxrd] {
        let opts = IndexOptions { format, uidl };
        let idx = match index_mbox(bytes, &opts) {
            Ok(idx) => idx,
            Err(IndexError::NotMbox(_)) => {
                assert!(
                    !rest.is_empty() && !rest.starts_with(b"From "),
                    "a file starting with a From_ line was rejected"
                );
                continue;
            }
            Err(e) => panic!("unexpected error {e}"),
        };
        assert!(
            rest.is_empty() || rest.starts_with(b"From "),
            "a file not starting with \"From \" was accepted"
        );
        assert_eq!(idx.length, bytes.len() as u64);
        if !rest.is_empty() {
            assert!(!idx.messages.is_empty());
            assert_eq!(idx.messages[0].from_offset, lead as u64);
        }
        for (i, m) in idx.messages.iter().enumerate() {
            assert!(m.from_offset < m.header_offset());
            assert!(m.header_offset() <= idx.end_offset(i));
            assert!(idx.end_offset(i) <= idx.next_offset(i));
            assert!(idx.next_offset(i) <= idx.length);
            let from_line = &bytes[m.from_offset as usize..m.header_offset() as usize];
            assert!(from_line.starts_with(b"From "));
            assert!(
                from_line.ends_with(b"\n") || m.header_offset() == idx.length,
                "the From_ line of message {i} is cut short"
            );
            assert_eq!(m.from_line, from_line_fingerprint(from_line));
            if i > 0 {
                assert!(
                    is_from_line(from_line),
                    "message {i} starts at an invalid From_ line"
                );
                let sep = &bytes[idx.end_offset(i - 1) as usize..m.from_offset as usize];
                assert!(
                    sep == b"\n" || sep == b"\r\n",
                    "message {i} does not follow an empty line"
                );
            }
            let gap = &bytes[idx.end_offset(i) as usize..idx.next_offset(i) as usize];
            assert!(
                gap.is_empty() || gap == b"\n" || gap == b"\r\n",
                "gap {gap:?}"
            );
            let content = &bytes[m.header_offset() as usize..idx.end_offset(i) as usize];
            let wire = encode_bytes(content, EncodeOptions::retr(format));
            common::check_wire(&wire);
            assert_eq!(
                m.size,
                common::unstuff(&wire).len() as u64,
                "message {i}: size differs from the octets sent"
            );
            let uidl = m.uidl.to_string();
            assert!(is_valid_uidl(uidl.as_bytes()), "bad UIDL {uidl:?}");
            if i > 0 {
                assert!(
                    !m.hidden,
                    "only the first message can be the pseudo message"
                );
            }
        }
        let mut uidls: Vec<String> = idx.messages.iter().map(|m| m.uidl.to_string()).collect();
        uidls.sort_unstable();
        uidls.dedup();
        assert_eq!(uidls.len(), idx.messages.len(), "UIDLs are not unique");

        let chunked = index_mbox(
            Chunked {
                data: bytes,
                size: chunk,
            },
            &opts,
        )
        .expect("indexed once");
        assert_eq!(chunked, idx, "chunking changed the index");

        // Up to three extra threads, each from a From_ line found after its hint.
        let len = bytes.len() as u64 + 1;
        let k = u64::from(selector % 4) + 2;
        let hints: Vec<u64> = (1..k).map(|j| (len / k * j + u64::from(selector)) % len).collect();
        let mut hints = hints;
        hints.sort_unstable();
        let open = |at: u64| &bytes[at as usize..];
        let (split, _) = parallel::index_parts(&open, &hints, &opts, 2).expect("indexed once");
        assert_eq!(split, idx, "indexing in parts changed the index");
    }
});
