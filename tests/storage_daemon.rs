//! The crash-safety promise checked on the real `mboxpopd` binary (inetd mode over pipes): the
//! daemon is killed while it commits a QUIT — by the `fault-injection` hooks at every write and
//! fsync step, and by SIGKILL at random instants — and the next real session must see the
//! complete old or the complete new mailbox, with no lock file or journal left in the spool.

mod common;
mod storage_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
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
    let mut cmd = Command::new(binary());
    cmd.arg("-c")
        .arg(conf)
        .arg("-i")
        .arg("-f")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn mboxpopd -i")
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
