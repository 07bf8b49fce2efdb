//! The `make run` demo (scripts/demo.sh) keeps working: it starts, serves the generated
//! mailbox to the demo user, and shows the cases it is meant to show.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn the_demo_serves_its_mailbox() {
    let f = Fixture::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run_dir = f.path().join("run");
    let port = free_port("127.0.0.1");
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/demo.sh"))
        .arg(binary())
        .env("PORT", port.to_string())
        .env("RUN_DIR", &run_dir)
        .env("RUST_LOG", "info");
    let server = Server::spawn(cmd, &format!("127.0.0.1:{port}"), f.path().join("demo.log"));

    let generated = run(Command::new("sh").arg(root.join("scripts/demo-mbox.sh"))).1;
    let messages = split_mbox(generated.as_bytes());
    assert_eq!(messages.len(), 4);

    let mut c = server.connect();
    c.login("demo", "demo");
    let total: usize = messages.iter().map(|m| crlf(m).len()).sum();
    assert_eq!(c.ok("STAT"), format!("+OK 4 {total}"));
    // Message 2 has a lone-dot line (stuffed on the wire), message 3 a >From line.
    let two = c.ok_multi("RETR 2");
    assert!(show(&two).contains("\r\n..\r\n"), "{}", show(&two));
    assert_eq!(show(&unstuff(&two)), show(&crlf(&messages[1])));
    let three = c.ok_multi("RETR 3");
    assert!(
        show(&three).contains("\r\n>From the desk"),
        "{}",
        show(&three)
    );
    c.ok("DELE 4");
    c.quit();

    let left = std::fs::read(run_dir.join("mail/demo")).expect("demo mailbox");
    assert_eq!(split_mbox(&left), messages[..3].to_vec());
    // The session-end line is written after QUIT is answered: wait for it.
    assert!(
        server.wait_for_log("session end: user=demo"),
        "{}",
        server.log()
    );
}
