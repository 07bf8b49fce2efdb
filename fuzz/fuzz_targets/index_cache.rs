//! The on-disk index cache decoder (`storage::disk_cache::decode_file`, and through it
//! `storage::index::persist::decode`) on arbitrary bytes, with a valid checksum appended so the
//! decoder proper is reached.
//!
//! Invariants: no panic; an accepted file describes a mailbox of its recorded length (offsets
//! increasing, inside it, header and end offsets in order) and encodes back to the same bytes;
//! deriving the index after a deletion from it does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mboxpopd::storage::disk_cache::{decode_file, encode_file};
use mboxpopd::storage::format::{MboxFormat, UidlFormat};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    let mailbox = Path::new("/var/mail/fuzz");
    let (f, u) = (MboxFormat::Mboxo, UidlFormat::Native);
    let Ok((stamp, tail, index)) = decode_file(&bytes, mailbox, f, u) else {
        return;
    };
    assert_eq!(index.length, stamp.len);
    for (i, m) in index.messages.iter().enumerate() {
        assert!(m.from_offset < m.header_offset());
        assert!(m.header_offset() <= index.end_offset(i));
        assert!(index.end_offset(i) <= index.next_offset(i));
        assert!(index.next_offset(i) <= index.length);
    }
    assert_eq!(encode_file(mailbox, f, u, &stamp, tail, &index), bytes);
    let _ = index.resume_offset();
    if !index.messages.is_empty() {
        let _ = index.without(&[0]);
        let _ = index.without(&[index.messages.len() - 1]);
    }
});
