//! `auth = system` with a real account: created with useradd, its password set by chpasswd
//! (Debian's default hash, yescrypt), looked up in the real /etc/passwd and /etc/shadow. The
//! session must run as that user (the mailbox keeps its owner and mode through a commit, the
//! dot-lock is created in a `root:mail 2775`-style spool), in the standalone daemon (per-thread
//! credentials) and under inetd (the whole process drops). Needs root and the shadow tools;
//! elsewhere it prints SKIPPED. The account is removed again, whatever the outcome.

use crate::common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::process::Command;

use common::SystemAccount as Account;
use common::*;

fn mail_gid() -> Option<u32> {
    fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == "mail").then(|| f[2].parse().ok())?
        })
}

/// A spool like Debian's (`root:mail 2775`) holding `user:mail 0660` mailboxes.
fn debian_spool(f: &mut Fixture, mail: u32, users: &[&Account]) {
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let spool = f.path().join("spool");
    chown(&spool, Some(0), Some(mail)).expect("chown spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).expect("chmod spool");
    for u in users {
        f.write_mbox(&u.name, &mbox(&[MSG1, MSG2, MSG3]));
        chown(f.mailbox(&u.name), Some(u.uid), Some(mail)).expect("chown mbox");
        fs::set_permissions(f.mailbox(&u.name), fs::Permissions::from_mode(0o660))
            .expect("chmod mbox");
    }
    f.config("auth = system");
    f.config("spool_group = mail");
}

fn ready() -> Option<u32> {
    if !is_root() {
        eprintln!("SKIPPED: system-user tests need root (they create accounts)");
        return None;
    }
    if !["useradd", "chpasswd", "userdel"].iter().all(|t| tool(t)) {
        eprintln!("SKIPPED: useradd/chpasswd/userdel not installed");
        return None;
    }
    let mail = mail_gid();
    if mail.is_none() {
        eprintln!("SKIPPED: no `mail` group");
    }
    mail
}

fn check_after_dele_1(f: &Fixture, a: &Account, mail: u32) {
    assert_eq!(show(&f.read_mbox(&a.name)), show(&mbox(&[MSG2, MSG3])));
    let meta = fs::metadata(f.mailbox(&a.name)).expect("meta");
    assert_eq!((meta.uid(), meta.gid()), (a.uid, mail), "owner kept");
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode kept");
    let others: Vec<String> = f
        .spool_leftovers()
        .into_iter()
        .filter(|n| !n.starts_with("mbxt") || n.contains('.'))
        .collect();
    assert_eq!(others, Vec::<String>::new(), "no lock or journal left");
}

#[test]
fn standalone_daemon_serves_real_accounts_with_their_own_credentials() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("a", "Correct horse 1");
    let bob = Account::create("b", "Battery staple 2");
    assert!(
        alice.shadow_hash().starts_with('$'),
        "a crypt hash: {}",
        alice.shadow_hash()
    );
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice, &bob]);
    let server = f.standalone();

    // Two users at once, each in a thread with their own uid.
    let mut a = server.connect();
    a.login(&alice.name, "Correct horse 1");
    let mut b = server.connect();
    b.login(&bob.name, "Battery staple 2");
    assert_eq!(
        a.ok("STAT"),
        format!(
            "+OK 3 {}",
            [MSG1, MSG2, MSG3]
                .map(|m| content(m).len())
                .iter()
                .sum::<usize>()
        )
    );
    a.ok("DELE 1");
    a.quit();
    check_after_dele_1(&f, &alice, mail);
    b.quit();
    assert_eq!(
        show(&f.read_mbox(&bob.name)),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );

    // A wrong password and an unknown user get the same answer.
    let mut c = server.connect();
    c.ok(&format!("USER {}", alice.name));
    let wrong = c.err("PASS wrong");
    c.ok("USER nosuchuser");
    let unknown = c.err("PASS wrong");
    assert_eq!(wrong, unknown);
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
}

