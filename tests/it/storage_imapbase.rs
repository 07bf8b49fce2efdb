//! Migrated UIDLs survive deleting the first message: a commit that deletes the message holding
//! the mailbox's `X-IMAPbase:` moves that field to the new first message, so the `imap` and
//! `dovecot-uid` UIDLs of the remaining messages do not change.
//!
//! On the mailbox Dovecot 2.3.19 left (`tests/fixtures/uidl-headers.dovecot-rewritten.mbox`,
//! `X-IMAPbase` in message 1 and `X-UID` in each): the real binary deleting message 1 session
//! after session, crashed at every commit step, and a property test of the storage layer over
//! random mailboxes and delete sets.

use crate::common;
use crate::common::storage as storage_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};

use common::{binary, Fixture};
use mboxpopd::config::UidlFormat;
use mboxpopd::protocol::ports::{Maildrop, MessageInfo};
use mboxpopd::storage::mailbox::{Mailbox, MailboxOptions};
use storage_support as ss;

const BASE: &[u8] = b"X-IMAPbase: 1795673851 0000000014\n";

fn fixture_mbox() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/uidl-headers.dovecot-rewritten.mbox");
    std::fs::read(p).expect("fixture")
}

fn dovecot_dele1_mbox() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/uidl-headers.dovecot-dele1.mbox");
    std::fs::read(p).expect("fixture")
}

/// The field names of the header section of `message` (after its From_ line).
fn field_names(message: &[u8]) -> Vec<String> {
    message
        .split_inclusive(|&b| b == b'\n')
        .skip(1)
        .take_while(|l| *l != b"\n" && *l != b"\r\n")
        .filter(|l| !l.starts_with(b" ") && !l.starts_with(b"\t"))
        .filter_map(|l| l.iter().position(|&b| b == b':').map(|c| &l[..c]))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn dovecot_uidls() -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/uidl-headers.dovecot-rewritten.uidl");
    std::fs::read_to_string(p)
        .expect("fixture")
        .lines()
        .map(|l| l.split(' ').nth(1).expect("uidl").to_string())
        .collect()
}

/// The messages of a spool, From_ line to separator (a From_ line counts after an empty line,
/// LF or CRLF).
fn messages_of(spool: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut prev_empty = true;
    let mut pos = 0;
    for line in spool.split_inclusive(|&b| b == b'\n') {
        if prev_empty && line.starts_with(b"From ") {
            starts.push(pos);
        }
        prev_empty = line == b"\n" || line == b"\r\n";
        pos += line.len();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| spool[s..starts.get(i + 1).copied().unwrap_or(spool.len())].to_vec())
        .collect()
}

fn is_imap_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = line[..colon].trim_ascii_end();
    name.eq_ignore_ascii_case(b"X-IMAPbase") || name.eq_ignore_ascii_case(b"X-IMAP")
}

