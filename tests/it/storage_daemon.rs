//! The crash-safety promise checked on the real `mboxpopd` binary (inetd mode over pipes): the
//! daemon is killed while it commits a QUIT — by the `fault-injection` hooks at every write and
//! fsync step, and by SIGKILL at random instants — and the next real session must see the
//! complete old or the complete new mailbox, with no lock file or journal left in the spool.

use crate::common;
use crate::common::storage as storage_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use common::{binary, Fixture};
use storage_support as ss;

/// Whether the binary under test has the crash points (test builds do; `MBOXPOPD_BIN` may name
/// a release build that does not).
fn has_fault_hooks() -> bool {
    std::fs::read(binary())
        .map(|b| b.windows(17).any(|w| w == b"MBOXPOPD_FAULT_AT"))
        .unwrap_or(false)
}

fn fixture() -> Fixture {
    let mut f = Fixture::new();
    // The killed session leaves its dot-lock; its pid is gone, so the next one takes it over.
    f.config("dotlock_stale_age = 0");
    f.config("lock_timeout = 10s");
    f
}

fn spawn(conf: &Path, env: &[(&str, String)]) -> Child {
    common::spawn_inetd(conf, env)
}

fn dele(deleted: &[usize]) -> String {
    deleted.iter().map(|d| format!("DELE {d}\r\n")).collect()
}

/// Log in, send `commands`, QUIT, all pipelined; returns the exit status, what the client
/// received and the log.
fn session(conf: &Path, commands: &str, env: &[(&str, String)]) -> (ExitStatus, String, String) {
    let mut child = spawn(conf, env);
    let script = format!("USER alice\r\nPASS secret\r\n{commands}QUIT\r\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("send");
    let out = child.wait_with_output().expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Case {
    messages: Vec<Vec<u8>>,
    /// 1-based, as the client sends them.
    deleted: Vec<usize>,
}

impl Case {
    fn old(&self) -> Vec<u8> {
        self.messages.concat()
    }
    fn new_content(&self) -> Vec<u8> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted.contains(&(i + 1)))
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>()
            .concat()
    }
}

/// On a fresh copy of the old mailbox, a session that DELEs `case.deleted` and QUITs, with
/// the process killed at the `step`th write or fsync of the commit.
fn commit_with_fault_at(
    f: &Fixture,
    conf: &Path,
    case: &Case,
    step: u64,
) -> (ExitStatus, String, String) {
    f.write_mbox("alice", &case.old());
    let env = [
        ("MBOXPOPD_FAULT_AT", step.to_string()),
        ("MBOXPOPD_FAULT_CHUNK", String::from("512")),
    ];
    session(conf, &dele(&case.deleted), &env)
}

/// A normal session (which recovers), then the invariant. Returns whether the commit survived.
fn check(f: &Fixture, conf: &Path, case: &Case, what: &str) -> bool {
    let (status, out, log) = session(conf, "STAT\r\n", &[]);
    assert!(
        status.success(),
        "{what}: recovery session failed: {out}\n{log}"
    );
    let now = f.read_mbox("alice");
    let kept = if now == case.old() {
        false
    } else if now == case.new_content() {
        true
    } else {
        let tags: Vec<Option<String>> = ss::split(&now).iter().map(|m| ss::tag_of(m)).collect();
        panic!("{what}: neither old nor new content; messages now {tags:?}\n{log}");
    };
    let expected_stat = if kept {
        case.messages.len() - case.deleted.len()
    } else {
        case.messages.len()
    };
    assert!(
        out.contains(&format!("\r\n+OK {expected_stat} ")),
        "{what}: the recovering session saw the wrong maildrop: {out}"
    );
    assert_eq!(
        f.spool_leftovers(),
        Vec::<String>::new(),
        "{what}: files left in the spool"
    );
    kept
}