#[test]
fn inetd_session_drops_the_process_to_the_account() {
    let Some(mail) = ready() else { return };
    let carol = Account::create("c", "Tr0ub4dor&3");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&carol]);
    let mut c = f.inetd();
    c.login(&carol.name, "Tr0ub4dor&3");
    // Logged in: the whole process now runs as carol, with `mail` as a supplementary group.
    let status = fs::read_to_string(format!("/proc/{}/status", c.server_pid().expect("pid")))
        .expect("status");
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), vec![carol.uid; 4], "{status}");
    assert_eq!(field("Gid:"), vec![carol.gid; 4], "{status}");
    assert!(field("Groups:").contains(&mail), "{status}");
    c.ok("DELE 1");
    c.quit();
    check_after_dele_1(&f, &carol, mail);

    // A locked account no longer logs in.
    assert!(Command::new("usermod")
        .args(["-L", &carol.name])
        .status()
        .expect("usermod")
        .success());
    let mut c = f.inetd();
    c.ok(&format!("USER {}", carol.name));
    let reply = c.err("PASS Tr0ub4dor&3");
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
}

/// Run `args` as the account (real, effective and saved uid and gid; no other groups), the
/// way a local user with a shell would; returns (success, stderr).
fn as_user(a: &Account, args: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &a.uid.to_string(),
            "--regid",
            &a.gid.to_string(),
            "--clear-groups",
            "--",
        ])
        .args(args)
        .output()
        .expect("setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon's thread ids with their `Uid:` and `CapEff:` lines.
fn threads_of(pid: u32) -> Vec<(String, Vec<u32>, u64)> {
    let mut out = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let tid = e.expect("entry").file_name().to_string_lossy().into_owned();
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else {
            continue;
        };
        let line = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or("")
        };
        let uids = line("Uid:")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let caps = u64::from_str_radix(line("CapEff:").trim(), 16).unwrap_or(u64::MAX);
        out.push((tid, uids, caps));
    }
    out
}

#[test]
fn a_logged_in_user_cannot_signal_limit_or_trace_any_daemon_thread() {
    let Some(mail) = ready() else { return };
    if !tool("setpriv") {
        eprintln!("SKIPPED: setpriv not installed");
        return;
    }
    let alice = Account::create("k", "Kill me not 1");
    let bob = Account::create("l", "Innocent bystander 2");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice, &bob]);
    let server = f.standalone();
    let mut a = server.connect();
    a.login(&alice.name, "Kill me not 1");

    // Alice's session thread: her uid only as the file-system uid, no capability left.
    let threads = threads_of(server.pid());
    let hers: Vec<_> = threads
        .iter()
        .filter(|(_, uids, _)| uids.last() == Some(&alice.uid))
        .collect();
    assert_eq!(hers.len(), 1, "one session thread: {threads:?}");
    assert_eq!(hers[0].1, vec![0, 0, 0, alice.uid]);
    assert_eq!(hers[0].2, 0, "no effective capability");
    // Every thread keeps uid 0 in its real, effective and saved slots.
    assert!(
        threads.iter().all(|(_, u, _)| u[..3] == [0, 0, 0]),
        "{threads:?}"
    );

    for (tid, _, _) in &threads {
        let (ok, err) = as_user(&alice, &["kill", "-0", tid]);
        assert!(
            !ok && err.contains("Operation not permitted"),
            "kill -0 {tid}: {err}"
        );
        let (ok, err) = as_user(&alice, &["kill", "-STOP", tid]);
        assert!(
            !ok && err.contains("Operation not permitted"),
            "kill -STOP {tid}: {err}"
        );
        let (ok, err) = as_user(&alice, &["prlimit", "--pid", tid, "--nofile=8:8"]);
        assert!(!ok, "prlimit {tid} succeeded: {err}");
        if tool("strace") {
            let (ok, err) = as_user(&alice, &["strace", "-p", tid, "-e", "trace=none"]);
            assert!(!ok, "strace attached to {tid}: {err}");
        }
    }

    // The daemon is whole: her session goes on, and another user logs in.
    assert!(a.ok("STAT").starts_with("+OK 3 "));
    let mut b = server.connect();
    b.login(&bob.name, "Innocent bystander 2");
    b.quit();
    a.quit();
}

