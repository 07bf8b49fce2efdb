//! The maildrop seen through the protocol: what QUIT leaves in the file, what every other
//! ending leaves (nothing changed), concurrent sessions and deliveries, and the mbox shapes
//! a real spool holds (dot-lines, `From ` in bodies, CRLF files, empty, missing, not mbox).

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

fn all_sizes_match_retr(c: &mut Conn) {
    let listing = String::from_utf8(c.ok_multi("LIST")).unwrap();
    for l in listing.split_terminator("\r\n") {
        let (n, size) = l.split_once(' ').unwrap();
        let payload = c.ok_multi(&format!("RETR {n}"));
        assert_eq!(
            size.parse::<usize>().unwrap(),
            unstuff(&payload).len(),
            "message {n}: LIST size differs from RETR octets"
        );
    }
}

#[test]
fn quit_applies_deletions_in_place() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let before = fs::metadata(f.mailbox("alice")).unwrap();
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.ok("DELE 3");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG2])));
    let after = fs::metadata(f.mailbox("alice")).unwrap();
    assert_eq!(
        before.ino(),
        after.ino(),
        "mailbox replaced instead of rewritten"
    );
    assert_eq!(before.mode(), after.mode());
    assert_eq!(before.uid(), after.uid());
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    // The next session sees exactly the remaining message.
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(c.ok("STAT"), format!("+OK 1 {}", content(MSG2).len()));
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(MSG2)));
    c.quit();
}

#[test]
fn deleting_everything_leaves_an_empty_file() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.ok("DELE 2");
    c.quit();
    assert_eq!(f.read_mbox("alice"), b"");
    assert!(f.mailbox("alice").exists(), "mailbox removed");
}

#[test]
fn quit_without_deletions_writes_nothing() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    // An old mtime shows whether the file was written to at all.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(f.mailbox("alice"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok_multi("RETR 1");
    c.ok("DELE 2");
    c.ok("RSET");
    c.quit();
    let m = fs::metadata(f.mailbox("alice")).unwrap();
    assert_eq!(
        m.modified().unwrap(),
        old,
        "mailbox written without deletions"
    );
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, MSG2]));
}

#[test]
fn a_session_dropped_without_quit_changes_nothing() {
    let f = Fixture::new();
    let original = mbox(&[MSG1, MSG2, MSG3]);
    f.write_mbox("alice", &original);
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.ok("DELE 2");
    c.ok_multi("RETR 3");
    c.hang_up();
    c.expect_eof();
    c.wait();
    assert_eq!(show(&f.read_mbox("alice")), show(&original));
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    // The lock is released: a new session logs in.
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.quit();
}

#[test]
fn a_dropped_tcp_session_changes_nothing() {
    let f = Fixture::new();
    let original = mbox(&[MSG1, MSG2, MSG3]);
    f.write_mbox("alice", &original);
    let server = f.standalone();
    let mut c = server.connect();
    c.login("alice", "secret");
    c.ok("DELE 1");
    drop(c);
    // The daemon notices the hang-up and releases the maildrop.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut c = server.connect();
        c.ok("USER alice");
        let r = c.cmd("PASS secret");
        if r.starts_with("+OK") {
            assert!(c.ok("STAT").starts_with("+OK 3 "));
            c.quit();
            break;
        }
        assert!(r.contains("[IN-USE]"), "{r}");
        assert!(
            std::time::Instant::now() < deadline,
            "maildrop never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(show(&f.read_mbox("alice")), show(&original));
}

#[test]
fn a_second_session_on_the_same_maildrop_gets_in_use() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    let mut first = f.inetd();
    first.login("alice", "secret");
    first.ok("DELE 1");
    let mut second = f.inetd();
    second.ok("USER alice");
    let r = second.err("PASS secret");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    // Another user is not affected.
    f.write_mbox("bob", &mbox(&[MSG3]));
    let mut bob = f.inetd();
    bob.login("bob", "hunter2");
    bob.quit();
    first.quit();
    // Once the first session is gone, the maildrop is free again.
    let mut third = f.inetd();
    third.login("alice", "secret");
    assert_eq!(third.ok("STAT"), format!("+OK 1 {}", content(MSG2).len()));
    third.quit();
    drop(second);
}