#[test]
fn daemon_killed_at_every_commit_step_recovers_old_or_new() {
    if !has_fault_hooks() {
        eprintln!("skipped: the binary under test has no fault-injection hooks");
        return;
    }
    let f = fixture();
    let conf = f.write_config("127.0.0.1:1");
    let case = Case {
        messages: (0..10).map(|i| ss::message(&format!("d{i}"), 20)).collect(),
        deleted: vec![2, 5, 6, 10],
    };
    let (mut olds, mut news) = (0, 0);
    for step in 1u64.. {
        let (status, out, log) = commit_with_fault_at(&f, &conf, &case, step);
        if !log.contains("fault injected") {
            assert!(status.success(), "step {step}: {out}\n{log}");
            assert_eq!(
                out.lines().filter(|l| l.starts_with("+OK")).count(),
                4 + case.deleted.len(),
                "{out}"
            );
            assert_eq!(f.read_mbox("alice"), case.new_content());
            assert!(step > 20, "too few crash points: {}", step - 1);
            eprintln!("{} crash points: {olds} old, {news} new", step - 1);
            break;
        }
        assert_eq!(status.signal(), Some(libc::SIGABRT), "step {step}: {log}");
        // Greeting, USER, PASS and the DELEs may have been answered (pipelined replies are
        // batched); QUIT must not have been.
        assert!(
            out.lines().filter(|l| l.starts_with("+OK")).count() < 4 + case.deleted.len(),
            "step {step}: QUIT was acknowledged before the commit was durable: {out}"
        );
        if check(&f, &conf, &case, &format!("fault at step {step}")) {
            news += 1;
        } else {
            olds += 1;
        }
    }
    assert!(olds > 0 && news > 0);
}

#[test]
fn daemon_sigkilled_at_random_instants_of_quit_recovers_old_or_new() {
    let f = fixture();
    let conf = f.write_config("127.0.0.1:1");
    let case = Case {
        // ~8 MB; deleting the first message rewrites all of it.
        messages: (0..1000)
            .map(|i| ss::message(&format!("k{i}"), 180))
            .collect(),
        deleted: vec![1, 500, 1000],
    };
    // Log in and DELE, wait for every answer, then QUIT and (maybe) kill after `delay`.
    let run = |delay: Option<Duration>| -> (Duration, ExitStatus) {
        let mut child = spawn(&conf, &[]);
        let mut stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let script = format!("USER alice\r\nPASS secret\r\n{}", dele(&case.deleted));
        stdin.write_all(script.as_bytes()).expect("send");
        // Greeting, USER, PASS, one per DELE.
        for _ in 0..3 + case.deleted.len() {
            let l = lines.next().expect("reply").expect("read");
            assert!(l.starts_with("+OK"), "{l}");
        }
        stdin.write_all(b"QUIT\r\n").expect("quit");
        let t = Instant::now();
        if let Some(d) = delay {
            std::thread::sleep(d);
            let _ = child.kill();
        }
        let status = child.wait().expect("wait");
        (t.elapsed(), status)
    };
    f.write_mbox("alice", &case.old());
    let (full, status) = run(None);
    assert!(status.success());
    assert_eq!(f.read_mbox("alice"), case.new_content());

    let mut rng = ss::Rng::from_time();
    let (mut olds, mut news) = (0, 0);
    for trial in 0..15 {
        f.write_mbox("alice", &case.old());
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 6 / 5));
        let (_, status) = run(Some(delay));
        if check(
            &f,
            &conf,
            &case,
            &format!("trial {trial}: SIGKILL {delay:?} after QUIT ({status})"),
        ) {
            news += 1;
        } else {
            olds += 1;
        }
    }
    eprintln!("QUIT takes {full:?}; 15 random kills: {olds} old, {news} new");
}

