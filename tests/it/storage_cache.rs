//! The index cache against foreign changes of every kind: whatever happened to the file
//! between two sessions, the second session's UIDLs and sizes equal a full index of the file.
//! The same for the on-disk cache (`index_cache_dir`), also when its file is damaged, and with
//! the real binary in inetd mode: later logins reuse it, an unsafe directory is refused, a
//! system user's session can neither read nor write it.

use crate::common::storage as storage_support;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::cache;
use mboxpopd::storage::disk_cache::CacheDir;
use mboxpopd::storage::mailbox::Mailbox;
use proptest::prelude::*;
use storage_support::*;

/// What a session lists (`None`: the open failed).
fn session_view(path: &Path) -> Option<View> {
    storage_support::session_view(path).ok()
}

/// The same from one scan of the file (`None`: not an mbox).
fn full_view(path: &Path) -> Option<View> {
    storage_support::full_view(path).ok()
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

/// (UIDL, size) as a session sees them with only the on-disk cache (the memory cache is
/// emptied for the path first, as in a new inetd process).
fn disk_session_view(path: &Path, dir: &CacheDir) -> Option<Vec<(String, u64)>> {
    cache::forget(path);
    let o = options();
    let slot = dir.open(path, o.format, o.uidl).expect("cache slot");
    let mb = Mailbox::open_cached(path, &o, Some(slot)).ok()?;
    Some(
        mb.messages()
            .into_iter()
            .map(|m| (m.uidl, m.size))
            .collect(),
    )
}

/// The one cache file in `dir`.
fn cache_file(dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Flip(usize),
    /// Another layout version, with a checksum that matches.
    OtherVersion,
    /// Another mailbox's intact cache file in its place.
    OtherMailbox,
    /// A same-size rewrite of the mailbox with its mtime set back (touch -d).
    MtimeRestored(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        any::<usize>().prop_map(Damage::Truncate),
        any::<usize>().prop_map(Damage::Flip),
        Just(Damage::OtherVersion),
        Just(Damage::OtherMailbox),
        any::<usize>().prop_map(Damage::MtimeRestored),
    ]
}

fn inflict(path: &Path, cache_dir: &Path, dir: &CacheDir, d: &Damage) {
    let file = cache_file(cache_dir);
    let mut bytes = fs::read(&file).expect("read cache");
    match *d {
        Damage::None => return,
        Damage::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        Damage::Flip(at) => {
            let n = bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= 0x41;
            }
        }
        Damage::OtherVersion => {
            if bytes.len() > 24 {
                bytes[16] ^= 0xff;
                let n = bytes.len() - 8;
                let sum = xxhash_rust::xxh3::xxh3_64(&bytes[..n]);
                bytes[n..].copy_from_slice(&sum.to_le_bytes());
            }
        }
        Damage::OtherMailbox => {
            let other = path.with_file_name("other");
            write_file(&other, &mbox(&messages(3, 42)));
            settle();
            disk_session_view(&other, dir);
            let theirs = fs::read_dir(cache_dir)
                .expect("dir")
                .map(|e| e.expect("entry").path())
                .find(|p| *p != file)
                .expect("the other cache file");
            bytes = fs::read(&theirs).expect("read");
            fs::remove_file(&theirs).expect("rm");
        }
        Damage::MtimeRestored(at) => {
            let old = fs::metadata(path).expect("stat").modified().expect("mtime");
            let f = OpenOptions::new().write(true).open(path).expect("open");
            let len = f.metadata().expect("stat").len();
            if len > 0 {
                f.write_all_at(b"Q", at as u64 % len).expect("write");
            }
            f.set_modified(old).expect("touch -d");
            settle();
            return;
        }
    }
    // Written in place, as a torn write or a bad disk would leave it.
    fs::write(&file, &bytes).expect("write cache");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn disk_cached_indexes_equal_a_full_index(
        n in 1usize..6,
        seed in 0usize..50,
        steps in prop::collection::vec((change(), damage()), 1..4),
    ) {
        let t = tempfile::tempdir().expect("tempdir");
        let path = t.path().join("u");
        let cache_dir = t.path().join("cache");
        let dir = CacheDir::prepare(&cache_dir).expect("cache dir");
        write_file(&path, &mbox(&messages(n, seed)));
        settle();
        prop_assert_eq!(disk_session_view(&path, &dir), full_view(&path));
        for (c, d) in &steps {
            inflict(&path, &cache_dir, &dir, d);
            apply(&path, c);
            let full = full_view(&path);
            prop_assert_eq!(disk_session_view(&path, &dir), full.clone(), "after {:?}, {:?}", c, d);
            prop_assert_eq!(disk_session_view(&path, &dir), full, "reused after {:?}, {:?}", c, d);
        }
    }
}

