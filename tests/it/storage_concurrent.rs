//! Real concurrent writers on one spool while sessions index, RETR, DELE and QUIT.
//!
//! Writers: a perl process delivering the way Postfix `local` and Exim do (dot-lock with
//! O_EXCL, then a blocking fcntl write lock, append, unlock), and Debian's procmail (dot-lock
//! via link(2), then fcntl from EOF onwards). At the end every delivered message is in the
//! spool exactly once, byte-exact, unless a session deleted it.

use crate::common::storage as storage_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::mailbox::Mailbox;
use mboxpopd::storage::StoreError;
use storage_support::*;

/// Appends files `DIR/0`, `DIR/1`, ... under dot-lock + fcntl, with short random pauses.
const PERL_MDA: &str = r#"
use strict;
use Fcntl qw(O_WRONLY O_CREAT O_EXCL F_SETLKW F_WRLCK F_UNLCK SEEK_SET);
my ($mbox, $dir, $n) = @ARGV;
for my $i (0 .. $n - 1) {
    open(my $in, "<", "$dir/$i") or die "read $dir/$i: $!";
    local $/; my $msg = <$in>; close $in;
    my $lf;
    until (sysopen($lf, "$mbox.lock", O_WRONLY | O_CREAT | O_EXCL, 0644)) {
        die "dot-lock: $!" unless $!{EEXIST};
        select(undef, undef, undef, 0.002);
    }
    print $lf "$$\n"; close $lf;
    open(my $fh, ">>", $mbox) or die "open: $!";
    # struct flock on x86_64/aarch64 Linux; l_start = l_len = 0: the whole file and beyond.
    my $lk = pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0);
    fcntl($fh, F_SETLKW, $lk) or die "fcntl: $!";
    print $fh $msg; $fh->flush() or die "write: $!";
    my $ul = pack("s s x4 q q i x4", F_UNLCK, SEEK_SET, 0, 0, 0);
    fcntl($fh, F_SETLKW, $ul);
    close $fh or die "close: $!";
    unlink "$mbox.lock" or die "unlock: $!";
    select(undef, undef, undef, rand(0.004));
}
"#;

/// Live MDAs: their dot-locks must never be taken for stale (a lock file is empty for an
/// instant after its creation, procmail's holds no pid at all), so the real default age.
fn live_options() -> mboxpopd::storage::mailbox::MailboxOptions {
    let mut o = options();
    o.dotlock_stale_age = Duration::from_secs(300);
    o
}

