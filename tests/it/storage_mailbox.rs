//! The maildrop through its public API on real files: open, serve, commit, and the ways a
//! spool can be wrong (missing, symlink, foreign owner, not an mbox, in use, rewritten under us).

use crate::common::storage as storage_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::journal::journal_path;
use mboxpopd::storage::lock::DotLock;
use mboxpopd::storage::mailbox::Mailbox;
use mboxpopd::storage::StoreError;
use storage_support::*;

fn retr(mb: &mut Mailbox, i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    mb.write_message(i, None, &mut out).expect("retr");
    out
}

#[test]
fn serves_exact_bytes_and_sizes_and_commits_deletions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let msgs: Vec<Vec<u8>> = (0..5).map(|i| message(&format!("s{i}"), 30)).collect();
    write_file(&path, &mbox(&msgs));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).expect("chmod");
    let ino = fs::metadata(&path).expect("stat").ino();

    let mut mb = Mailbox::open(&path, &options()).expect("open");
    assert_eq!(mb.messages().len(), 5);
    for (i, m) in msgs.iter().enumerate() {
        let got = retr(&mut mb, i);
        assert_eq!(got, transmit(m), "message {i}");
        assert_eq!(unstuffed_len(&got), mb.messages()[i].size);
    }
    // TOP 2: headers, blank line, two body lines.
    let mut top = Vec::new();
    mb.write_message(0, Some(2), &mut top).expect("top");
    let text = String::from_utf8(top).expect("utf8");
    assert!(text.ends_with("\r\n\r\nline 0 of s0: lorem ipsum dolor sit amet\r\nline 1 of s0: lorem ipsum dolor sit amet\r\n"));
    // MDA-facing locks are not held between index and commit.
    assert!(!DotLock::path_for(&path).exists());

    let report = mb.commit(&[1, 3]).expect("commit");
    assert_eq!(report.deleted_messages, 2);
    assert_eq!(
        report.deleted_octets,
        unstuffed_len(&transmit(&msgs[1])) * 2
    );
    assert_eq!(
        report.rewritten_bytes,
        (msgs[2].len() + msgs[4].len()) as u64
    );
    let expected = [msgs[0].clone(), msgs[2].clone(), msgs[4].clone()].concat();
    assert_eq!(fs::read(&path).expect("read"), expected);
    let m = fs::metadata(&path).expect("stat");
    assert_eq!((m.ino(), m.mode() & 0o777), (ino, 0o660));
    assert!(!journal_path(&path).exists());
    assert!(!DotLock::path_for(&path).exists());

    // UIDLs survive the deletion of other messages.
    let uidls_before: Vec<String> = {
        write_file(&path, &mbox(&msgs));
        let mb = Mailbox::open(&path, &options()).expect("open");
        mb.messages().iter().map(|m| m.uidl.clone()).collect()
    };
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    mb.commit(&[0]).expect("commit");
    let mb = Mailbox::open(&path, &options()).expect("open");
    let after: Vec<String> = mb.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(after, uidls_before[1..]);
}

#[test]
fn mail_appended_during_the_session_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let msgs: Vec<Vec<u8>> = (0..3).map(|i| message(&format!("a{i}"), 5)).collect();
    write_file(&path, &mbox(&msgs));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    let late = message("late", 4);
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(&late)
        .expect("append");
    // Serving still works: the file only grew.
    assert_eq!(retr(&mut mb, 2), transmit(&msgs[2]));
    mb.commit(&[0, 2]).expect("commit");
    assert_eq!(
        fs::read(&path).expect("read"),
        [msgs[1].clone(), late].concat()
    );
}

#[test]
fn missing_maildrop_is_empty_and_never_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nobody");
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    assert!(mb.messages().is_empty());
    assert_eq!(mb.commit(&[]).expect("commit").rewritten_bytes, 0);
    assert!(!path.exists());
    assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[test]