#[test]
fn mail_delivered_during_a_session_is_kept_by_quit() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    // A real MDA appends while the session is open (locks are not held between commands).
    deliver(&f.mailbox("alice"), MSG3);
    // The session keeps the numbering it started with.
    assert_eq!(c.ok("STAT"), format!("+OK 1 {}", content(MSG2).len()));
    c.err("RETR 3");
    c.quit();
    let left = split_mbox(&f.read_mbox("alice"));
    assert_eq!(left.len(), 2, "{}", show(&f.read_mbox("alice")));
    assert_eq!(show(&left[0]), MSG2);
    assert_eq!(show(&left[1]), MSG3);
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
    // And the next session serves the delivered message.
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG3)));
    c.quit();
}

#[test]
fn uidls_are_stable_across_sessions_and_deletions() {
    let f = Fixture::new();
    // Two identical messages must still get distinct UIDLs.
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG1, MSG3]));
    let uidls = |c: &mut Conn| -> Vec<String> {
        String::from_utf8(c.ok_multi("UIDL"))
            .unwrap()
            .split_terminator("\r\n")
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    };
    let mut c = f.inetd();
    c.login("alice", "secret");
    let first = uidls(&mut c);
    c.quit();
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "duplicate UIDLs: {first:?}");
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(uidls(&mut c), first, "UIDLs changed between sessions");
    c.ok("DELE 2");
    c.quit();
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(
        uidls(&mut c),
        vec![first[0].clone(), first[2].clone(), first[3].clone()],
        "UIDLs changed after another message was deleted"
    );
    c.quit();
}

#[test]
fn dot_lines_and_from_lines_in_bodies() {
    let tricky = "From: x@example.org\n\
Subject: tricky\n\
\n\
.\n\
..\n\
.x\n\
From the start of a line, after text\n\
>From quoted once\n\
>>From quoted twice\n\
. \n\
last\n";
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, tricky, MSG3]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(
        c.ok("STAT"),
        format!(
            "+OK 3 {}",
            content(MSG1).len() + content(tricky).len() + content(MSG3).len()
        )
    );
    // mboxo (the default) sends >From lines as stored.
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(tricky)));
    assert_eq!(show(&c.ok_multi("RETR 3")), show(&wire(MSG3)));
    all_sizes_match_retr(&mut c);
    c.ok("DELE 1");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[tricky, MSG3])));
}

#[test]
fn mboxrd_unquotes_one_level() {
    let quoted = "Subject: rd\n\n>From once\n>>From twice\n>not a from\n";
    let sent = "Subject: rd\n\nFrom once\n>From twice\n>not a from\n";
    let mut f = Fixture::new();
    f.config("mbox_format = mboxrd");
    f.write_mbox("alice", &mbox(&[quoted]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(c.ok("LIST 1"), format!("+OK 1 {}", content(sent).len()));
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(sent)));
    c.quit();
}

#[test]
fn crlf_mailbox() {
    let f = Fixture::new();
    let original = mbox_crlf(&[MSG1, MSG2, MSG3]);
    f.write_mbox("alice", &original);
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(
        c.ok("STAT"),
        format!(
            "+OK 3 {}",
            content(MSG1).len() + content(MSG2).len() + content(MSG3).len()
        )
    );
    // CR is not doubled: the wire form is the same as for an LF file.
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(MSG1)));
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG2)));
    assert_eq!(show(&c.ok_multi("TOP 3 0")), show(&top(MSG3, 0)));
    all_sizes_match_retr(&mut c);
    c.ok("DELE 2");
    c.quit();
    // The kept messages stay byte-identical, CRs included.
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox_crlf(&[MSG1, MSG3])));
}