#[test]
fn the_disk_cache_survives_our_own_commit() {
    let t = tempfile::tempdir().expect("tempdir");
    let path = t.path().join("u");
    let dir = CacheDir::prepare(&t.path().join("cache")).expect("cache dir");
    write_file(&path, &mbox(&messages(6, 5)));
    settle();
    let o = options();
    for deleted in [vec![5], vec![1, 3], vec![0]] {
        cache::forget(&path);
        let slot = dir.open(&path, o.format, o.uidl).expect("slot");
        let mut mb = Mailbox::open_cached(&path, &o, Some(slot)).expect("open");
        mb.commit(&deleted).expect("commit");
        drop(mb);
        assert_eq!(
            disk_session_view(&path, &dir),
            full_view(&path),
            "after deleting {deleted:?}"
        );
    }
    assert!(
        fs::metadata(cache_file(&t.path().join("cache")))
            .expect("stat")
            .len()
            > 0
    );
}

mod binary {
    use crate::common::*;
    use std::fs;
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    use std::process::Command;

    const M1: &str = "From: a@example.org\nSubject: one\n\nfirst\n";
    const M2: &str = "From: b@example.org\nSubject: two\n\nsecond\n";
    const M3: &str = "From: c@example.org\nSubject: three\n\nthird\n";

