//! Crash safety of the QUIT commit, with real processes and real files.
//!
//! A child process (this test binary re-run as the ignored `child_commit` test) opens a
//! maildrop, optionally lets "an MDA" append, and commits deletions. It is killed either at a
//! chosen step by the `fault-injection` hooks (`MBOXPOPD_FAULT_AT`, which abort the process —
//! for the file system, the same as SIGKILL) or by SIGKILL from the parent at a random instant.
//! Then the parent opens the maildrop (which recovers) and checks the promise: the complete
//! old content or the complete new content, plus the appended mail; nothing torn, lost or
//! duplicated; no journal and no lock file left.

use crate::common::storage as storage_support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::journal::journal_path;
use mboxpopd::storage::lock::DotLock;
use mboxpopd::storage::mailbox::Mailbox;
use storage_support::*;

/// The child: open, announce, maybe append, commit.
#[test]
#[ignore = "helper process for the crash tests; run by them"]
fn child_commit() {
    let path = PathBuf::from(std::env::var("CRASH_MBOX").expect("CRASH_MBOX"));
    let deleted: Vec<usize> = std::env::var("CRASH_DELETE")
        .expect("CRASH_DELETE")
        .split(',')
        .map(|s| s.parse().expect("index"))
        .collect();
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    if let Ok(extra) = std::env::var("CRASH_APPEND") {
        // An MDA delivers after the index was made (the MDA locks are free by now).
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        f.write_all(extra.as_bytes()).expect("append");
    }
    println!("INDEXED");
    std::io::stdout().flush().expect("flush");
    mb.commit(&deleted).expect("commit");
    println!("COMMITTED");
}

/// The child that only recovers: open the maildrop (recovery runs under the locks) and close.
#[test]
#[ignore = "helper process for the crash tests; run by them"]
fn child_recover() {
    let path = PathBuf::from(std::env::var("CRASH_MBOX").expect("CRASH_MBOX"));
    drop(Mailbox::open(&path, &options()).expect("open"));
    println!("RECOVERED");
}

struct Case {
    messages: Vec<Vec<u8>>,
    deleted: Vec<usize>,
    /// Delivered during the session, before the commit.
    appended: Vec<u8>,
    /// Delivered after the crash and before recovery, by an MDA that took over the dead
    /// session's stale locks.
    after_crash: Vec<u8>,
}

impl Case {
    fn old_content(&self) -> Vec<u8> {
        [mbox(&self.messages), self.appended.clone()].concat()
    }
    fn crashed(&self, content: Vec<u8>) -> Vec<u8> {
        [content, self.after_crash.clone()].concat()
    }
    fn new_content(&self) -> Vec<u8> {
        let kept: Vec<Vec<u8>> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted.contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        [mbox(&kept), self.appended.clone()].concat()
    }
    fn env(&self, path: &Path) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CRASH_MBOX", path.display().to_string()),
            (
                "CRASH_DELETE",
                self.deleted
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        if !self.appended.is_empty() {
            env.push((
                "CRASH_APPEND",
                String::from_utf8(self.appended.clone()).expect("utf8"),
            ));
        }
        env
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Old,
    New,
}

/// Open (and so recover) the maildrop in this process and check the invariant.
fn check_after_crash(path: &Path, case: &Case, what: &str) -> Outcome {
    let mb = Mailbox::open(path, &options())
        .unwrap_or_else(|e| panic!("{what}: reopening after the crash failed: {e}"));
    let n = mb.messages().len();
    drop(mb);
    let now = fs::read(path).expect("read");
    let extra = usize::from(!case.appended.is_empty()) + usize::from(!case.after_crash.is_empty());
    assert!(!journal_path(path).exists(), "{what}: journal left behind");
    assert!(
        !DotLock::path_for(path).exists(),
        "{what}: dot-lock left behind"
    );
    if now == case.crashed(case.old_content()) {
        assert_eq!(n, case.messages.len() + extra);
        Outcome::Old
    } else if now == case.crashed(case.new_content()) {
        assert_eq!(n, case.messages.len() - case.deleted.len() + extra);
        Outcome::New
    } else {
        let tags: Vec<Option<String>> = split(&now).iter().map(|m| tag_of(m)).collect();
        panic!(
            "{what}: the mailbox is neither the old nor the new content ({} bytes; old {}, new \
             {}); messages now: {tags:?}",
            now.len(),
            case.old_content().len(),
            case.new_content().len()
        );
    }
}

/// Kill the commit at every step, one run per step, until a run gets through.
fn every_step(case: &Case, chunk: usize) -> (u64, u64, u64) {
    every_step_with(case, chunk, &[])
}

fn every_step_with(case: &Case, chunk: usize, extra_env: &[(&str, String)]) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let (mut olds, mut news) = (0, 0);
    for step in 1u64.. {
        write_file(&path, &mbox(&case.messages));
        let mut env = case.env(&path);
        env.push(("MBOXPOPD_FAULT_AT", step.to_string()));
        env.push(("MBOXPOPD_FAULT_CHUNK", chunk.to_string()));
        env.extend_from_slice(extra_env);
        let out = spawn_child("child_commit", &env)
            .wait_with_output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert!(stdout.contains("COMMITTED"), "child output: {stdout}");
            assert_eq!(fs::read(&path).expect("read"), case.new_content());
            return (step - 1, olds, news);
        }
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "step {step}: the child failed without the injected fault: {stderr}"
        );
        assert!(stderr.contains("fault injected"), "step {step}: {stderr}");
        if !case.after_crash.is_empty() {
            fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open")
                .write_all(&case.after_crash)
                .expect("deliver after the crash");
        }
        match check_after_crash(&path, case, &format!("fault at step {step}")) {
            Outcome::Old => olds += 1,
            Outcome::New => news += 1,
        }
    }
    unreachable!()
}