/// Whether a header line starts one of the fields Dovecot and c-client write after
/// `X-IMAPbase`.
fn is_status_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = line[..colon].trim_ascii_end();
    ["X-UID", "Status", "X-Status", "X-Keywords"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// The model of the carry-over: `field` (LF-ended lines) goes before the first `X-UID:`,
/// `Status:`, `X-Status:` or `X-Keywords:` line of `message`'s header section (where real
/// Dovecot put it), else before the empty line that ends the section, ended like the line
/// before it; nothing is added when the message already has such a field.
fn with_field(message: &[u8], field: &[u8]) -> Vec<u8> {
    let lines: Vec<&[u8]> = message.split_inclusive(|&b| b == b'\n').collect();
    let blank = lines
        .iter()
        .position(|l| *l == b"\n" || *l == b"\r\n")
        .expect("a header section");
    if lines[1..blank].iter().any(|l| is_imap_field(l)) {
        return message.to_vec();
    }
    let at = (1..blank)
        .find(|&i| is_status_field(lines[i]))
        .unwrap_or(blank);
    let crlf = lines[at - 1].ends_with(b"\r\n");
    let mut out: Vec<u8> = lines[..at].concat();
    for l in field.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(l.strip_suffix(b"\n").unwrap_or(l));
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out.extend(lines[at..].concat());
    out
}

/// Whether the header section of `message` has an `X-IMAPbase:`/`X-IMAP:` field.
fn has_field(message: &[u8]) -> bool {
    message
        .split_inclusive(|&b| b == b'\n')
        .skip(1)
        .take_while(|l| *l != b"\n" && *l != b"\r\n")
        .any(is_imap_field)
}

/// `message` without its `X-IMAPbase:`/`X-IMAP:` lines (folded lines are not used here).
fn strip_field(message: &[u8]) -> Vec<u8> {
    let mut in_header = true;
    let mut out = Vec::new();
    for (k, l) in message.split_inclusive(|&b| b == b'\n').enumerate() {
        if l == b"\n" || l == b"\r\n" {
            in_header = false;
        }
        if !(k > 0 && in_header && is_imap_field(l)) {
            out.extend_from_slice(l);
        }
    }
    out
}

fn spawn(conf: &Path, env: &[(&str, String)]) -> Child {
    common::spawn_inetd(conf, env)
}

/// Log in and run `commands` (pipelined) then QUIT; returns the status, the replies and the
/// log. With `deliver`, the session first answers a STAT (so the mailbox is indexed), then
/// `deliver` is appended to the spool, then `commands` run.
fn session(
    conf: &Path,
    mailbox: &Path,
    deliver: Option<&[u8]>,
    commands: &str,
    env: &[(&str, String)],
) -> (ExitStatus, String, String) {
    let mut child = spawn(conf, env);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    if let Some(mail) = deliver {
        stdin
            .write_all(b"USER alice\r\nPASS secret\r\nSTAT\r\n")
            .expect("send");
        for _ in 0..4 {
            let mut l = String::new();
            stdout.read_line(&mut l).expect("reply");
            assert!(l.starts_with("+OK"), "{l}");
            out.push_str(&l);
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(mailbox)
            .expect("open spool")
            .write_all(mail)
            .expect("deliver");
        stdin
            .write_all(format!("{commands}QUIT\r\n").as_bytes())
            .expect("send");
    } else {
        stdin
            .write_all(format!("USER alice\r\nPASS secret\r\n{commands}QUIT\r\n").as_bytes())
            .expect("send");
    }
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).ok();
    out.push_str(&rest);
    let status = child.wait().expect("wait");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut log).ok();
    (status, out, log)
}

/// UIDL then LIST of a fresh session, parsed reply by reply.
fn uidl_and_list(conf: &Path, mailbox: &Path) -> (Vec<String>, Vec<String>) {
    let (status, out, log) = session(conf, mailbox, None, "UIDL\r\nLIST\r\n", &[]);
    assert!(status.success(), "{out}\n{log}");
    let mut lines = out.split("\r\n").peekable();
    let mut lists = Vec::new();
    while let Some(l) = lines.next() {
        if l.starts_with("+OK") && lines.peek().is_some_and(|n| n.starts_with("1 ")) {
            let mut v = Vec::new();
            for item in lines.by_ref() {
                if item == "." {
                    break;
                }
                v.push(item.split(' ').nth(1).expect("value").to_string());
            }
            lists.push(v);
        }
    }
    assert_eq!(lists.len(), 2, "{out}");
    (lists[0].clone(), lists[1].clone())
}

fn fixture_with(format: &str) -> (Fixture, PathBuf) {
    let mut f = Fixture::new();
    f.config(&format!("uidl_format = {format}"));
    // A killed session leaves its dot-lock; its pid is gone, so the next one takes it over.
    f.config("dotlock_stale_age = 0");
    f.config("lock_timeout = 10s");
    let conf = f.write_config("127.0.0.1:1");
    (f, conf)
}