    /// One login: the UIDL listing and the session's log.
    fn login(f: &Fixture) -> (Vec<u8>, String) {
        let mut c = f.inetd();
        c.login("alice", "secret");
        let uidl = c.ok_multi("UIDL");
        c.quit();
        c.wait();
        (uidl, c.log())
    }

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(40));
    }

    #[test]
    fn later_logins_reuse_the_disk_cache_and_a_rewrite_is_reindexed() {
        let f = Fixture::new();
        f.write_mbox("alice", &mbox(&[M1, M2]));
        settle();
        let (first, log) = login(&f);
        assert!(log.contains("index built: reused=0"), "{log}");
        let cache = f.path().join("index-cache");
        let meta = fs::metadata(&cache).expect("created");
        assert_eq!(meta.mode() & 0o777, 0o700);

        let (again, log) = login(&f);
        assert_eq!(again, first);
        let len = fs::metadata(f.mailbox("alice")).expect("stat").len();
        assert!(
            log.contains(&format!(
                "index unchanged: reused={len} scanned=0 cache=disk"
            )),
            "{log}"
        );

        // An MDA appends: only the new part is read.
        deliver(&f.mailbox("alice"), M3);
        settle();
        let (grown, log) = login(&f);
        assert!(log.contains("index continued: reused="), "{log}");
        assert!(log.contains("cache=disk"), "{log}");
        assert!(
            grown.starts_with(&first[..first.len() - 3]),
            "old UIDLs kept"
        );

        // Another program rewrites the file (same size, other bytes): indexed afresh.
        let mut bytes = f.read_mbox("alice");
        let at = bytes.len() - 4;
        bytes[at] = b'X';
        fs::write(f.mailbox("alice"), &bytes).expect("rewrite");
        settle();
        let (_, log) = login(&f);
        assert!(log.contains("index built: reused=0"), "{log}");
    }

    #[test]
    fn a_restarted_daemon_starts_from_the_disk_cache_and_writes_through() {
        let f = Fixture::new();
        f.write_mbox("alice", &mbox(&[M1, M2]));
        settle();
        let session = |server: &Server| {
            let mut c = server.connect();
            c.login("alice", "secret");
            let uidl = c.ok_multi("UIDL");
            c.quit();
            uidl
        };
        let mut first = f.standalone();
        let uidl = session(&first);
        assert_eq!(session(&first), uidl);
        let log = first.log();
        assert!(
            log.contains("index built") && log.contains("cache=memory"),
            "{log}"
        );
        first.stop();
        // The daemon wrote what it kept in memory: a new one starts from the file.
        let mut second = f.standalone();
        assert_eq!(session(&second), uidl);
        assert!(second.wait_for_log("cache=disk"), "{}", second.log());
        deliver(&f.mailbox("alice"), M3);
        settle();
        let grown = session(&second);
        assert!(grown.starts_with(&uidl[..uidl.len() - 3]), "old UIDLs kept");
        second.stop();
        let mut third = f.standalone();
        assert_eq!(session(&third), grown);
        assert!(third.wait_for_log("index unchanged"), "{}", third.log());
        assert!(third.wait_for_log("cache=disk"), "{}", third.log());
        third.stop();
    }

    #[test]
    fn a_restarted_daemon_removes_the_cache_files_of_removed_mailboxes() {
        let f = Fixture::new();
        f.write_mbox("alice", &mbox(&[M1, M2]));
        f.write_mbox("bob", &mbox(&[M3]));
        settle();
        let cache = f.path().join("index-cache");
        let files = || fs::read_dir(&cache).expect("cache dir").count();
        let mut first = f.standalone();
        for (user, password) in [("alice", "secret"), ("bob", "hunter2")] {
            let mut c = first.connect();
            c.login(user, password);
            c.ok("STAT");
            c.quit();
        }
        first.stop();
        assert_eq!(files(), 2);
        fs::remove_file(f.mailbox("bob")).expect("remove bob's mailbox");
        let mut second = f.standalone();
        assert!(
            second.wait_for_log("removed 1 files of mailboxes that no longer exist and 0"),
            "{}",
            second.log()
        );
        assert_eq!(files(), 1);
        let mut c = second.connect();
        c.login("alice", "secret");
        c.ok("STAT");
        c.quit();
        assert!(second.wait_for_log("cache=disk"), "{}", second.log());
        second.stop();
    }

    #[test]
    fn a_cache_directory_someone_else_owns_is_refused_with_a_warning() {
        if !is_root() {
            eprintln!("SKIPPED: needs root (chown)");
            return;
        }
        let f = Fixture::new();
        f.write_mbox("alice", &mbox(&[M1, M2]));
        let cache = f.path().join("index-cache");
        fs::create_dir(&cache).expect("mkdir");
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).expect("chmod");
        chown(&cache, Some(65534), None).expect("chown");
        let (uidl, log) = login(&f);
        assert!(uidl.len() > 10);
        assert!(
            log.contains("owned by uid 65534")
                && log.contains("running without the on-disk index cache"),
            "{log}"
        );
        assert!(log.contains("index built"), "{log}");
        assert_eq!(fs::read_dir(&cache).expect("dir").count(), 0);
        // Group-writable: refused the same way.
        chown(&cache, Some(0), None).expect("chown");
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o770)).expect("chmod");
        let (_, log) = login(&f);
        assert!(log.contains("its mode is 0770"), "{log}");
    }

    #[test]
    fn a_system_users_session_cannot_touch_its_cache_file() {
        if !is_root() || !["useradd", "chpasswd", "userdel"].iter().all(|t| tool(t)) {
            eprintln!("SKIPPED: needs root and the shadow tools");
            return;
        }
        let user = SystemAccount::create("ic", "Cache pass 1");
        let mut f = Fixture::new();
        fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let spool = f.path().join("spool");
        fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).expect("chmod spool");
        f.write_mbox(&user.name, &mbox(&[M1, M2]));
        chown(f.mailbox(&user.name), Some(user.uid), Some(user.gid)).expect("chown");
        f.config("auth = system");
        f.config("spool_group =");
        settle();
        for round in 0..2 {
            let mut c = f.inetd();
            c.login(&user.name, "Cache pass 1");
            c.ok_multi("UIDL");
            c.quit();
            c.wait();
            let log = c.log();
            let want = if round == 0 {
                "index built"
            } else {
                "cache=disk"
            };
            assert!(log.contains(want), "round {round}: {log}");
        }
        let cache = f.path().join("index-cache");
        let file = fs::read_dir(&cache)
            .expect("dir")
            .next()
            .expect("a cache file")
            .expect("entry")
            .path();
        let meta = fs::metadata(&file).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
        // As the user, neither reading nor writing nor replacing it works.
        let as_user = |script: &str| {
            use std::os::unix::process::CommandExt;
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("sh")
                .arg(&file)
                .uid(user.uid)
                .gid(user.gid)
                .status()
                .expect("sh")
                .success()
        };
        assert!(!as_user("cat \"$1\" >/dev/null"), "read");
        assert!(!as_user("echo x >> \"$1\""), "write");
        assert!(!as_user("rm -f \"$1\" && test ! -e \"$1\""), "remove");
        assert!(
            !as_user("ln -s /etc/passwd \"$(dirname \"$1\")/planted.idx\""),
            "plant"
        );
    }
}

