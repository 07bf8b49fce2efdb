//! The locks MDAs honour, seen from a client: a live MDA's dot-lock makes a login wait and
//! then answer `[IN-USE]`, a stale one is taken over, and `hold_mda_locks = yes` keeps a real
//! MDA (procmail) out for the whole session.

use crate::common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::*;

fn dot_lock(f: &Fixture, user: &str) -> std::path::PathBuf {
    f.path().join("spool").join(format!("{user}.lock"))
}

#[test]
fn a_live_mdas_dot_lock_means_in_use_after_lock_timeout() {
    let mut f = Fixture::new();
    f.config("lock_timeout = 1s");
    f.write_mbox("alice", &mbox(&[MSG1]));
    // Held by a live process (this test).
    let lock = dot_lock(&f, "alice");
    fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let mut c = f.inetd();
    c.ok("USER alice");
    let t = Instant::now();
    let r = c.cmd("PASS secret");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "did not wait: {:?}",
        t.elapsed()
    );
    drop(c);
    // Somebody else's lock is never removed.
    assert!(lock.exists(), "the MDA's dot-lock was removed");
    fs::remove_file(&lock).unwrap();
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.quit();
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1]));
}

#[test]
fn a_stale_dot_lock_is_taken_over() {
    let mut f = Fixture::new();
    f.config("dotlock_stale_age = 1m");
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    // Left behind by a process that is gone, an hour ago.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let lock = dot_lock(&f, "alice");
    fs::write(&lock, format!("{pid}\n")).unwrap();
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG2])));
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    assert!(
        c.log().contains("stale dot-lock"),
        "takeover not logged:\n{}",
        c.log()
    );
}

#[test]
fn hold_mda_locks_keeps_a_real_mda_out_until_quit() {
    let Some(procmail) = require("procmail") else {
        return;
    };
    let mut f = Fixture::new();
    f.config("hold_mda_locks = yes");
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    let mut mda = procmail_delivery(&procmail, &f.mailbox("alice"), MSG3, &["LOCKSLEEP=1"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        mda.try_wait().unwrap().is_none(),
        "procmail delivered while the session held the MDA locks"
    );
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, MSG2]));
    c.quit();
    let st = wait_timeout(&mut mda, PATIENCE).expect("procmail never delivered");
    assert!(st.success());
    let left = split_mbox(&f.read_mbox("alice"));
    assert_eq!(left.len(), 2, "{}", show(&f.read_mbox("alice")));
    assert_eq!(show(&left[0]), MSG2);
    assert_eq!(show(&left[1]), MSG3);
}

#[test]
fn by_default_a_real_mda_delivers_during_a_session() {
    let Some(procmail) = require("procmail") else {
        return;
    };
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    // MSG3: procmail would quote MSG2's unquoted "From " body line.
    let mut mda = procmail_delivery(&procmail, &f.mailbox("alice"), MSG3, &["LOCKSLEEP=1"]);
    // Not blocked by the open session: done long before the session ends.
    let st = wait_timeout(&mut mda, Duration::from_secs(10)).expect("delivery blocked");
    assert!(st.success());
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG1, MSG3])));
    c.quit();
}

/// In a world-writable sticky spool another user plants a FIFO (or a symlink) as `alice.lock`.
/// It is nobody's lock: never opened in a way that blocks, never followed. The session (here
/// virtual-user mode, running as nobody) may not remove it, so the login waits `lock_timeout`
/// and answers `[IN-USE]`, logging the file and its owner; once it is gone, all is well.
#[test]
fn a_planted_fifo_or_symlink_lock_ends_in_in_use_after_lock_timeout() {
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let mut f = Fixture::new();
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let spool = f.path().join("spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).unwrap();
    f.config("user = nobody");
    f.config("spool_group =");
    f.config("lock_timeout = 1s");
    f.write_mbox("alice", &mbox(&[MSG1]));
    chown(f.mailbox("alice"), Some(NOBODY), Some(NOBODY)).unwrap();
    let conf = f.write_config("127.0.0.1:1");
    chown(f.path().join("passwd"), Some(NOBODY), None).unwrap();
    chown(&conf, Some(NOBODY), None).unwrap();
    let lock = dot_lock(&f, "alice");
    let secret = f.path().join("secret");
    fs::write(&secret, b"not yours").unwrap();
    for planted in ["FIFO", "symbolic link"] {
        if planted == "FIFO" {
            assert!(Command::new("mkfifo")
                .arg(&lock)
                .status()
                .unwrap()
                .success());
        } else {
            symlink(&secret, &lock).unwrap();
        }
        // Owned by another user (daemon, uid 1): nobody cannot unlink it from a sticky dir.
        std::os::unix::fs::lchown(&lock, Some(1), Some(1)).unwrap();
        let mut c = f.inetd();
        c.ok("USER alice");
        let t = Instant::now();
        let r = c.cmd("PASS secret");
        assert!(r.starts_with("-ERR [IN-USE]"), "{planted}: {r}");
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{planted}: {waited:?}"
        );
        // Logged before the wait began.
        let log = c.log();
        drop(c);
        let needle = format!("alice.lock is a {planted} owned by uid 1, not a lock file");
        assert!(log.contains(&needle), "{needle}:\n{log}");
        assert_eq!(fs::read(&secret).unwrap(), b"not yours");
        fs::remove_file(&lock).unwrap();
    }
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.quit();
}