#[test]
fn uidls_survive_deleting_message_1_session_after_session() {
    let original = messages_of(&fixture_mbox());
    assert_eq!(original.len(), 14);
    for format in ["dovecot-uid", "imap"] {
        let (f, conf) = fixture_with(format);
        let mailbox = f.mailbox("alice");
        f.write_mbox("alice", &fixture_mbox());
        let (mut uidls, mut sizes) = uidl_and_list(&conf, &mailbox);
        if format == "dovecot-uid" {
            assert_eq!(uidls, dovecot_uidls());
        } else {
            assert!(uidls.iter().all(|u| u.starts_with("6b07cefb")), "{uidls:?}");
        }
        for gone in 1..original.len() {
            let (status, out, log) = session(&conf, &mailbox, None, "DELE 1\r\n", &[]);
            assert!(status.success(), "{out}\n{log}");
            let (now, now_sizes) = uidl_and_list(&conf, &mailbox);
            uidls.remove(0);
            sizes.remove(0);
            assert_eq!(now, uidls, "{format}: after deleting {gone} messages");
            assert_eq!(now_sizes, sizes, "{format}: sizes after {gone}");
            // Byte for byte: the first message gained the field, nothing else changed.
            let mut want = original[gone..].to_vec();
            want[0] = with_field(&want[0], BASE);
            assert_eq!(
                common::show(&f.read_mbox("alice")),
                common::show(&want.concat()),
                "{format}: after deleting {gone}"
            );
        }
        assert_eq!(uidls.len(), 1);
        assert!(f.spool_leftovers().is_empty(), "{:?}", f.spool_leftovers());
    }
}

/// The field lands where real Dovecot 2.3.19 put it when it deleted message 1 of the same
/// mailbox (`Status`, which Dovecot also adds to every message, aside).
#[test]
fn the_field_lands_where_dovecot_puts_it() {
    let (f, conf) = fixture_with("dovecot-uid");
    f.write_mbox("alice", &fixture_mbox());
    let (status, out, log) = session(&conf, &f.mailbox("alice"), None, "DELE 1\r\n", &[]);
    assert!(status.success(), "{out}\n{log}");
    let ours = field_names(&messages_of(&f.read_mbox("alice"))[0]);
    let dovecot: Vec<String> = field_names(&messages_of(&dovecot_dele1_mbox())[0])
        .into_iter()
        .filter(|n| n != "Status")
        .collect();
    assert!(dovecot.contains(&String::from("X-IMAPbase")));
    assert_eq!(ours, dovecot);
}

use common::DOVECOT_POP3 as DOVECOT;

/// Dovecot's UIDLs (default `pop3_uidl_format`) for a copy of `mbox`, when Dovecot's pop3, root
/// and setpriv are there (as in tests/diff_corpus.rs); `None` otherwise.
fn dovecot_uidl_of(mbox: &[u8]) -> Option<Vec<String>> {
    if !common::dovecot_available() {
        return None;
    }
    let (_dir, mut child) = common::spawn_dovecot_pop3(mbox, "");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"UIDL\r\nQUIT\r\n")
        .expect("send");
    let out = child.wait_with_output().expect("dovecot");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let uidls: Vec<String> = text
        .split("\r\n")
        .filter(|l| l.split(' ').count() == 2 && l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split(' ').nth(1).expect("uidl").to_string())
        .collect();
    Some(uidls)
}

/// Later Dovecot imports stay consistent: real Dovecot reads the mailbox mboxpopd left after
/// each DELE 1 with the same UIDLs as mboxpopd's `dovecot-uid`.
#[test]
fn dovecot_reads_the_same_uidls_after_each_dele_1() {
    if dovecot_uidl_of(b"").is_none() {
        eprintln!("SKIPPED: needs {DOVECOT}, root and setpriv");
        return;
    }
    let (f, conf) = fixture_with("dovecot-uid");
    let mailbox = f.mailbox("alice");
    f.write_mbox("alice", &fixture_mbox());
    for gone in 1..messages_of(&fixture_mbox()).len() {
        let (status, out, log) = session(&conf, &mailbox, None, "DELE 1\r\n", &[]);
        assert!(status.success(), "{out}\n{log}");
        let (ours, _) = uidl_and_list(&conf, &mailbox);
        let theirs = dovecot_uidl_of(&f.read_mbox("alice")).expect("dovecot");
        assert_eq!(theirs, ours, "after deleting {gone}");
    }
}

/// Whether the binary under test has the crash points (see tests/storage_daemon.rs).
fn has_fault_hooks() -> bool {
    std::fs::read(binary())
        .map(|b| b.windows(17).any(|w| w == b"MBOXPOPD_FAULT_AT"))
        .unwrap_or(false)
}

