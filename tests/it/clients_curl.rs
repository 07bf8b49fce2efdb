//! curl's `pop3://` client against the standalone daemon: LIST, RETR, TOP, UIDL, DELE.

use crate::common;

use std::process::Command;

use common::*;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    f
}

#[test]
fn curl_list_and_retr() {
    if require("curl").is_none() {
        return;
    }
    let f = fixture();
    let server = f.standalone();
    let list = server.curl("", &[]);
    assert_eq!(
        show(&list),
        format!(
            "1 {}\r\n2 {}\r\n3 {}\r\n",
            content(MSG1).len(),
            content(MSG2).len(),
            content(MSG3).len()
        )
    );
    for (i, m) in [MSG1, MSG2, MSG3].iter().enumerate() {
        // curl removes the dot-stuffing: what it prints is the message itself.
        let got = server.curl(&(i + 1).to_string(), &[]);
        assert_eq!(show(&got), show(&content(m)), "RETR {}", i + 1);
    }
    // Nothing was deleted.
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, MSG2, MSG3]));
}

#[test]
fn curl_top_and_uidl() {
    if require("curl").is_none() {
        return;
    }
    let f = fixture();
    let server = f.standalone();
    let top0 = server.curl("", &["-X", "TOP 2 0"]);
    assert_eq!(show(&top0), show(&unstuff(&top(MSG2, 0))));
    let top3 = server.curl("", &["-X", "TOP 2 3"]);
    assert_eq!(show(&top3), show(&unstuff(&top(MSG2, 3))));
    let uidl = show(&server.curl("", &["-X", "UIDL"]));
    let uids: Vec<&str> = uidl
        .split_terminator("\r\n")
        .map(|l| l.split_once(' ').expect("n uid").1)
        .collect();
    assert_eq!(uids.len(), 3, "{uidl}");
    // The same UIDLs on the next connection.
    assert_eq!(show(&server.curl("", &["-X", "UIDL"])), uidl);
}

#[test]
fn curl_dele_applies_at_quit() {
    if require("curl").is_none() {
        return;
    }
    let f = fixture();
    let server = f.standalone();
    // -I: DELE answers with a single line, there is no body to transfer.
    server.curl("2", &["-X", "DELE", "-I"]);
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG1, MSG3])));
    let list = server.curl("", &[]);
    assert_eq!(
        show(&list),
        format!("1 {}\r\n2 {}\r\n", content(MSG1).len(), content(MSG3).len())
    );
}

#[test]
fn curl_with_a_wrong_password_fails_cleanly() {
    if require("curl").is_none() {
        return;
    }
    let f = fixture();
    let server = f.standalone();
    let url = format!("pop3://alice:wrong@{}/", server.addr);
    let out = Command::new("curl")
        .args(["--silent", "--max-time", "30", &url])
        .output()
        .expect("run curl");
    // 67: CURLE_LOGIN_DENIED.
    assert_eq!(out.status.code(), Some(67), "{out:?}");
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, MSG2, MSG3]));
}
