//! Credentials, through the real binary. These tests need root (they switch to `nobody`);
//! run as another user they print SKIPPED.
//!
//! - Accounts that carry a uid: each session thread of the standalone daemon switches to it
//!   before opening the mailbox, refuses a mailbox owned by someone else, and the daemon
//!   itself stays root for the next session.
//! - Virtual-user mode (`user =`): the whole process drops right after binding.

use crate::common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};

use common::*;

const NOBODY: u32 = 65534;

/// The name of group `gid` in /etc/group (Debian: nogroup, Fedora: nobody).
fn group_name(gid: u32) -> Option<String> {
    fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == gid.to_string()).then(|| f[0].to_string())
        })
}

fn user_name(uid: u32) -> Option<String> {
    fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
}

/// The effective uid of a running process.
fn euid_of(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// A spool like Debian's `root:mail 2775`, with the nobody group in the role of `mail`.
fn shared_spool(f: &Fixture, group: u32) {
    // The temporary directory itself must be traversable by nobody.
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let spool = f.path().join("spool");
    chown(&spool, Some(0), Some(group)).expect("chown spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).expect("chmod spool");
}

#[test]
fn session_threads_take_the_account_uid_and_refuse_foreign_mailboxes() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let Some(group) = group_name(NOBODY) else {
        eprintln!("SKIPPED: no group with gid {NOBODY}");
        return;
    };
    let mut f = Fixture::new();
    shared_spool(&f, NOBODY);
    f.passwd_line(&format!("nob:{{PLAIN}}pw:{NOBODY}:{NOBODY}::/nonexistent"));
    f.passwd_line(&format!(
        "victim:{{PLAIN}}pw:{NOBODY}:{NOBODY}::/nonexistent"
    ));
    f.config(&format!("spool_group = {group}"));
    f.write_mbox("nob", &mbox(&[MSG1, MSG3]));
    chown(f.mailbox("nob"), Some(NOBODY), Some(NOBODY)).expect("chown mbox");
    // root's file under a name whose account has nobody's uid: must not be served.
    f.write_mbox("victim", &mbox(&[MSG2]));

    let server = f.standalone();
    let mut c = server.connect();
    c.login("nob", "pw");
    c.ok("DELE 1");
    c.quit();
    // The commit (dot-lock in the group-writable spool, rewrite) ran as nobody.
    assert_eq!(show(&f.read_mbox("nob")), show(&mbox(&[MSG3])));
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    let meta = fs::metadata(f.mailbox("nob")).expect("meta");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);

    let mut c = server.connect();
    c.ok("USER victim");
    let reply = c.err("PASS pw");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    drop(c);

    // Only the session threads changed credentials: the daemon is still root and serves on.
    assert_eq!(euid_of(server.pid()), Some(0));
    let mut c = server.connect();
    c.login("nob", "pw");
    assert_eq!(c.ok("STAT"), format!("+OK 1 {}", content(MSG3).len()));
    c.quit();
}

#[test]
fn virtual_user_mode_drops_the_process_after_binding() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (Some(user), Some(group)) = (user_name(NOBODY), group_name(NOBODY)) else {
        eprintln!("SKIPPED: no nobody user/group");
        return;
    };
    let mut f = Fixture::new();
    shared_spool(&f, NOBODY);
    f.config(&format!("user = {user}"));
    f.config(&format!("group = {group}"));
    f.config("spool_group =");
    f.write_mbox("alice", &mbox(&[MSG1]));
    chown(f.mailbox("alice"), Some(NOBODY), Some(NOBODY)).expect("chown mbox");
    // The passwd-file is re-read after the drop, so nobody must be able to read it.
    let conf = f.write_config("127.0.0.1:1");
    chown(f.path().join("passwd"), Some(NOBODY), Some(NOBODY)).expect("chown passwd");
    chown(&conf, Some(NOBODY), Some(NOBODY)).expect("chown conf");

    let server = f.standalone();
    let mut c = server.connect();
    c.login("alice", "secret");
    // Checked once a session was served: the kernel completes connections on the bound
    // socket (the harness' readiness probe) before the process drops, but the drop comes
    // before the accept loop.
    assert_eq!(euid_of(server.pid()), Some(NOBODY));
    assert_eq!(c.ok("STAT"), format!("+OK 1 {}", content(MSG1).len()));
    c.quit();
    // The missing index cache directory was made for the identity the daemon keeps, before
    // it dropped root, and the session's index went into it.
    let cache = f.path().join("index-cache");
    let meta = fs::symlink_metadata(&cache).expect("cache directory created");
    assert!(meta.is_dir());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o700));
    assert!(
        server.wait_for_log("created the index cache directory"),
        "{}",
        server.log()
    );
    assert!(!server
        .log()
        .contains("running without the on-disk index cache"));
    let deadline = std::time::Instant::now() + PATIENCE;
    while fs::read_dir(&cache).expect("read cache").count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no index cache file written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
