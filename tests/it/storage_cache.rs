//! The index cache against foreign changes of every kind: whatever happened to the file
//! between two sessions, the second session's UIDLs and sizes equal a full index of the file.

use crate::common::storage as storage_support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::index::{index_mbox, IndexOptions};
use mboxpopd::storage::mailbox::Mailbox;
use proptest::prelude::*;
use storage_support::*;

/// (UIDL, size) of every visible message, as a session sees them.
fn session_view(path: &Path) -> Option<Vec<(String, u64)>> {
    let mb = Mailbox::open(path, &options()).ok()?;
    Some(
        mb.messages()
            .into_iter()
            .map(|m| (m.uidl, m.size))
            .collect(),
    )
}

/// The same from a full index of the file's bytes (`None`: not an mbox).
fn full_view(path: &Path) -> Option<Vec<(String, u64)>> {
    let o = options();
    let bytes = fs::read(path).expect("read");
    let idx = index_mbox(
        &bytes[..],
        &IndexOptions {
            format: o.format,
            uidl: o.uidl,
        },
    )
    .ok()?;
    Some(
        idx.messages
            .iter()
            .filter(|m| !m.hidden)
            .map(|m| (m.uidl.to_string(), m.size))
            .collect(),
    )
}

#[derive(Debug, Clone)]
enum Change {
    None,
    Append(usize),
    Truncate(usize),
    SameSizeRewrite(usize, u8),
    ReplaceInode(usize),
    InsertThenAppend(usize, usize),
    AppendPartialLine,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::None),
        (1usize..4).prop_map(Change::Append),
        any::<usize>().prop_map(Change::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Change::SameSizeRewrite(a, b)),
        (1usize..4).prop_map(Change::ReplaceInode),
        (any::<usize>(), 1usize..3).prop_map(|(a, b)| Change::InsertThenAppend(a, b)),
        Just(Change::AppendPartialLine),
    ]
}

fn messages(n: usize, seed: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| message(&format!("m{}", seed * 100 + i), 1 + (seed + i) % 7))
        .collect()
}

/// Let a change age past the cache's racy window, so the next session may cache its state.
fn settle() {
    std::thread::sleep(mboxpopd::storage::cache::RACY + Duration::from_millis(10));
}

fn apply(path: &Path, c: &Change) {
    let old = fs::read(path).expect("read");
    let append = |bytes: &[u8]| {
        let mut f = OpenOptions::new().append(true).open(path).expect("open");
        f.write_all(bytes).expect("append");
    };
    match *c {
        Change::None => {}
        Change::Append(n) => append(&mbox(&messages(n, 7))),
        Change::Truncate(at) => {
            let f = OpenOptions::new().write(true).open(path).expect("open");
            f.set_len((at % (old.len() + 1)) as u64).expect("truncate");
        }
        Change::SameSizeRewrite(at, b) => {
            let f = OpenOptions::new().write(true).open(path).expect("open");
            f.write_all_at(&[b], (at % old.len()) as u64)
                .expect("write");
        }
        Change::ReplaceInode(n) => {
            let tmp = path.with_extension("new");
            let mut bytes = old.clone();
            bytes.extend(mbox(&messages(n, 9)));
            write_file(&tmp, &bytes);
            fs::rename(&tmp, path).expect("rename");
        }
        Change::InsertThenAppend(at, n) => {
            let at = at % (old.len() + 1);
            let mut bytes = old[..at].to_vec();
            bytes.extend_from_slice(b"X-Inserted: yes\n");
            bytes.extend_from_slice(&old[at..]);
            bytes.extend(mbox(&messages(n, 11)));
            let f = OpenOptions::new().write(true).open(path).expect("open");
            f.write_all_at(&bytes, 0).expect("write");
        }
        Change::AppendPartialLine => {
            append(b"\nFrom x@y Thu Nov 26 03:32:14 2026\nA: b\n\npartial")
        }
    }
    settle();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cached_and_continued_indexes_equal_a_full_index(
        n in 1usize..6,
        seed in 0usize..50,
        changes in prop::collection::vec(change(), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("u");
        write_file(&path, &mbox(&messages(n, seed)));
        settle();
        prop_assert_eq!(session_view(&path), full_view(&path));
        for c in &changes {
            apply(&path, c);
            let full = full_view(&path);
            prop_assert_eq!(session_view(&path), full.clone(), "after {:?}", c);
            // And again, straight from the cache.
            prop_assert_eq!(session_view(&path), full, "reused after {:?}", c);
        }
    }
}

#[test]
fn unchanged_and_grown_files_are_served_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&messages(4, 3)));
    settle();
    let first = session_view(&path);
    let (reused, continued) = mboxpopd::storage::cache::stats();
    assert_eq!(session_view(&path), first);
    assert!(mboxpopd::storage::cache::stats().0 > reused);
    apply(&path, &Change::Append(2));
    assert_eq!(session_view(&path), full_view(&path));
    assert!(mboxpopd::storage::cache::stats().1 > continued);
}

#[test]
fn the_index_after_our_own_commit_is_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&messages(6, 5)));
    settle();
    for deleted in [vec![5], vec![1, 3], vec![0]] {
        let mut mb = Mailbox::open(&path, &options()).expect("open");
        mb.commit(&deleted).expect("commit");
        drop(mb);
        let (reused, _) = mboxpopd::storage::cache::stats();
        let view = session_view(&path);
        assert_eq!(view, full_view(&path), "after deleting {deleted:?}");
        assert!(
            mboxpopd::storage::cache::stats().0 > reused,
            "after deleting {deleted:?}"
        );
    }
}

#[test]
fn other_options_are_not_served_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&messages(3, 1)));
    let native = session_view(&path).expect("open");
    let mut o = options();
    o.uidl = UidlFormat::Popa3d;
    o.format = MboxFormat::Mboxrd;
    let mb = Mailbox::open(&path, &o).expect("open");
    let popa3d: Vec<String> = mb.messages().into_iter().map(|m| m.uidl).collect();
    assert_ne!(popa3d[0], native[0].0);
    assert_eq!(popa3d[0].len(), 16);
}
