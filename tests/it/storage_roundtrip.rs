//! Property test through the real maildrop: arbitrary messages (From lines, dots, CR, NUL,
//! 8-bit bytes, long lines) written by an MDA-style mboxrd writer into a real file, opened,
//! retrieved, committed with an arbitrary deletion set while more mail is appended, and
//! reopened. The kept messages come back byte-exact, in order, with the same sizes, the same
//! RETR octets and the same UIDLs; the appended mail follows them.

use crate::common::storage as storage_support;

use std::fs;
use std::io::Write;

use mboxpopd::config::MboxFormat;
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::mailbox::Mailbox;
use proptest::prelude::*;
use storage_support::*;

/// One body line (without its newline): plain text, or a line chosen to trip an mbox: a From_
/// line, quoted From lines, dots, CR, NUL, 8-bit bytes, a long line.
fn body_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,60}".prop_map(String::into_bytes),
        "From [a-z]{1,8}@x Thu Nov 26 03:32:14 2026".prop_map(String::into_bytes),
        ">{1,3}From .{0,10}".prop_map(String::into_bytes),
        "\\.{1,3}[ -~]{0,5}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40),
        (1usize..3).prop_map(|k| vec![b'y'; k * 70_000]),
        Just(b"ends with CR\r".to_vec()),
        Just(Vec::new()),
    ]
}

fn message_lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(body_line(), 0..12)
}

/// MDA-style mboxrd writer: From_ line, headers, body with `>*From ` quoted by one more `>`,
/// final newline, separator line.
fn store(tag: usize, body: &[Vec<u8>]) -> Vec<u8> {
    let mut m = format!(
        "From mda@example.org Thu Nov 26 03:32:14 2026\nSubject: {tag}\nMessage-ID: <{tag}@test>\n\n"
    )
    .into_bytes();
    for line in body {
        let gts = line.iter().take_while(|b| **b == b'>').count();
        if line[gts..].starts_with(b"From ") {
            m.push(b'>');
        }
        m.extend_from_slice(line);
        m.push(b'\n');
    }
    m.push(b'\n');
    m
}

fn retr_all(mb: &mut Mailbox) -> Vec<Vec<u8>> {
    (0..mb.messages().len())
        .map(|i| {
            let mut out = Vec::new();
            mb.write_message(i, None, &mut out).expect("retr");
            assert_eq!(unstuffed_len(&out), mb.messages()[i].size, "size of {i}");
            out
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn commit_keeps_exactly_the_undeleted_messages(
        bodies in prop::collection::vec(message_lines(), 1..9),
        delete_mask in any::<u16>(),
        appended in prop::option::of(message_lines()),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u");
        let stored: Vec<Vec<u8>> = bodies.iter().enumerate().map(|(i, b)| store(i, b)).collect();
        write_file(&path, &stored.concat());
        let mut opts = options();
        opts.format = MboxFormat::Mboxrd;

        let mut mb = Mailbox::open(&path, &opts).expect("open");
        prop_assert_eq!(mb.messages().len(), stored.len());
        let before = retr_all(&mut mb);
        let uidls: Vec<String> = mb.messages().iter().map(|m| m.uidl.clone()).collect();
        let late = appended.as_ref().map(|b| store(100, b)).unwrap_or_default();
        fs::OpenOptions::new().append(true).open(&path).expect("append")
            .write_all(&late).expect("append");
        let deleted: Vec<usize> =
            (0..stored.len()).filter(|i| delete_mask & (1 << i) != 0).collect();
        mb.commit(&deleted).expect("commit");

        let kept: Vec<usize> = (0..stored.len()).filter(|i| !deleted.contains(i)).collect();
        let expected: Vec<u8> =
            [kept.iter().map(|&i| stored[i].clone()).collect::<Vec<_>>().concat(), late.clone()]
                .concat();
        prop_assert!(fs::read(&path).expect("read") == expected, "spool not byte-exact");

        let mut mb = Mailbox::open(&path, &opts).expect("reopen");
        let after = retr_all(&mut mb);
        prop_assert_eq!(after.len(), kept.len() + usize::from(!late.is_empty()));
        for (j, &i) in kept.iter().enumerate() {
            prop_assert!(after[j] == before[i], "RETR of message {} changed", i);
            prop_assert_eq!(&mb.messages()[j].uidl, &uidls[i]);
        }
    }
}
