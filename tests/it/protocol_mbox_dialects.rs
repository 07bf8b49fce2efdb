//! What mail programs leave in a spool, seen through POP3: mailbox-private headers, the
//! c-client/Dovecot pseudo message, Content-Length (mboxcl2), and the UIDL presets for
//! migrations (x-uidl, imap).

use crate::common;

use common::*;

fn session(f: &Fixture) -> Conn {
    let mut c = f.inetd();
    c.login("alice", "secret");
    c
}

fn uidls(c: &mut Conn) -> Vec<String> {
    String::from_utf8(c.ok_multi("UIDL"))
        .unwrap()
        .split_terminator("\r\n")
        .map(|l| l.split_once(' ').expect("n uid").1.to_string())
        .collect()
}

const PSEUDO: &str = "Date: Thu, 26 Nov 2026 03:32:14 +0000\n\
From: Mail System Internal Data <MAILER-DAEMON@example.org>\n\
Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\
Message-ID: <1700000000@example.org>\n\
X-IMAP: 1700000000 0000000003\n\
Status: RO\n\
\n\
This text is part of the internal format of your mail folder, and is not\n\
a real message.  It is created automatically by the mail system software.\n";

#[test]
fn the_folder_internal_data_message_is_hidden_and_kept() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[PSEUDO, MSG1, MSG2]));
    let mut c = session(&f);
    assert_eq!(
        c.ok("STAT"),
        format!("+OK 2 {}", content(MSG1).len() + content(MSG2).len())
    );
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(MSG1)));
    c.ok("DELE 1");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[PSEUDO, MSG2])));
}

#[test]
fn mailbox_private_headers_are_hidden_with_sizes_to_match() {
    let body = "Hello.\nFrom the start of a line, after text.\n";
    let stored = format!(
        "From: a@example.org\n\
         Status: RO\n\
         X-Status: A\n\
         Subject: flags\n\
         X-Keywords: $Forwarded\n\
         X-UID: 12\n\
         Content-Length: {}\n\
         \n\
         {body}",
        body.len()
    );
    let visible = format!("From: a@example.org\nSubject: flags\n\n{body}");
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[&stored, MSG3]));
    let mut c = session(&f);
    assert_eq!(c.ok("LIST 1"), format!("+OK 1 {}", content(&visible).len()));
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(&visible)));
    assert_eq!(show(&c.ok_multi("TOP 1 0")), show(&top(&visible, 0)));
    c.ok("DELE 2");
    c.quit();
    // What was hidden from the client stays in the file.
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[&stored])));
}

#[test]
fn content_length_lets_a_body_hold_unquoted_from_lines() {
    // mboxcl2 (Dovecot, Solaris mail): no quoting, Content-Length says where the body ends.
    let body = "first line\n\nFrom someone@example.org Thu Nov 26 03:32:14 2026\nstill body\n";
    let stored = format!(
        "From: b@example.org\nSubject: cl2\nContent-Length: {}\n\n{body}",
        body.len()
    );
    let visible = format!("From: b@example.org\nSubject: cl2\n\n{body}");
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[&stored, MSG1]));
    let mut c = session(&f);
    assert!(c.ok("STAT").starts_with("+OK 2 "), "Content-Length ignored");
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(&visible)));
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG1)));
    c.quit();
}

#[test]
fn a_wrong_content_length_is_not_trusted() {
    // Content-Length pointing into the middle of the next message: scan for From_ lines.
    let stored = "From: c@example.org\nSubject: liar\nContent-Length: 3\n\nlonger than three\n";
    let visible = "From: c@example.org\nSubject: liar\n\nlonger than three\n";
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[stored, MSG1]));
    let mut c = session(&f);
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(visible)));
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG1)));
    c.quit();
}

#[test]
fn x_uidl_preset_reuses_headers_and_keeps_uidls_unique() {
    let with = |uidl: &str, subject: &str| {
        format!("X-UIDL: {uidl}\nFrom: d@example.org\nSubject: {subject}\n\nbody\n")
    };
    let a = with("qpopper-0001", "a");
    // A forged copy of another message's X-UIDL must not shadow it.
    let forged = with("qpopper-0001", "forged");
    let b = with("mailutils.42", "b");
    let mut f = Fixture::new();
    f.config("uidl_format = x-uidl");
    f.write_mbox("alice", &mbox(&[&a, &forged, &b, MSG1]));
    let mut c = session(&f);
    let u = uidls(&mut c);
    assert_eq!(u[0], "qpopper-0001");
    assert_ne!(u[1], u[0], "forged X-UIDL shadows another message");
    assert!(u[1].starts_with("qpopper-0001"), "{u:?}");
    assert_eq!(u[2], "mailutils.42");
    // No header: the native scheme.
    assert!(
        u[3].len() >= 16 && u[3].bytes().all(|b| b.is_ascii_hexdigit()),
        "{u:?}"
    );
    c.quit();
}

#[test]
fn imap_preset_uses_uidvalidity_and_x_uid() {
    let first = "X-IMAPbase: 1700000000 0000000010\nX-UID: 7\nFrom: e@example.org\n\nbody\n";
    let second = "X-UID: 9\nFrom: f@example.org\n\nbody\n";
    let mut f = Fixture::new();
    f.config("uidl_format = imap");
    f.write_mbox("alice", &mbox(&[first, second]));
    let mut c = session(&f);
    // UW c-client: %08x%08x of UIDVALIDITY (1700000000 = 0x6553f100) and the UID.
    assert_eq!(uidls(&mut c), ["6553f10000000007", "6553f10000000009"]);
    // The headers are mailbox-private and not shown.
    assert_eq!(
        show(&c.ok_multi("RETR 2")),
        show(&wire("From: f@example.org\n\nbody\n"))
    );
    c.quit();
}

#[test]
fn dovecot_uid_preset_uses_dovecots_default_order() {
    let first = "X-IMAPbase: 1700000000 0000000010\nX-UID: 7\nFrom: e@example.org\n\nbody\n";
    let second = "X-UID: 9\nFrom: f@example.org\n\nbody\n";
    let mut f = Fixture::new();
    f.config("uidl_format = dovecot-uid");
    f.write_mbox("alice", &mbox(&[first, second]));
    let mut c = session(&f);
    // Dovecot's %08Xu%08Xv: the UID first, then UIDVALIDITY (lowercase hex).
    assert_eq!(uidls(&mut c), ["000000076553f100", "000000096553f100"]);
    c.quit();
}
