//! The transmit encoder (CRLF, byte-stuffing, private headers, mboxrd unquoting, TOP).
//!
//! Input: `[flags, top, chunking, content...]`; flags bit 0 = mboxrd, bit 1 = TOP.
//!
//! Invariants: no panic; the output has no bare LF, ends with CRLF, and stuffs every line
//! that starts with '.'; it equals a line-by-line reference model, so unstuffing it gives
//! back the message content (line ends as CRLF, private headers dropped, mboxrd quoting
//! removed); the size the indexer uses (`transmit_size`) equals the unstuffed octets sent;
//! feeding in arbitrary chunks, `encode_to`, `encode_slice` and `encode_bytes` agree; TOP output is a prefix
//! of RETR output.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mboxpopd::config::MboxFormat;
use mboxpopd::storage::encode::{
    encode_bytes, encode_slice, encode_to, transmit_size, EncodeOptions, Encoder,
};

fuzz_target!(|data: &[u8]| {
    let [flags, top, chunking, content @ ..] = data else {
        return;
    };
    let format = if flags & 1 == 0 {
        MboxFormat::Mboxo
    } else {
        MboxFormat::Mboxrd
    };
    let top = (flags & 2 != 0).then_some(u64::from(*top % 8));
    let opts = EncodeOptions { format, top };

    let out = encode_bytes(content, opts);
    common::check_wire(&out);
    let lines = common::model(content, format, top);
    assert_eq!(
        out,
        common::wire(&lines),
        "encoder output differs from the model"
    );
    let unstuffed = common::unstuff(&out);
    assert_eq!(unstuffed, lines.concat_crlf());

    // Chunked feeding: sizes 1..=16 in a pattern chosen by the input.
    let mut enc = Encoder::new(opts);
    let mut chunked = Vec::new();
    let mut rest = content;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = (((*chunking as usize) >> (i % 4)) % 16 + 1).min(rest.len());
        enc.feed(&rest[..n], &mut chunked);
        rest = &rest[n..];
        i += 1;
    }
    enc.finish(&mut chunked);
    assert_eq!(chunked, out, "chunking changed the output");

    let mut written = Vec::new();
    let n = encode_to(content, opts, &mut written).expect("writes to a Vec");
    assert_eq!(written, out);
    assert_eq!(n, out.len() as u64);

    let mut from_slice = Vec::new();
    let n = encode_slice(content, opts, &mut from_slice).expect("writes to a Vec");
    assert_eq!(from_slice, out, "encode_slice differs");
    assert_eq!(n, out.len() as u64);

    let retr = encode_bytes(content, EncodeOptions::retr(format));
    if top.is_some() {
        assert!(retr.starts_with(&out), "TOP output is not a prefix of RETR");
    } else {
        assert_eq!(retr, out);
    }
    assert_eq!(
        transmit_size(content, format),
        common::unstuff(&retr).len() as u64,
        "size differs from the octets sent"
    );
});

trait ConcatCrlf {
    fn concat_crlf(&self) -> Vec<u8>;
}

impl ConcatCrlf for Vec<Vec<u8>> {
    fn concat_crlf(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for l in self {
            v.extend_from_slice(l);
            v.extend_from_slice(b"\r\n");
        }
        v
    }
}