/// Crash the commit of `commands` at every step, each time on a fresh copy of `old`; after
/// each crash a new session must see the old or the new mailbox (`new`), its UIDLs intact.
fn crash_at_every_step(
    old: &[u8],
    deliver: Option<&[u8]>,
    commands: &str,
    new: &[u8],
    chunk: usize,
) -> (u64, u64) {
    let (f, conf) = fixture_with("dovecot-uid");
    let mailbox = f.mailbox("alice");
    let old_full = [old, deliver.unwrap_or_default()].concat();
    f.write_mbox("alice", &old_full);
    let (old_uidls, _) = uidl_and_list(&conf, &mailbox);
    f.write_mbox("alice", new);
    let (new_uidls, _) = uidl_and_list(&conf, &mailbox);
    let (mut olds, mut news) = (0, 0);
    for step in 1u64.. {
        f.write_mbox("alice", old);
        let env = [
            ("MBOXPOPD_FAULT_AT", step.to_string()),
            ("MBOXPOPD_FAULT_CHUNK", chunk.to_string()),
        ];
        let (status, out, log) = session(&conf, &mailbox, deliver, commands, &env);
        if !log.contains("fault injected") {
            assert!(status.success(), "step {step}: {out}\n{log}");
            assert_eq!(common::show(&f.read_mbox("alice")), common::show(new));
            assert!(step > 10, "too few crash points: {}", step - 1);
            return (olds, news);
        }
        assert_eq!(status.signal(), Some(libc::SIGABRT), "step {step}: {log}");
        // The next session recovers.
        let (uidls, _) = uidl_and_list(&conf, &mailbox);
        let now = f.read_mbox("alice");
        if now == old_full {
            assert_eq!(uidls, old_uidls, "step {step}");
            olds += 1;
        } else {
            assert_eq!(
                common::show(&now),
                common::show(new),
                "step {step}: neither old nor new"
            );
            assert_eq!(uidls, new_uidls, "step {step}");
            news += 1;
        }
        assert!(
            f.spool_leftovers().is_empty(),
            "step {step}: {:?}",
            f.spool_leftovers()
        );
    }
    unreachable!()
}

#[test]
fn crash_at_every_step_of_deleting_message_1() {
    if !has_fault_hooks() {
        eprintln!("skipped: the binary under test has no fault-injection hooks");
        return;
    }
    let old = fixture_mbox();
    let mut kept = messages_of(&old)[1..].to_vec();
    kept[0] = with_field(&kept[0], BASE);
    let (olds, news) = crash_at_every_step(&old, None, "DELE 1\r\n", &kept.concat(), 512);
    eprintln!("{olds} crashes rolled back, {news} completed");
    assert!(olds > 0 && news > 0);
}

#[test]
fn crash_at_every_step_of_deleting_all_with_mail_delivered_meanwhile() {
    if !has_fault_hooks() {
        eprintln!("skipped: the binary under test has no fault-injection hooks");
        return;
    }
    let old = fixture_mbox();
    let n = messages_of(&old).len();
    let delivered = ss::message("delivered", 30);
    let dele: String = (1..=n).map(|i| format!("DELE {i}\r\n")).collect();
    let new = with_field(&delivered, BASE);
    let (olds, news) = crash_at_every_step(&old, Some(&delivered), &dele, &new, 1024);
    eprintln!("{olds} crashes rolled back, {news} completed");
    assert!(olds > 0 && news > 0);
}

fn options(uidl: UidlFormat) -> MailboxOptions {
    MailboxOptions {
        uidl,
        ..ss::options()
    }
}