/// A commit killed mid-rewrite leaves a journal; a standalone daemon starting on that spool
/// rolls it back before anyone logs in, so MDAs never append to a half-rewritten file.
#[test]
fn standalone_daemon_recovers_interrupted_commits_at_start_up() {
    if !has_fault_hooks() {
        eprintln!("skipped: the binary under test has no fault-injection hooks");
        return;
    }
    let f = fixture();
    let conf = f.write_config("127.0.0.1:1");
    let case = Case {
        messages: (0..10).map(|i| ss::message(&format!("s{i}"), 20)).collect(),
        deleted: vec![1],
    };
    // Find a crash point that leaves a journal behind (the rewrite had started).
    let mut journaled = false;
    for step in 1u64..200 {
        let (_, _, log) = commit_with_fault_at(&f, &conf, &case, step);
        if !log.contains("fault injected") {
            break;
        }
        let left = f.spool_leftovers();
        let torn = f.read_mbox("alice") != case.old() && f.read_mbox("alice") != case.new_content();
        if torn && left.iter().any(|n| n.ends_with("-journal")) {
            journaled = true;
            break;
        }
    }
    assert!(
        journaled,
        "no crash point left a half-rewritten mailbox and its journal"
    );

    let server = f.standalone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("start-up recovery") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.log().contains("start-up recovery of"),
        "{}",
        server.log()
    );
    assert_eq!(
        f.read_mbox("alice"),
        case.old(),
        "rolled back to the old content"
    );
    assert!(
        !f.spool_leftovers().iter().any(|n| n.ends_with("-journal")),
        "{:?}",
        f.spool_leftovers()
    );
}

/// The step at which a commit with `MBOXPOPD_FAULT_CHUNK=512` has made its journal durable, from
/// a logged undisturbed run (which commits; the caller rewrites the mailbox). `prepare` runs
/// after the mailbox is written (ownership, mode).
fn journal_durable_step(f: &Fixture, conf: &Path, case: &Case, prepare: &dyn Fn(&Fixture)) -> u64 {
    f.write_mbox("alice", &case.old());
    prepare(f);
    let env = [
        ("MBOXPOPD_FAULT_LOG", String::from("1")),
        ("MBOXPOPD_FAULT_CHUNK", String::from("512")),
    ];
    let (status, out, log) = session(conf, &dele(&case.deleted), &env);
    assert!(status.success(), "{out}\n{log}");
    log.lines()
        .find_map(|l| {
            l.split("fault step ")
                .nth(1)?
                .strip_suffix(": journal directory fsync")
        })
        .expect("journal directory fsync step")
        .parse()
        .expect("number")
}