fn empty_file_is_an_empty_maildrop_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, b"");
    let before = fs::metadata(&path)
        .expect("stat")
        .modified()
        .expect("mtime");
    std::thread::sleep(Duration::from_millis(20));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    assert!(mb.messages().is_empty());
    mb.commit(&[]).expect("commit");
    assert_eq!(
        fs::metadata(&path)
            .expect("stat")
            .modified()
            .expect("mtime"),
        before
    );
}

#[test]
fn quit_without_deletions_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &message("x", 3));
    let before = fs::metadata(&path).expect("stat");
    std::thread::sleep(Duration::from_millis(20));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    assert_eq!(mb.commit(&[]).expect("commit").rewritten_bytes, 0);
    let after = fs::metadata(&path).expect("stat");
    assert_eq!(before.modified().ok(), after.modified().ok());
    assert_eq!(before.ctime(), after.ctime());
}

#[test]
fn symlink_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    write_file(&target, &message("x", 3));
    let path = dir.path().join("u");
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    assert!(matches!(
        Mailbox::open(&path, &options()),
        Err(StoreError::Permanent(_))
    ));
}

#[test]
fn foreign_owner_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &message("x", 3));
    let mut opts = options();
    let uid = fs::metadata(&path).expect("stat").uid();
    opts.owner_uid = Some(uid + 1);
    assert!(matches!(
        Mailbox::open(&path, &opts),
        Err(StoreError::Permanent(_))
    ));
    opts.owner_uid = Some(uid);
    Mailbox::open(&path, &opts).expect("own file");
}

#[test]
fn not_an_mbox_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let junk = b"Subject: no From_ line here\n\nhello\n";
    write_file(&path, junk);
    let before = fs::metadata(&path).expect("stat");
    assert!(matches!(
        Mailbox::open(&path, &options()),
        Err(StoreError::Permanent(_))
    ));
    assert_eq!(fs::read(&path).expect("read"), junk);
    let after = fs::metadata(&path).expect("stat");
    assert_eq!(before.modified().ok(), after.modified().ok());
    assert!(!DotLock::path_for(&path).exists());
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    assert!(matches!(
        Mailbox::open(&path, &options()),
        Err(StoreError::Permanent(_))
    ));
}

#[test]
fn second_session_is_in_use_until_the_first_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &message("x", 3));
    let mut first = Mailbox::open(&path, &options()).expect("open");
    assert!(matches!(
        Mailbox::open(&path, &options()),
        Err(StoreError::InUse(_))
    ));
    first.commit(&[]).expect("commit");
    drop(first);
    Mailbox::open(&path, &options()).expect("free again");
}

#[test]
fn a_held_mda_lock_makes_open_wait_then_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &message("x", 3));
    // A live process (us) holds the dot-lock, as an MDA in the middle of a delivery would.
    fs::write(
        DotLock::path_for(&path),
        format!("{}\n", std::process::id()),
    )
    .expect("lock");
    let mut opts = options();
    opts.lock_timeout = Duration::from_millis(300);
    let t = std::time::Instant::now();
    assert!(matches!(
        Mailbox::open(&path, &opts),
        Err(StoreError::InUse(_))
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(
        DotLock::path_for(&path).exists(),
        "someone else's lock stays"
    );
}

#[test]
fn hold_mda_locks_keeps_the_dot_lock_for_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&[message("a", 3), message("b", 3)]));
    let mut opts = options();
    opts.hold_mda_locks = true;
    let mut mb = Mailbox::open(&path, &opts).expect("open");
    assert!(DotLock::path_for(&path).exists());
    mb.commit(&[0]).expect("commit");
    assert!(!DotLock::path_for(&path).exists());
    assert_eq!(fs::read(&path).expect("read"), message("b", 3));
}