fn messages(n: usize, lines: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| message(&format!("m{i}"), lines)).collect()
}

#[test]
fn crash_at_every_step_deleting_from_the_middle() {
    let case = Case {
        messages: messages(12, 20),
        deleted: vec![1, 4, 5, 10],
        appended: Vec::new(),
        after_crash: Vec::new(),
    };
    let (steps, olds, news) = every_step(&case, 512);
    eprintln!("{steps} crash points: {olds} rolled back to old, {news} completed");
    assert!(steps > 20 && olds > 0 && news > 0);
}

#[test]
fn crash_at_every_step_with_mail_appended_during_the_session() {
    let case = Case {
        messages: messages(8, 15),
        deleted: vec![0, 7],
        appended: message("appended", 9),
        after_crash: Vec::new(),
    };
    let (steps, olds, news) = every_step(&case, 256);
    eprintln!("{steps} crash points: {olds} old, {news} new");
    assert!(olds > 0 && news > 0);
}

#[test]
fn crash_at_every_step_deleting_only_the_last_message() {
    let case = Case {
        messages: messages(6, 10),
        deleted: vec![5],
        appended: Vec::new(),
        after_crash: Vec::new(),
    };
    let (steps, olds, news) = every_step(&case, 128);
    // Nothing is overwritten, so nothing is journalled: the truncate and its fsync.
    assert_eq!((steps, olds, news), (2, 1, 1));
}

/// Where copy_file_range(2) cannot be used, the journal and the roll-back copy through user
/// space: the same promise at each of those steps.
#[test]
fn crash_at_every_step_with_the_user_space_copy() {
    let case = Case {
        messages: messages(8, 15),
        deleted: vec![1, 5],
        appended: message("during", 3),
        after_crash: message("after-crash", 4),
    };
    let no_kernel_copy = [("MBOXPOPD_FAULT_NO_COPY_RANGE", String::from("1"))];
    let (steps, olds, news) = every_step_with(&case, 256, &no_kernel_copy);
    eprintln!("{steps} crash points: {olds} old, {news} new");
    assert!(olds > 0 && news > 0);
}

/// The step number of the first fault point called `name` in an undisturbed, logged commit.
fn step_named(case: &Case, path: &Path, chunk: usize, name: &str) -> u64 {
    write_file(path, &mbox(&case.messages));
    let mut env = case.env(path);
    env.push(("MBOXPOPD_FAULT_LOG", String::from("1")));
    env.push(("MBOXPOPD_FAULT_CHUNK", chunk.to_string()));
    let out = spawn_child("child_commit", &env)
        .wait_with_output()
        .expect("child");
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .find_map(|l| {
            let (n, step) = l.strip_prefix("fault step ")?.split_once(": ")?;
            (step == name).then(|| n.parse().expect("number"))
        })
        .unwrap_or_else(|| panic!("no step {name:?} in {log}"))
}