/// The daemon dies in the middle of the rewrite (the fault hook aborts the whole process: for
/// the files and locks the same as `kill -9`), leaving a half-rewritten mailbox, its journal and
/// the dot-lock of a dead pid. A restarted daemon serves the (rolled back) mailbox within a few
/// seconds although `dotlock_stale_age` is five minutes, and has released the lock for MDAs.
#[test]
fn restarted_daemon_serves_at_once_after_a_crash_mid_commit() {
    if !has_fault_hooks() {
        eprintln!("skipped: the binary under test has no fault-injection hooks");
        return;
    }
    let mut f = Fixture::new();
    f.config("dotlock_stale_age = 5m");
    let conf = f.write_config("127.0.0.1:1");
    let case = Case {
        messages: (0..10).map(|i| ss::message(&format!("r{i}"), 20)).collect(),
        deleted: vec![1],
    };
    // A few writes into the shift: the mailbox is torn, the journal durable.
    let step = journal_durable_step(&f, &conf, &case, &|_| {}) + 3;
    f.write_mbox("alice", &case.old());
    let env = [
        ("MBOXPOPD_FAULT_AT", step.to_string()),
        ("MBOXPOPD_FAULT_CHUNK", String::from("512")),
    ];
    let mut server = f.standalone_env("127.0.0.1", &env);
    let mut c = server.connect();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.send(b"QUIT\r\n");
    c.expect_eof();
    let status = server.stop();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{}", server.log());
    let now = f.read_mbox("alice");
    assert!(now != case.old() && now != case.new_content(), "not torn");
    let lock = f.mailbox("alice").with_extension("lock");
    let lock_text = std::fs::read_to_string(&lock).expect("the crash leaves its dot-lock");
    assert!(lock_text.contains("mboxpopd boot="), "{lock_text}");
    assert!(f.spool_leftovers().iter().any(|n| n.ends_with("-journal")));

    let t = Instant::now();
    let server = f.standalone();
    let listening = t.elapsed();
    let served = loop {
        let mut c = server.connect();
        c.ok("USER alice");
        let r = c.cmd("PASS secret");
        if r.starts_with("+OK") {
            let stat = c.ok("STAT");
            assert!(
                stat.starts_with(&format!("+OK {} ", case.messages.len())),
                "{stat}"
            );
            c.quit();
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "not served: {r}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The start-up scan has released the lock for MDAs (procmail would wait it out for 17 min).
    while lock.exists() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mda_free = t.elapsed();
    assert!(!lock.exists(), "{}", server.log());
    assert_eq!(f.read_mbox("alice"), case.old(), "rolled back");
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    assert!(
        server.log().contains("took over dot-lock"),
        "{}",
        server.log()
    );
    eprintln!(
        "restart after a crash mid-commit: listening after {listening:?}, mailbox served after \
         {served:?}, dot-lock free for MDAs after {mda_free:?}"
    );
    assert!(served < Duration::from_secs(3), "{served:?}");
}

/// Virtual-user mode (`auth = passwd-file`, `user = nobody`): the mailbox belongs to another
/// uid and nobody writes it through its group, so nobody owns the journal. Killed at every step
/// of a commit, the next session (and a restarted daemon) applies that journal: exactly the old
/// or the new mailbox every time.
#[test]
fn virtual_user_mode_recovers_journals_written_as_the_run_user() {
    use std::os::unix::fs::{chown, PermissionsExt};
    if !has_fault_hooks() || !common::is_root() {
        eprintln!("skipped: needs root and the fault-injection hooks");
        return;
    }
    const NOBODY: u32 = 65534;
    const DAEMON: u32 = 1;
    // The default stale age: the dead session's dot-lock must be recognised by its owner.
    let mut f = Fixture::new();
    f.config("lock_timeout = 10s");
    // Debian's `root:mail 2775`, with nobody's group in the role of `mail`.
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spool = f.path().join("spool");
    chown(&spool, Some(0), Some(NOBODY)).expect("chown spool");
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
    f.config("user = nobody");
    f.config(&format!(
        "group = {}",
        group_name(NOBODY).expect("nobody's group")
    ));
    f.config("spool_group =");
    let conf = f.write_config("127.0.0.1:1");
    chown(f.path().join("passwd"), Some(NOBODY), None).expect("chown passwd");
    chown(&conf, Some(NOBODY), None).expect("chown conf");
    let case = Case {
        messages: (0..10).map(|i| ss::message(&format!("v{i}"), 20)).collect(),
        deleted: vec![1],
    };
    let mailbox = f.mailbox("alice");
    let own = |f: &Fixture| {
        chown(f.mailbox("alice"), Some(DAEMON), Some(NOBODY)).expect("chown mbox");
        std::fs::set_permissions(f.mailbox("alice"), std::fs::Permissions::from_mode(0o660))
            .expect("chmod mbox");
    };
    let (mut olds, mut news, mut journaled) = (0, 0, 0);
    for step in 1u64.. {
        f.write_mbox("alice", &case.old());
        own(&f);
        let env = [
            ("MBOXPOPD_FAULT_AT", step.to_string()),
            ("MBOXPOPD_FAULT_CHUNK", String::from("512")),
        ];
        let (status, out, log) = session(&conf, &dele(&case.deleted), &env);
        if !log.contains("fault injected") {
            assert!(status.success(), "step {step}: {out}\n{log}");
            assert_eq!(f.read_mbox("alice"), case.new_content());
            break;
        }
        assert_eq!(status.signal(), Some(libc::SIGABRT), "step {step}: {log}");
        let journal = f
            .spool_leftovers()
            .into_iter()
            .find(|n| n.ends_with("-journal"));
        if let Some(j) = &journal {
            journaled += 1;
            let meta = std::fs::metadata(spool.join(j)).expect("journal");
            assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);
        }
        if check(
            &f,
            &conf,
            &case,
            &format!("virtual user, fault at step {step}"),
        ) {
            news += 1;
        } else {
            olds += 1;
        }
        let meta = std::fs::metadata(&mailbox).expect("mailbox");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), DAEMON);
    }
    eprintln!("virtual user: {olds} old, {news} new, {journaled} crashes left a journal");
    assert!(olds > 0 && news > 0 && journaled > 5);

    // The same through a restarted standalone daemon's start-up scan (as nobody).
    let step = journal_durable_step(&f, &conf, &case, &own) + 3;
    f.write_mbox("alice", &case.old());
    own(&f);
    let env = [
        ("MBOXPOPD_FAULT_AT", step.to_string()),
        ("MBOXPOPD_FAULT_CHUNK", String::from("512")),
    ];
    let (status, _, log) = session(&conf, &dele(&case.deleted), &env);
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{log}");
    assert_ne!(f.read_mbox("alice"), case.old());
    let server = f.standalone();
    assert!(
        server.wait_for_log("start-up recovery of"),
        "{}",
        server.log()
    );
    assert!(server.log().contains("RolledBack"), "{}", server.log());
    assert_eq!(f.read_mbox("alice"), case.old());
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