#[test]
fn foreign_rewrite_is_detected_before_serving_and_before_committing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let msgs: Vec<Vec<u8>> = (0..4).map(|i| message(&format!("r{i}"), 6)).collect();
    write_file(&path, &mbox(&msgs));

    // In place, same length, but messages moved (a mail reader rewrote the file).
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    let mut shuffled = mbox(&[
        msgs[1].clone(),
        msgs[0].clone(),
        msgs[2].clone(),
        msgs[3].clone(),
    ]);
    shuffled.truncate(mbox(&msgs).len());
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .write_all(
            &[
                b"From other@example.org Fri Nov 27 01:00:00 2026\n".as_slice(),
                &shuffled[49..],
            ]
            .concat(),
        )
        .expect("rewrite");
    let changed = fs::read(&path).expect("read");
    assert!(matches!(
        mb.write_message(0, None, &mut Vec::new()),
        Err(StoreError::Changed(_))
    ));
    assert!(mb.commit(&[1]).is_err());
    assert_eq!(fs::read(&path).expect("read"), changed);

    // Same length, one byte changed in place: only the mtime tells, and it is trusted only
    // under the MDA locks (an append in progress shows its new mtime before its new size), so
    // at the commit, or on RETR with `hold_mda_locks`.
    let poke = || {
        std::thread::sleep(Duration::from_millis(10));
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        std::os::unix::fs::FileExt::write_all_at(&f, b"X", 200).expect("poke");
    };
    write_file(&path, &mbox(&msgs));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    poke();
    let poked = fs::read(&path).expect("read");
    assert!(matches!(mb.commit(&[3]), Err(StoreError::Changed(_))));
    assert_eq!(fs::read(&path).expect("read"), poked);
    write_file(&path, &mbox(&msgs));
    let mut held = options();
    held.hold_mda_locks = true;
    let mut mb = Mailbox::open(&path, &held).expect("open");
    poke();
    assert!(matches!(
        mb.write_message(2, None, &mut Vec::new()),
        Err(StoreError::Changed(_))
    ));
    drop(mb);

    // Shrunk.
    write_file(&path, &mbox(&msgs));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(10)
        .expect("truncate");
    assert!(matches!(mb.commit(&[0]), Err(StoreError::Changed(_))));
    assert_eq!(fs::metadata(&path).expect("stat").len(), 10);

    // Replaced by rename (the inode changes).
    write_file(&path, &mbox(&msgs));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    let tmp = dir.path().join("tmp");
    write_file(&tmp, &mbox(&msgs[1..]));
    fs::rename(&tmp, &path).expect("rename");
    assert!(matches!(
        mb.write_message(3, None, &mut Vec::new()),
        Err(StoreError::Changed(_))
    ));
    assert_eq!(fs::read(&path).expect("read"), mbox(&msgs[1..]));
}

#[test]
fn client_write_failure_is_a_client_error() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &message("x", 3));
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    assert!(matches!(
        mb.write_message(0, None, &mut Broken),
        Err(StoreError::Client(_))
    ));
}

#[test]
fn startup_recovery_finds_journals_in_the_spool_directory() {
    use mboxpopd::storage::journal::Recovery;
    use mboxpopd::storage::mailbox::recover_spool_dir;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&[message("a", 3), message("b", 3)]));
    assert!(recover_spool_dir(dir.path(), &options())
        .expect("scan")
        .is_empty());
    // A torn journal, as a crash while writing it leaves.
    fs::write(journal_path(&path), b"MBOXPOPD-JRNL-1\ntorn").expect("journal");
    let found = recover_spool_dir(dir.path(), &options()).expect("scan");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, path);
    assert!(matches!(found[0].1, Ok(Recovery::DiscardedTorn)));
    assert!(!journal_path(&path).exists());
    assert_eq!(
        fs::read(&path).expect("read"),
        mbox(&[message("a", 3), message("b", 3)])
    );
}