fn infos(path: &Path, uidl: UidlFormat) -> Vec<MessageInfo> {
    Mailbox::open(path, &options(uidl))
        .expect("open")
        .messages()
        .to_vec()
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// One message: From_ line, headers (maybe with X-UID, maybe its own X-IMAPbase), an
    /// empty line, a body; LF or CRLF throughout.
    fn message(i: usize) -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec![0usize, 0, 0, 1, 2]),
            0usize..4,
        )
            .prop_map(move |(crlf, uid, own_field, body)| {
                let mut m = format!(
                    "From s{i}@example.org Thu Nov 26 03:32:14 2026\nReceived: from h{i}\n\tby mx\n\
                     Subject: message {i}\nMessage-ID: <{i}@test>\n"
                );
                match own_field {
                    1 => m.push_str("X-IMAPbase: 42 0000000100\n"),
                    2 => m.push_str("x-imap : 43 0000000100\n"),
                    _ => {}
                }
                if uid {
                    m.push_str(&format!("X-UID: {}   \nStatus: RO\n", i + 1));
                }
                m.push('\n');
                for k in 0..body {
                    m.push_str(&format!("body {k} of {i}\n"));
                }
                m.push('\n');
                if crlf {
                    common::crlf(m.as_bytes())
                } else {
                    m.into_bytes()
                }
            })
    }

    /// The first message's UIDVALIDITY field: plain, with keywords, folded, or `X-IMAP`.
    fn field() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(vec![
            &b"X-IMAPbase: 1795673851 0000000014\n"[..],
            b"X-IMAPbase: 7 0000000020 $Junk $NonJunk\n",
            b"X-IMAPbase: 8 0000000020\n\t$Forwarded\n",
            b"X-IMAP: 9 0000000020\n",
        ])
        .prop_map(<[u8]>::to_vec)
    }

    fn case() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<u8>, Vec<bool>, bool)> {
        (2usize..7).prop_flat_map(|n| {
            let msgs: Vec<_> = (0..n).map(message).collect();
            (
                msgs,
                field(),
                prop::collection::vec(any::<bool>(), n),
                any::<bool>(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn commit_moves_only_the_field_and_keeps_uidls(
            (mut msgs, field, mut delete, append) in case(),
        ) {
            // Message 1 carries the field (in the message's own line ending) and is deleted
            // in most cases.
            delete[0] |= delete[1];
            // with_field does not add a second field: give message 1 the case's own one.
            msgs[0] = with_field(&strip_field(&msgs[0]), &field);
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("user");
            let appended = ss::message("appended", 3);
            ss::write_file(&path, &msgs.concat());
            let formats = [UidlFormat::Imap, UidlFormat::DovecotUid, UidlFormat::Native];
            let before: Vec<Vec<MessageInfo>> = formats.iter().map(|&u| infos(&path, u)).collect();

            let mut mb = Mailbox::open(&path, &options(UidlFormat::Imap)).expect("open");
            if append {
                std::fs::OpenOptions::new().append(true).open(&path).expect("open")
                    .write_all(&appended).expect("append");
            }
            let deleted: Vec<usize> = (0..msgs.len()).filter(|&i| delete[i]).collect();
            mb.commit(&deleted).expect("commit");

            // The model: the kept messages (and the delivered one), the first of them given
            // the field when message 1 went.
            let mut want: Vec<Vec<u8>> = (0..msgs.len())
                .filter(|&i| !delete[i])
                .map(|i| msgs[i].clone())
                .collect();
            if append {
                want.push(appended.clone());
            }
            if delete[0] {
                if let Some(first) = want.first_mut() {
                    *first = with_field(first, &field);
                }
            }
            prop_assert_eq!(common::show(&std::fs::read(&path).expect("read")), common::show(&want.concat()));
            prop_assert!(!mboxpopd::storage::journal::journal_path(&path).exists());

            // Every remaining message keeps its size, and its UIDL whatever the scheme -
            // unless the new first message has its own UIDVALIDITY field, which then rules
            // (as it would for Dovecot).
            let kept: Vec<usize> = (0..msgs.len()).filter(|&i| !delete[i]).collect();
            let own_first = delete[0] && kept.first().is_some_and(|&i| has_field(&msgs[i]));
            for (k, &u) in formats.iter().enumerate() {
                let now = infos(&path, u);
                prop_assert_eq!(now.len(), kept.len() + usize::from(append));
                for (j, &i) in kept.iter().enumerate() {
                    prop_assert_eq!(now[j].size, before[k][i].size);
                    if !own_first || u == UidlFormat::Native {
                        prop_assert_eq!(&now[j].uidl, &before[k][i].uidl, "{:?} message {}", u, i);
                    }
                }
            }
        }
    }
}