/// Crash the commit at `step` (then let `case.after_crash` be delivered), recover, and return
/// what recovery made of it.
fn crash_at(case: &Case, path: &Path, chunk: usize, step: u64) -> Outcome {
    write_file(path, &mbox(&case.messages));
    let mut env = case.env(path);
    env.push(("MBOXPOPD_FAULT_AT", step.to_string()));
    env.push(("MBOXPOPD_FAULT_CHUNK", chunk.to_string()));
    let out = spawn_child("child_commit", &env)
        .wait_with_output()
        .expect("child");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "step {step}");
    if !case.after_crash.is_empty() {
        fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open")
            .write_all(&case.after_crash)
            .expect("deliver after the crash");
    }
    check_after_crash(path, case, &format!("fault at step {step}"))
}

/// The journal body is copied and fsynced before its header is written: a crash at the body's
/// fsync or while the header is written (half of it, over zeros) leaves a journal recovery
/// discards, and the mailbox was not touched.
#[test]
fn crash_after_the_journal_body_before_its_header_keeps_the_old_mailbox() {
    let case = Case {
        messages: messages(9, 20),
        deleted: vec![3, 4],
        appended: Vec::new(),
        after_crash: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let body_synced = step_named(&case, &path, 300, "journal body fsync");
    assert_eq!(step_named(&case, &path, 300, "write"), body_synced + 1);
    for step in [body_synced, body_synced + 1] {
        assert_eq!(crash_at(&case, &path, 300, step), Outcome::Old);
    }
}

/// Between the shift (durable) and the truncate, then mail delivered by an MDA that took over
/// the dead session's locks: rolled back, the new mail kept after the old content. Just after
/// the truncate: complete, the new mail after the new content.
#[test]
fn crash_between_shift_and_truncate_then_mail_arrives() {
    let case = Case {
        messages: messages(10, 16),
        deleted: vec![0, 6],
        appended: message("during", 5),
        after_crash: message("after-crash", 30),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let truncate = step_named(&case, &path, 256, "truncate");
    assert_eq!(crash_at(&case, &path, 256, truncate), Outcome::Old);
    assert_eq!(crash_at(&case, &path, 256, truncate + 1), Outcome::New);
}

/// SIGKILL at random instants of the commit of a large mailbox.
#[test]
fn sigkill_at_random_instants_over_a_large_mailbox() {
    const TRIALS: usize = 20;
    let case = Case {
        // About 8 MB: 1000 messages of ~8 KB.
        messages: messages(1000, 180),
        deleted: vec![0, 1, 500, 999],
        appended: Vec::new(),
        after_crash: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let old = case.old_content();

    // One undisturbed run tells how long a commit takes here.
    write_file(&path, &old);
    let run = |kill_after: Option<Duration>| {
        let mut child = spawn_child("child_commit", &case.env(&path));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        loop {
            match lines.next() {
                // libtest may print "test child_commit ... " on the same line first.
                Some(Ok(l)) if l.ends_with("INDEXED") => break,
                Some(Ok(_)) => {}
                other => {
                    let _ = child.kill();
                    let out = child.wait_with_output().expect("wait");
                    panic!(
                        "child ended before indexing: {other:?}: {:?} {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    )
                }
            }
        }
        let t = Instant::now();
        if let Some(d) = kill_after {
            std::thread::sleep(d);
            let _ = child.kill();
        }
        let status = child.wait().expect("wait");
        (t.elapsed(), status)
    };
    let (full, status) = run(None);
    assert!(status.success());
    assert_eq!(fs::read(&path).expect("read"), case.new_content());

    let mut rng = Rng::from_time();
    let (mut olds, mut news) = (0, 0);
    for trial in 0..TRIALS {
        write_file(&path, &old);
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 6 / 5));
        let (_, status) = run(Some(delay));
        match check_after_crash(
            &path,
            &case,
            &format!("trial {trial}, SIGKILL after {delay:?} (status {status:?})"),
        ) {
            Outcome::Old => olds += 1,
            Outcome::New => news += 1,
        }
    }
    eprintln!("commit takes {full:?}; {TRIALS} random kills: {olds} old, {news} new");
}

/// A crash in the middle of the recovery of a crashed commit is recovered by the next one.
#[test]
fn crash_during_recovery_is_recovered_again() {
    let case = Case {
        messages: messages(10, 20),
        deleted: vec![2, 3, 8],
        appended: Vec::new(),
        after_crash: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    // Find the step at which the journal is durable, from a logged undisturbed run, and crash
    // the commit a few writes into the shift after it.
    write_file(&path, &mbox(&case.messages));
    let mut env = case.env(&path);
    env.push(("MBOXPOPD_FAULT_LOG", String::from("1")));
    env.push(("MBOXPOPD_FAULT_CHUNK", String::from("256")));
    let out = spawn_child("child_commit", &env)
        .wait_with_output()
        .expect("child");
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let journal_synced: u64 = log
        .lines()
        .find_map(|l| {
            l.strip_prefix("fault step ")?
                .strip_suffix(": journal fsync")
        })
        .expect("journal fsync step")
        .parse()
        .expect("number");
    let crash_commit = |step: u64| {
        write_file(&path, &mbox(&case.messages));
        let mut env = case.env(&path);
        env.push(("MBOXPOPD_FAULT_AT", step.to_string()));
        env.push(("MBOXPOPD_FAULT_CHUNK", String::from("256")));
        let out = spawn_child("child_commit", &env)
            .wait_with_output()
            .expect("child");
        assert_eq!(out.status.signal(), Some(libc::SIGABRT));
        assert!(journal_path(&path).exists());
    };
    for step in 1u64.. {
        crash_commit(journal_synced + 5);
        let env = vec![
            ("CRASH_MBOX", path.display().to_string()),
            ("MBOXPOPD_FAULT_AT", step.to_string()),
            ("MBOXPOPD_FAULT_CHUNK", String::from("256")),
        ];
        let out = spawn_child("child_recover", &env)
            .wait_with_output()
            .expect("child");
        let done = out.status.success();
        if !done {
            assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out);
        }
        let outcome = check_after_crash(&path, &case, &format!("recovery crashed at step {step}"));
        assert_eq!(
            outcome,
            Outcome::Old,
            "an interrupted shift is always rolled back"
        );
        if done {
            assert!(step > 5, "recovery had too few crash points: {step}");
            break;
        }
    }
}

#[test]
fn crash_at_every_step_then_an_mda_delivers_before_recovery() {
    let case = Case {
        messages: messages(8, 15),
        deleted: vec![1, 2, 6],
        appended: message("during", 4),
        after_crash: message("after-crash", 7),
    };
    let (steps, olds, news) = every_step(&case, 256);
    eprintln!("{steps} crash points: {olds} old, {news} new");
    assert!(olds > 0 && news > 0);
}

/// The disk after a power cut, modelled from a recorded commit: per file, its content as of
/// its last fsync plus some of the writes made since; per directory, its entries as of its last
/// fsync plus some of the creations and unlinks made since.
mod power {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use mboxpopd::storage::fault::Op;

    #[derive(Debug, Clone)]
    enum FileOp {
        Write(u64, Vec<u8>),
        SetLen(u64),
    }

    #[derive(Debug, Clone)]
    enum DirOp {
        Create(PathBuf, u64),
        Unlink(PathBuf),
    }

    #[derive(Debug, Clone, Default)]
    struct FileState {
        durable: Vec<u8>,
        pending: Vec<FileOp>,
    }

    /// What the disk may hold after the cut: the content of each name in the directory.
    pub type State = BTreeMap<PathBuf, Vec<u8>>;

    #[derive(Debug, Clone, Default)]
    pub struct Disk {
        files: BTreeMap<u64, FileState>,
        entries: BTreeMap<PathBuf, u64>,
        dir_pending: Vec<DirOp>,
    }

    /// Which of `n` pending operations reach the disk: none, all, each one alone, each prefix
    /// (in-order write-back), all but each one. `zeroed`: the write lands as zeros (its size
    /// change was durable, its data not).
    fn choices(n: usize) -> BTreeSet<(Vec<usize>, Option<usize>)> {
        let mut c = BTreeSet::new();
        c.insert((Vec::new(), None));
        c.insert(((0..n).collect(), None));
        for i in 0..n {
            c.insert((vec![i], None));
            c.insert(((0..i).collect(), None));
            c.insert(((0..n).filter(|&j| j != i).collect(), None));
            c.insert(((0..n).collect(), Some(i)));
        }
        c
    }

    fn apply(content: &mut Vec<u8>, op: &FileOp, zero: bool) {
        match op {
            FileOp::Write(off, bytes) => {
                let (off, end) = (*off as usize, *off as usize + bytes.len());
                if content.len() < end {
                    content.resize(end, 0);
                }
                if zero {
                    content[off..end].fill(0);
                } else {
                    content[off..end].copy_from_slice(bytes);
                }
            }
            FileOp::SetLen(len) => content.resize(*len as usize, 0),
        }
    }

    impl Disk {
        /// A disk where `path` (inode `ino`) durably holds `content`.
        pub fn new(path: PathBuf, ino: u64, content: Vec<u8>) -> Disk {
            let mut d = Disk::default();
            d.files.insert(
                ino,
                FileState {
                    durable: content,
                    pending: Vec::new(),
                },
            );
            d.entries.insert(path, ino);
            d
        }

        /// The operation completed.
        pub fn apply(&mut self, op: &Op) {
            match op {
                Op::Create { path, ino } => {
                    self.files.insert(*ino, FileState::default());
                    self.dir_pending.push(DirOp::Create(path.clone(), *ino));
                }
                Op::Write { ino, offset, bytes } => self
                    .file(*ino)
                    .pending
                    .push(FileOp::Write(*offset, bytes.clone())),
                Op::SetLen { ino, len } => self.file(*ino).pending.push(FileOp::SetLen(*len)),
                Op::Fsync { ino } => {
                    let f = self.file(*ino);
                    for op in std::mem::take(&mut f.pending) {
                        apply(&mut f.durable, &op, false);
                    }
                }
                Op::Unlink { path } => self.dir_pending.push(DirOp::Unlink(path.clone())),
                Op::DirFsync { .. } => {
                    for op in std::mem::take(&mut self.dir_pending) {
                        self.apply_dir(&op);
                    }
                }
            }
        }

        fn file(&mut self, ino: u64) -> &mut FileState {
            self.files.get_mut(&ino).expect("a recorded file")
        }

        fn apply_dir(&mut self, op: &DirOp) {
            match op {
                DirOp::Create(p, ino) => {
                    self.entries.insert(p.clone(), *ino);
                }
                DirOp::Unlink(p) => {
                    self.entries.remove(p);
                }
            }
        }

        /// Every state the disk may be in if power fails now.
        pub fn after_power_cut(&self) -> BTreeSet<State> {
            // Per inode: the contents it may have.
            let mut contents: BTreeMap<u64, BTreeSet<Vec<u8>>> = BTreeMap::new();
            for (ino, f) in &self.files {
                let mut set = BTreeSet::new();
                for (chosen, zeroed) in choices(f.pending.len()) {
                    let mut c = f.durable.clone();
                    for &i in &chosen {
                        apply(&mut c, &f.pending[i], zeroed == Some(i));
                    }
                    set.insert(c);
                }
                contents.insert(*ino, set);
            }
            // Directory operations reach the disk in order (a journalling file system commits
            // them as a sequence): each prefix.
            let mut out = BTreeSet::new();
            for k in 0..=self.dir_pending.len() {
                let mut d = self.clone();
                for op in &self.dir_pending[..k] {
                    d.apply_dir(op);
                }
                let mut states = vec![State::new()];
                for (path, ino) in &d.entries {
                    states = states
                        .into_iter()
                        .flat_map(|s| {
                            contents[ino].iter().map(move |c| {
                                let mut s = s.clone();
                                s.insert(path.clone(), c.clone());
                                s
                            })
                        })
                        .collect();
                }
                out.extend(states);
            }
            out
        }
    }
}

/// Power fails at every step of a commit: whatever was not fsynced may or may not be on disk
/// (each file: its last fsynced content plus none, all, any single one, any prefix of the
/// later writes, or all but one, or one of them as zeros; the journal's directory entry only
/// after its directory fsync). Recovery on each such disk gives exactly the old or the new
/// mailbox, plus the mail appended during the session.
#[test]
fn power_cut_at_every_step_recovers_old_or_new() {
    use mboxpopd::storage::fault;
    use std::os::unix::fs::{FileExt, MetadataExt};
    let case = Case {
        messages: messages(7, 12),
        deleted: vec![0, 3, 6],
        appended: message("appended", 5),
        after_crash: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    write_file(&path, &mbox(&case.messages));
    let ino = fs::metadata(&path).expect("stat").ino();
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("append")
        .write_all(&case.appended)
        .expect("deliver");
    let (committed, ops) = fault::record(200, || mb.commit(&case.deleted));
    committed.expect("commit");
    drop(mb);
    assert_eq!(fs::read(&path).expect("read"), case.new_content());
    let fsyncs = ops
        .iter()
        .filter(|o| matches!(o, fault::Op::Fsync { .. }))
        .count();
    let dir_fsyncs = ops
        .iter()
        .filter(|o| matches!(o, fault::Op::DirFsync { .. }))
        .count();
    assert!(
        ops.len() > 20 && fsyncs == 4 && dir_fsyncs == 2,
        "recorded {} operations: {:?}",
        ops.len(),
        ops.iter().map(short).collect::<Vec<_>>()
    );

    let started = Instant::now();
    let mut disk = power::Disk::new(path.clone(), ino, case.old_content());
    let mut seen = std::collections::BTreeSet::new();
    let (mut olds, mut news) = (0, 0);
    for step in 0..=ops.len() {
        if step > 0 {
            disk.apply(&ops[step - 1]);
        }
        for state in disk.after_power_cut() {
            if !seen.insert(state.clone()) {
                continue;
            }
            // Put the state on disk: the mailbox keeps its inode (the journal names it).
            let mailbox = state.get(&path).expect("the mailbox is never unlinked");
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_len(0).expect("truncate");
            f.write_all_at(mailbox, 0).expect("write");
            drop(f);
            let jp = journal_path(&path);
            match state.get(&jp) {
                Some(j) => fs::write(&jp, j).expect("journal"),
                None => {
                    let _ = fs::remove_file(&jp);
                }
            }
            let what = format!(
                "power cut after {step} of {} operations (last: {:?}), journal {}",
                ops.len(),
                step.checked_sub(1).map(|i| short(&ops[i])),
                if state.contains_key(&jp) {
                    "present"
                } else {
                    "absent"
                }
            );
            match check_after_crash(&path, &case, &what) {
                Outcome::Old => olds += 1,
                Outcome::New => news += 1,
            }
        }
    }
    eprintln!(
        "{} operations, {} distinct disk states after a power cut: {olds} old, {news} new, in {:?}",
        ops.len(),
        seen.len(),
        started.elapsed()
    );
    assert!(olds > 0 && news > 0);
}

fn short(op: &mboxpopd::storage::fault::Op) -> String {
    use mboxpopd::storage::fault::Op;
    match op {
        Op::Write { ino, offset, bytes } => {
            format!("write {} bytes at {offset} of inode {ino}", bytes.len())
        }
        other => format!("{other:?}"),
    }
}

/// A journal left by the previous version (format 1: header, saved bytes, SHA-256 of both; its
/// tail digest SHA-256), encoded here as that version wrote it.
fn v1_journal(mailbox: &Path, start: u64, new_len: u64, old_len: u64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(mailbox).expect("stat");
    let old = fs::read(mailbox).expect("read");
    let mut v = b"MBOXPOPD-JRNL-1\n".to_vec();
    for n in [meta.dev(), meta.ino(), start, new_len, old_len] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    let tail: [u8; 32] = Sha256::digest(&old[new_len as usize..old_len as usize]).into();
    v.extend_from_slice(&tail);
    v.extend_from_slice(&old[start as usize..new_len as usize]);
    let sum: [u8; 32] = Sha256::digest(&v).into();
    v.extend_from_slice(&sum);
    v
}

/// The previous version crashed mid-shift, or after its truncate, and this one opens the
/// mailbox (then mail arrives): the old journal format is still rolled back or finished.
#[test]
fn a_journal_of_the_previous_format_is_recovered() {
    let case = Case {
        messages: messages(6, 12),
        deleted: vec![1, 4],
        appended: Vec::new(),
        after_crash: message("after-crash", 3),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("user");
    let old = case.old_content();
    let new = case.new_content();
    let start = mbox(&case.messages[..1]).len() as u64;
    let (new_len, old_len) = (new.len() as u64, old.len() as u64);

    // Crashed half-way through the shift.
    write_file(&path, &old);
    let j = v1_journal(&path, start, new_len, old_len);
    fs::write(journal_path(&path), &j).expect("journal");
    let half = (start + new_len) as usize / 2;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, &new[start as usize..half], start)
        .expect("partial shift");
    f.write_all_at_end(&case.after_crash);
    assert_eq!(
        check_after_crash(&path, &case, "format 1, mid-shift"),
        Outcome::Old
    );

    // Crashed after the truncate, before the journal was removed.
    write_file(&path, &old);
    let j = v1_journal(&path, start, new_len, old_len);
    fs::write(journal_path(&path), &j).expect("journal");
    write_file(&path, &new);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.write_all_at_end(&case.after_crash);
    assert_eq!(
        check_after_crash(&path, &case, "format 1, truncated"),
        Outcome::New
    );
}

trait AppendAtEnd {
    fn write_all_at_end(&self, bytes: &[u8]);
}

impl AppendAtEnd for fs::File {
    fn write_all_at_end(&self, bytes: &[u8]) {
        let len = self.metadata().expect("stat").len();
        std::os::unix::fs::FileExt::write_all_at(self, bytes, len).expect("append");
    }
}