/// A mailbox big enough to be indexed by two threads, made of `n` ordinary messages of about
/// 10 KB and, where `middle` says, a message whose trusted Content-Length body holds a From_
/// line after an empty line right where the second thread looks for its cut.
fn big_mailbox(middle: bool) -> Vec<u8> {
    let plain = |i: usize, filler: usize| {
        let mut m = format!(
            "From s{i}@example.org Thu Nov 26 03:32:14 2026\nSubject: m{i}\nStatus: RO\n\n"
        )
        .into_bytes();
        while m.len() < 10_000 + filler {
            m.extend_from_slice(b"a body line that is long enough to look like real mail text\n");
        }
        if i % 7 == 0 {
            m.extend_from_slice(b">From quoted\n");
        }
        m.extend_from_slice(b"\n");
        m
    };
    let prefix: Vec<u8> = (0..460).flat_map(|i| plain(i, 0)).collect();
    let body = b"x\n\nFrom inner@example.org Thu Nov 26 03:32:15 2026\nSubject: inner\n\nin\n";
    let special = if middle {
        let mut m = format!(
            "From cl@example.org Thu Nov 26 03:32:16 2026\nContent-Length: {}\n\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        m.extend_from_slice(b"\n");
        m
    } else {
        plain(999, 0)
    };
    // The suffix makes the file's middle fall just after the special message's start.
    let want = prefix.len() + 20 - special.len();
    let mut suffix: Vec<u8> = Vec::new();
    let mut i = 1000;
    while want - suffix.len() > 25_000 {
        suffix.extend(plain(i, 0));
        i += 1;
    }
    let rest = want - suffix.len();
    let mut last = plain(i, rest - 10_000);
    last.truncate(rest - 1);
    last.extend_from_slice(b"\n");
    suffix.extend(last);
    let data = [prefix, special, suffix].concat();
    assert!(data.len() as u64 >= mboxpopd::storage::index::parallel::PARALLEL_MIN);
    data
}

#[test]
fn a_big_mailbox_indexed_in_two_parts_is_the_single_pass_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    for middle in [false, true] {
        let path = dir.path().join(format!("big{middle}"));
        let data = big_mailbox(middle);
        write_file(&path, &data);
        settle();
        let view = session_view(&path).expect("an mbox");
        assert_eq!(Some(view.clone()), full_view(&path), "middle: {middle}");
        let half = data.len() / 2;
        let (cut, _) =
            mboxpopd::storage::index::parallel::cut_in(&data[half..], half as u64).expect("a cut");
        let inner = data[cut as usize..].starts_with(b"From inner");
        assert_eq!(inner, middle, "the second thread starts inside the body");
        // Every "\nFrom " starts a message but the one inside the Content-Length body.
        let starts = data.windows(6).filter(|w| w == b"\nFrom ").count() + 1;
        assert_eq!(view.len(), if middle { starts - 1 } else { starts });
    }
}