#[test]
fn empty_maildrop() {
    let f = Fixture::new();
    f.write_mbox("alice", b"");
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(c.ok("STAT"), "+OK 0 0");
    assert_eq!(c.ok_multi("LIST"), b"");
    assert_eq!(c.ok_multi("UIDL"), b"");
    c.err("RETR 1");
    c.err("LIST 1");
    c.quit();
    assert_eq!(f.read_mbox("alice"), b"");
}

#[test]
fn missing_maildrop_is_empty_and_not_created() {
    let f = Fixture::new();
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(c.ok("STAT"), "+OK 0 0");
    assert_eq!(c.ok_multi("LIST"), b"");
    c.err("DELE 1");
    c.quit();
    assert!(!f.mailbox("alice").exists(), "QUIT created a mailbox");
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn a_file_that_is_not_an_mbox_is_refused_and_untouched() {
    let f = Fixture::new();
    let junk = b"This is not a mailbox.\nFrom here on, nothing.\n".to_vec();
    f.write_mbox("alice", &junk);
    let mut c = f.inetd();
    c.ok("USER alice");
    let r = c.cmd("PASS secret");
    assert!(r.starts_with("-ERR [SYS/PERM]"), "{r}");
    drop(c);
    assert_eq!(f.read_mbox("alice"), junk);
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn a_symlinked_mailbox_is_refused() {
    let f = Fixture::new();
    f.write_mbox("bob", &mbox(&[MSG1]));
    std::os::unix::fs::symlink(f.mailbox("bob"), f.mailbox("alice")).unwrap();
    let mut c = f.inetd();
    c.ok("USER alice");
    let r = c.cmd("PASS secret");
    assert!(r.starts_with("-ERR"), "symlinked mailbox opened: {r}");
    drop(c);
    assert_eq!(f.read_mbox("bob"), mbox(&[MSG1]));
}

#[test]
fn a_large_message_streams_with_exact_size() {
    // 4 MiB with long lines and many dot-lines: exercises buffered streaming.
    let mut body = String::from("Subject: big\n\n");
    for i in 0..40_000 {
        match i % 4 {
            0 => body.push_str(".dot line\n"),
            1 => body.push_str(&"x".repeat(97)),
            2 => body.push_str("From inside, after text\n"),
            _ => body.push('\n'),
        }
        if i % 4 == 1 {
            body.push('\n');
        }
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, &body, MSG3]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert_eq!(c.ok("LIST 2"), format!("+OK 2 {}", content(&body).len()));
    assert!(c.ok_multi("RETR 2") == wire(&body), "large RETR differs");
    c.quit();
}

#[test]
fn messages_fetched_in_order_and_out_of_order_are_exact() {
    // Sizes around and across the 64 KiB read-ahead: small ones that share one read, ones that
    // straddle its end, one larger than it, dot lines and a >From line.
    let bodies: Vec<String> = (0..60usize)
        .map(|i| {
            let mut b = format!("Subject: m{i}\n\n");
            let lines = match i {
                17 => 1500,
                _ => (i * 37) % 160,
            };
            for k in 0..lines {
                match (i + k) % 9 {
                    0 => b.push_str(".starts with a dot\n"),
                    1 => b.push_str(">From quoted\n"),
                    2 => b.push_str("tab\tseparated\n"),
                    3 => b.push('\n'),
                    _ => b.push_str(&format!("{i} {k} {}\n", "x".repeat((i * k) % 90))),
                }
            }
            b
        })
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&refs));
    let mut c = f.inetd();
    c.login("alice", "secret");
    let mut order: Vec<usize> = (1..=bodies.len()).collect();
    order.extend([60, 1, 30, 29, 28, 31, 32, 18, 17, 18, 19, 5]);
    for n in order {
        let body = &bodies[n - 1];
        let got = c.ok_multi(&format!("RETR {n}"));
        assert!(got == wire(body), "RETR {n} differs");
        assert_eq!(
            c.ok(&format!("LIST {n}")),
            format!("+OK {n} {}", content(body).len())
        );
    }
    for n in 1..=bodies.len() {
        let head = c.ok_multi(&format!("TOP {n} 0"));
        let body = &bodies[n - 1];
        let end = body.find("\n\n").unwrap() + 2;
        assert!(head == wire(&body[..end]), "TOP {n} 0 differs");
    }
    c.quit();
}