#[test]
fn a_refused_mailbox_ends_the_connection_and_is_never_served() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("r", "Refuse me 1");
    let bob = Account::create("s", "Planter 2");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice, &bob]);
    // Bob's world-writable file in place of alice's mailbox.
    let path = f.mailbox(&alice.name);
    fs::remove_file(&path).expect("rm");
    fs::write(&path, mbox(&[MSG3])).expect("plant");
    chown(&path, Some(bob.uid), Some(bob.gid)).expect("chown");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
    let server = f.standalone();
    let mut c = server.connect();
    c.ok(&format!("USER {}", alice.name));
    let reply = c.err("PASS Refuse me 1");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    // No second try on a thread that already became alice.
    c.expect_eof();
    let mut c = server.connect();
    c.ok(&format!("USER {}", alice.name));
    assert!(c.err("PASS Refuse me 1").starts_with("-ERR [SYS/PERM]"));
    c.expect_eof();
    assert!(server.wait_for_log("maildrop refused after the identity switch"));
    // Bob, on a fresh connection, is unaffected.
    let mut c = server.connect();
    c.login(&bob.name, "Planter 2");
    c.quit();
}

#[test]
fn another_users_junk_journal_neither_locks_the_owner_out_nor_is_applied() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("j", "Journal owner 1");
    let bob = Account::create("m", "Journal planter 2");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice]);
    // A spool every user may write to (1777), where bob plants alice's journal name.
    let spool = f.path().join("spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).expect("chmod spool");
    let mut journal = f.mailbox(&alice.name).into_os_string();
    journal.push(".mboxpopd-journal");
    let journal = std::path::PathBuf::from(journal);
    let (ok, err) = as_user(
        &bob,
        &["sh", "-c", &format!("echo junk > {}", journal.display())],
    );
    assert!(ok, "bob plants the journal: {err}");
    let server = f.standalone();
    let mut c = server.connect();
    c.login(&alice.name, "Journal owner 1");
    assert!(
        c.ok("STAT").starts_with("+OK 3 "),
        "login and mailbox intact"
    );
    c.ok("DELE 1");
    // Alice cannot remove bob's file from a sticky directory, so the commit is refused and
    // nothing changes; it is never applied nor renamed.
    let reply = c.cmd("QUIT");
    assert!(reply.starts_with("-ERR [SYS/TEMP]"), "{reply}");
    assert_eq!(
        show(&f.read_mbox(&alice.name)),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
    assert_eq!(fs::read(&journal).expect("still there"), b"junk\n");
    assert!(server.wait_for_log("journal"));
    // The next login still works.
    let mut c = server.connect();
    c.login(&alice.name, "Journal owner 1");
    c.quit();
}

#[test]
fn a_planted_fifo_or_symlink_lock_never_hangs_a_login() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("f", "Fifo victim 1");
    let bob = Account::create("g", "Fifo planter 2");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice]);
    f.config("lock_timeout = 2s");
    let spool = f.path().join("spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o1777)).expect("chmod spool");
    let mut lock = f.mailbox(&alice.name).into_os_string();
    lock.push(".lock");
    let lock = std::path::PathBuf::from(lock);
    let server = f.standalone();
    for plant in [
        format!("mkfifo {0} && touch -d '1 hour ago' {0}", lock.display()),
        format!("ln -s /etc/shadow {}", lock.display()),
    ] {
        let (ok, err) = as_user(&bob, &["sh", "-c", &plant]);
        assert!(ok, "{plant}: {err}");
        let started = std::time::Instant::now();
        let mut c = server.connect();
        c.ok(&format!("USER {}", alice.name));
        let reply = c.err("PASS Fifo victim 1");
        assert!(reply.starts_with("-ERR [IN-USE]"), "{plant}: {reply}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "bounded by lock_timeout: {:?}",
            started.elapsed()
        );
        let meta = fs::symlink_metadata(&lock).expect("planted file left alone");
        assert_eq!(meta.uid(), bob.uid);
        fs::remove_file(&lock).expect("admin removes it");
        // Without the planted file alice is served at once.
        let mut c = server.connect();
        c.login(&alice.name, "Fifo victim 1");
        c.quit();
    }
    assert_eq!(
        fs::read(f.path().join("spool").join(&alice.name)).expect("mbox"),
        mbox(&[MSG1, MSG2, MSG3])
    );
}