/// The name of group `gid` in /etc/group (Debian: nogroup, Fedora: nobody).
fn group_name(gid: u32) -> Option<String> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == gid.to_string()).then(|| f[0].to_string())
        })
}

/// The admin's case: the standalone daemon is SIGKILLed at a random instant of a commit while
/// procmail delivers to the same mailbox; the daemon restarted on the spool (with the default
/// five-minute stale-lock age) serves the mailbox within seconds, procmail's delivery gets
/// through, and the file holds exactly the old or the new mailbox followed by the delivery.
#[test]
fn standalone_daemon_killed_mid_commit_with_an_mda_delivering_serves_again_at_once() {
    let Some(procmail) = common::which("procmail") else {
        eprintln!("SKIPPED: procmail not installed");
        return;
    };
    let mut f = Fixture::new();
    f.config("lock_timeout = 10s");
    let case = Case {
        // ~4 MB; deleting message 1 rewrites all of it.
        messages: (0..500)
            .map(|i| ss::message(&format!("s{i}"), 180))
            .collect(),
        deleted: vec![1, 250],
    };
    let commit = |delay: Option<Duration>, tag: &str| -> (Duration, Option<std::process::Child>) {
        let mut server = f.standalone();
        let mut c = server.connect();
        c.login("alice", "secret");
        for d in &case.deleted {
            c.ok(&format!("DELE {d}"));
        }
        c.send(b"QUIT\r\n");
        let t = Instant::now();
        let mda = delay.map(|_| {
            common::procmail_delivery(
                &procmail,
                &f.mailbox("alice"),
                &format!("Subject: {tag}\n\ndelivered during the crash\n"),
                &["LOCKSLEEP=1"],
            )
        });
        match delay {
            Some(d) => {
                std::thread::sleep(d);
                server.signal("KILL");
                let _ = server.stop();
            }
            None => {
                c.line();
                server.stop();
            }
        }
        (t.elapsed(), mda)
    };
    f.write_mbox("alice", &case.old());
    let (full, _) = commit(None, "none");
    assert_eq!(f.read_mbox("alice"), case.new_content());

    let mut rng = ss::Rng::from_time();
    let (mut olds, mut news, mut slowest) = (0, 0, Duration::ZERO);
    for trial in 0..6 {
        f.write_mbox("alice", &case.old());
        let tag = format!("delivered-{trial}");
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 6 / 5));
        let (_, mda) = commit(Some(delay), &tag);
        let t = Instant::now();
        let server = f.standalone();
        loop {
            let mut c = server.connect();
            c.ok("USER alice");
            if c.cmd("PASS secret").starts_with("+OK") {
                c.quit();
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "trial {trial}: not served after a kill at {delay:?}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        slowest = slowest.max(t.elapsed());
        let out = mda.expect("mda").wait_with_output().expect("procmail");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let delivered = common::mbox(&[&format!("Subject: {tag}\n\ndelivered during the crash\n")]);
        let now = f.read_mbox("alice");
        let old = [case.old(), delivered.clone()].concat();
        let new = [case.new_content(), delivered].concat();
        if now == new {
            news += 1;
        } else {
            assert!(
                now == old,
                "trial {trial} (kill at {delay:?}): neither old nor new plus the delivery"
            );
            olds += 1;
        }
        assert_eq!(
            f.spool_leftovers(),
            Vec::<String>::new(),
            "trial {trial}: {}",
            server.log()
        );
    }
    eprintln!(
        "commit takes {full:?}; 6 kills with procmail delivering: {olds} old, {news} new; \
         served again after at most {slowest:?}"
    );
}