#[test]
fn a_mailbox_cut_short_is_noticed_while_the_next_messages_are_read_ahead() {
    // RETR 2 follows RETR 1, so it reads the next 64 KiB too: RETR 3 is in memory, and the
    // file's length is still checked before it is served.
    let bodies: Vec<String> = (0..40)
        .map(|i| format!("Subject: {i}\n\n{}", format!("line {i}\n").repeat(400)))
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let f = Fixture::new();
    let original = mbox(&refs);
    f.write_mbox("alice", &original);
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert!(c.ok_multi("RETR 1") == wire(&bodies[0]));
    assert!(c.ok_multi("RETR 2") == wire(&bodies[1]));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(f.mailbox("alice"))
        .unwrap();
    file.set_len(original.len() as u64 / 2).unwrap();
    let r = c.cmd("RETR 3");
    assert!(
        r.starts_with("-ERR [SYS/TEMP]"),
        "served from a shrunk mailbox: {r}"
    );
    c.expect_eof();
    c.wait();
    assert_eq!(f.read_mbox("alice"), original[..original.len() / 2]);
}

#[test]
fn a_mailbox_rewritten_by_another_program_ends_the_session_untouched() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    // mutt-style: write a new file and rename it over the mailbox (new inode, message 2 gone).
    let rewritten = mbox(&[MSG1, MSG3]);
    let tmp = f.path().join("spool").join(".alice.tmp");
    fs::write(&tmp, &rewritten).unwrap();
    fs::rename(&tmp, f.mailbox("alice")).unwrap();
    let r = c.cmd("RETR 2");
    assert!(
        r.starts_with("-ERR [SYS/TEMP]"),
        "served from a replaced mailbox: {r}"
    );
    c.expect_eof();
    c.wait();
    assert_eq!(show(&f.read_mbox("alice")), show(&rewritten));
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn a_mailbox_removed_or_replaced_behind_a_hard_link_ends_the_session() {
    // RETR looks the path up again only when the open file's link count moved: removing the
    // mailbox lowers it, and so does replacing a mailbox that has a second link.
    for replace in [false, true] {
        let f = Fixture::new();
        f.write_mbox("alice", &mbox(&[MSG1, MSG2]));
        let spool = f.path().join("spool");
        if replace {
            fs::hard_link(f.mailbox("alice"), spool.join(".alice.link")).unwrap();
        }
        let mut c = f.inetd();
        c.login("alice", "secret");
        assert!(c.ok_multi("RETR 1") == wire(MSG1));
        if replace {
            let tmp = spool.join(".alice.tmp");
            fs::write(&tmp, mbox(&[MSG2])).unwrap();
            fs::rename(&tmp, f.mailbox("alice")).unwrap();
        } else {
            fs::remove_file(f.mailbox("alice")).unwrap();
        }
        let r = c.cmd("RETR 2");
        assert!(
            r.starts_with("-ERR [SYS/TEMP]"),
            "served after the mailbox went (replace={replace}): {r}"
        );
        c.expect_eof();
        c.wait();
    }
}

#[test]
fn an_unquoted_from_line_after_an_empty_line_does_not_split_a_message() {
    // Not a valid From_ line (no date), so it is body text, as mutt and Dovecot read it.
    let msg = "From: g@example.org\nSubject: agree\n\nOpening.\n\nFrom here on, we agree.\n";
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[msg, MSG1]));
    let mut c = f.inetd();
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(msg)));
    c.ok("DELE 2");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[msg])));
}