/// Sessions in a loop until `done`, then one more: each RETRs everything (checking what it
/// can) and deletes every message whose number has the round's parity. Returns the deleted tags.
fn sessions(
    path: &Path,
    done: &AtomicBool,
    progress: &AtomicUsize,
    expected: &BTreeMap<String, Vec<u8>>,
) -> (BTreeSet<String>, usize) {
    let mut deleted = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let last = done.load(Ordering::SeqCst);
        let mut mb = match Mailbox::open(path, &live_options()) {
            Ok(mb) => mb,
            Err(StoreError::InUse(m)) => panic!("MDA held its locks too long: {m}"),
            Err(e) => panic!("open: {e}"),
        };
        let mut dele = Vec::new();
        for i in 0..mb.messages().len() {
            let mut out = Vec::new();
            mb.write_message(i, None, &mut out).expect("retr");
            // RFC 1939 sizes exclude the byte-stuffing dots RETR adds.
            assert_eq!(
                unstuffed_len(&out),
                mb.messages()[i].size,
                "size of message {i}"
            );
            let tag = tag_of(&out).expect("tag");
            if let Some(stored) = expected.get(&tag) {
                assert_eq!(out, transmit(stored), "RETR of {tag}");
            }
            if !last && i % 2 == rounds % 2 {
                dele.push(i);
                deleted.insert(tag);
            }
        }
        mb.commit(&dele).expect("commit");
        rounds += 1;
        progress.fetch_add(1, Ordering::SeqCst);
        if last {
            return (deleted, rounds);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Check the final spool: every message known, none twice, the deleted ones gone, the rest
/// present; `check` compares each stored message with what was delivered.
fn check_spool(
    path: &Path,
    all: &BTreeSet<String>,
    deleted: &BTreeSet<String>,
    check: impl Fn(&str, &[u8]),
) {
    let spool = fs::read(path).expect("read");
    let mut seen = BTreeSet::new();
    for m in split(&spool) {
        let tag = tag_of(m).expect("every stored message has its tag");
        assert!(all.contains(&tag), "unknown message {tag}");
        assert!(seen.insert(tag.clone()), "message {tag} is stored twice");
        assert!(!deleted.contains(&tag), "deleted message {tag} came back");
        check(&tag, m);
    }
    let missing: Vec<&String> = all
        .iter()
        .filter(|t| !deleted.contains(*t) && !seen.contains(*t))
        .collect();
    assert!(missing.is_empty(), "lost messages: {missing:?}");
}

#[test]
fn perl_mda_appending_under_dot_lock_and_fcntl_while_sessions_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let outbox = dir.path().join("outbox");
    fs::create_dir(&outbox).expect("mkdir");
    let mut expected = BTreeMap::new();
    let initial: Vec<Vec<u8>> = (0..20).map(|i| message(&format!("i{i}"), 8)).collect();
    for (i, m) in initial.iter().enumerate() {
        expected.insert(format!("i{i}"), m.clone());
    }
    write_file(&path, &mbox(&initial));
    const N: usize = 300;
    for i in 0..N {
        let m = message(&format!("w{i}"), 5 + i % 40);
        fs::write(outbox.join(i.to_string()), &m).expect("write");
        expected.insert(format!("w{i}"), m);
    }

    let mda = Command::new("perl")
        .arg("-e")
        .arg(PERL_MDA)
        .arg(&path)
        .arg(&outbox)
        .arg(N.to_string())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perl");
    let done = Arc::new(AtomicBool::new(false));
    let progress = AtomicUsize::new(0);
    let (deleted, rounds) = std::thread::scope(|s| {
        let h = s.spawn(|| sessions(&path, &done, &progress, &expected));
        let out = mda.wait_with_output().expect("wait");
        done.store(true, Ordering::SeqCst);
        assert!(
            out.status.success(),
            "the MDA failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        h.join().expect("sessions")
    });
    eprintln!("{rounds} sessions, {} messages deleted", deleted.len());
    assert!(rounds > 3, "too few sessions overlapped the deliveries");
    let all: BTreeSet<String> = expected.keys().cloned().collect();
    check_spool(&path, &all, &deleted, |tag, stored| {
        assert_eq!(stored, &expected[tag][..], "{tag} is not byte-exact");
    });
}

#[test]
fn procmail_delivering_while_sessions_commit() {
    let version = Command::new("procmail").arg("-v").output();
    if !version.is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("procmail")) {
        eprintln!("skipped: procmail is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let rc = dir.path().join("procmailrc");
    fs::write(&rc, "").expect("rc");
    write_file(&path, &mbox(&[message("first", 3)]));
    const N: usize = 60;
    // procmail writes its own From_ line and the separator; deliver header + body only.
    let bodies: BTreeMap<String, Vec<u8>> = (0..N)
        .map(|i| {
            let tag = format!("p{i}");
            let m = message(&tag, 3 + i % 30);
            let start = memchr::memchr(b'\n', &m).expect("from line") + 1;
            (tag, m[start..m.len() - 1].to_vec())
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let progress = AtomicUsize::new(0);
    let none = BTreeMap::new();
    let (deleted, rounds) = std::thread::scope(|s| {
        let h = s.spawn(|| sessions(&path, &done, &progress, &none));
        for (i, body) in bodies.values().enumerate() {
            // Back-to-back deliveries can starve the sessions of the dot-lock (each retry finds
            // it taken); real mail arrives in bursts with gaps. Leave a gap every few messages
            // until a session got through, so sessions and deliveries really interleave.
            if i % 4 == 0 {
                let seen = progress.load(Ordering::SeqCst);
                let t = std::time::Instant::now();
                while progress.load(Ordering::SeqCst) == seen
                    && t.elapsed() < Duration::from_secs(30)
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let mut child = Command::new("procmail")
                .arg("-f")
                .arg("sender@example.org")
                .arg("-m")
                .arg(format!("DEFAULT={}", path.display()))
                // procmail sleeps LOCKSLEEP (default 8) seconds whenever it finds the dot-lock
                // taken, which our sessions do all the time here.
                .arg("LOCKSLEEP=1")
                .arg(&rc)
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("procmail");
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin.write_all(body).expect("deliver");
            }
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success(), "procmail failed");
        }
        done.store(true, Ordering::SeqCst);
        h.join().expect("sessions")
    });
    eprintln!("{rounds} sessions, {} messages deleted", deleted.len());
    assert!(rounds > 3, "too few sessions overlapped the deliveries");
    let mut all: BTreeSet<String> = bodies.keys().cloned().collect();
    all.insert(String::from("first"));
    check_spool(&path, &all, &deleted, |tag, stored| {
        if let Some(body) = bodies.get(tag) {
            let start = memchr::memchr(b'\n', stored).expect("from line") + 1;
            assert_eq!(
                &stored[start..],
                &[body.as_slice(), b"\n"].concat()[..],
                "{tag}"
            );
        }
    });
}