/// A dot-lock our crashed process left (this host, this boot, dead pid) is released by the
/// start-up scan even when there is no journal, so MDAs need not wait out its age; a live or
/// foreign lock is left alone.
#[test]
fn startup_recovery_releases_our_dead_dot_locks_only() {
    use mboxpopd::storage::journal::Recovery;
    use mboxpopd::storage::mailbox::recover_spool_dir;
    use mboxpopd::sys::process;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for p in [&a, &b, &c] {
        write_file(p, &mbox(&[message("a", 3)]));
    }
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let ours = |pid: u32, start: u64| {
        format!(
            "{pid}:{}\nmboxpopd boot={} start={start}\n",
            process::host_name(),
            process::boot_id().expect("boot id")
        )
    };
    fs::write(DotLock::path_for(&a), ours(dead, 1)).expect("lock a");
    let me = std::process::id();
    let my_start = process::own_start_time().expect("start");
    fs::write(DotLock::path_for(&b), ours(me, my_start)).expect("lock b");
    fs::write(DotLock::path_for(&c), format!("{dead}\n")).expect("lock c");
    let mut opts = options();
    opts.dotlock_stale_age = Duration::from_secs(300);
    opts.lock_timeout = Duration::ZERO;
    let found = recover_spool_dir(dir.path(), &opts).expect("scan");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, a);
    assert!(matches!(found[0].1, Ok(Recovery::Clean)));
    assert!(!DotLock::path_for(&a).exists());
    assert!(DotLock::path_for(&b).exists(), "a live owner's lock");
    assert!(
        DotLock::path_for(&c).exists(),
        "a foreign lock keeps the age rule"
    );
}

/// A journal planted by another uid is ignored, not applied and not renamed: the owner logs in
/// and sees the mailbox as it is, and the next commit clears the name and succeeds.
#[test]
fn a_planted_journal_does_not_lock_the_owner_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let old = mbox(&[message("a", 3), message("b", 3), message("c", 3)]);
    write_file(&path, &old);
    let jp = journal_path(&path);
    fs::write(&jp, b"MBOXPOPD-JRNL-1\nnot really").expect("plant");
    let uid = fs::metadata(&path).expect("stat").uid();
    if std::os::unix::fs::chown(&jp, Some(uid + 1), None).is_err() {
        eprintln!("skipped: cannot chown (not root)");
        return;
    }
    let mut mb = Mailbox::open(&path, &options()).expect("open despite the planted journal");
    assert_eq!(mb.messages().len(), 3);
    assert!(jp.exists(), "ignored, not removed by recovery");
    let mut aside = jp.clone().into_os_string();
    aside.push(".rejected");
    assert!(!std::path::Path::new(&aside).exists(), "never renamed");
    mb.commit(&[0]).expect("commit");
    assert_eq!(
        fs::read(&path).expect("read"),
        mbox(&[message("b", 3), message("c", 3)])
    );
    assert!(!jp.exists());
}

#[test]
fn reading_does_not_touch_atime() {
    // procmail sleeps with its locks held when the spool was read since its last write
    // (atime > mtime); O_NOATIME keeps us out of that.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    write_file(&path, &mbox(&[message("a", 3), message("b", 3)]));
    // An atime older than the mtime: relatime would update it on the next read.
    let ok = std::process::Command::new("touch")
        .args(["-a", "-d", "2001-01-01 00:00:00"])
        .arg(&path)
        .status()
        .expect("touch")
        .success();
    assert!(ok);
    let before = fs::metadata(&path).expect("stat").atime();
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    retr(&mut mb, 0);
    retr(&mut mb, 1);
    mb.commit(&[]).expect("commit");
    assert_eq!(fs::metadata(&path).expect("stat").atime(), before);
}

#[test]
fn a_session_that_ends_without_quit_changes_nothing_and_leaves_no_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let content = mbox(&[message("a", 3), message("b", 3)]);
    write_file(&path, &content);
    let mut opts = options();
    opts.hold_mda_locks = true;
    let mut mb = Mailbox::open(&path, &opts).expect("open");
    retr(&mut mb, 1);
    assert!(DotLock::path_for(&path).exists());
    drop(mb); // connection lost, timeout, signal: no commit
    assert_eq!(fs::read(&path).expect("read"), content);
    assert!(!DotLock::path_for(&path).exists());
    assert!(!journal_path(&path).exists());
    Mailbox::open(&path, &options()).expect("the session lock is free again");
}
