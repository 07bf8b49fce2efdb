//! The connection driver and the inetd/standalone front ends, through the real binary:
//! pipelining and output batching, line caps, inactivity timeouts, signals, the one log line
//! per session, and inetd over a real TCP socket. (Protocol conformance, limits and basic
//! signal handling are in the `protocol_*` suites.)

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A second message without dot-lines, so the size checks here do not depend on how
/// dot-stuffing is counted (the maildrop suites own that question).
const PLAIN2: &str = "From: Erin <erin@example.org>\n\
To: alice@example.org\n\
Subject: plain second\n\
\n\
No dots here.\n\
From the start of a body line, quoted by the MDA or not.\n";

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, PLAIN2, MSG3]));
    f
}

/// Reads the status line and, for `multi`, the payload of each pipelined response.
fn responses(c: &mut Conn, multi: &[bool]) -> Vec<(String, Vec<u8>)> {
    multi
        .iter()
        .map(|&m| {
            let status = c.line();
            let payload = if m && status.starts_with("+OK") {
                c.multi()
            } else {
                Vec::new()
            };
            (status, payload)
        })
        .collect()
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let f = fixture();
    let mut c = f.inetd();
    // Everything in one write, login included.
    c.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 2\r\nNOOP\r\nTOP 1 0\r\nDELE 3\r\nLIST 3\r\nSTAT\r\n");
    let got = responses(
        &mut c,
        &[
            false, false, false, true, true, false, true, false, false, false,
        ],
    );
    let sizes: Vec<usize> = [MSG1, PLAIN2, MSG3]
        .iter()
        .map(|m| content(m).len())
        .collect();
    let total: usize = sizes.iter().sum();
    assert!(
        got[0].0.starts_with("+OK") && got[1].0.starts_with("+OK"),
        "{got:?}"
    );
    assert_eq!(got[2].0, format!("+OK 3 {total}"));
    assert_eq!(
        show(&got[3].1),
        format!("1 {}\r\n2 {}\r\n3 {}\r\n", sizes[0], sizes[1], sizes[2])
    );
    assert_eq!(show(&got[4].1), show(&wire(PLAIN2)));
    assert!(got[5].0.starts_with("+OK"));
    assert_eq!(show(&got[6].1), show(&top(MSG1, 0)));
    assert!(got[7].0.starts_with("+OK"));
    assert!(
        got[8].0.starts_with("-ERR"),
        "LIST of a deleted message: {}",
        got[8].0
    );
    assert_eq!(got[9].0, format!("+OK 2 {}", sizes[0] + sizes[1]));
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG1, PLAIN2])));
}

#[test]
fn an_over_long_line_gets_err_and_the_next_command_works() {
    let f = fixture();
    let mut c = f.inetd();
    // Before login (where SASL allows longer lines) and after it.
    let mut huge = vec![b'X'; 1 << 20];
    huge.extend_from_slice(b"\r\n");
    c.send(&huge);
    assert!(c.line().starts_with("-ERR"));
    c.login("alice", "secret");
    c.send(&huge);
    assert!(c.line().starts_with("-ERR"));
    // A long line glued to the next command: the resync happens at the line end.
    let mut glued = vec![b'A'; 5000];
    glued.extend_from_slice(b"\nSTAT\r\n");
    c.send(&glued);
    assert!(c.line().starts_with("-ERR"));
    assert!(c.line().starts_with("+OK 3 "));
    // 255 octets (RFC 2449's minimum) are a normal line: an unknown command, not "too long".
    let long_ok = format!("NOOP {}", "y".repeat(250));
    let reply = c.cmd(&long_ok);
    assert!(!reply.contains("too long"), "{reply}");
    c.quit();
}

#[test]
fn inactivity_timeout_ends_the_session_without_commit() {
    let mut f = fixture();
    f.config("timeout = 1s");
    let before = f.read_mbox("alice");
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok("DELE 1");
    let started = Instant::now();
    // The server says why and hangs up; nothing is committed.
    let last = c.line();
    assert!(last.starts_with("-ERR"), "{last}");
    c.expect_eof();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "timeout after {waited:?}"
    );
    let st = c.wait();
    assert!(st.success(), "{st}");
    assert_eq!(show(&f.read_mbox("alice")), show(&before));
    assert!(c.log().contains("end=timeout"), "{}", c.log());
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn inetd_without_f_keeps_stdout_and_stderr_for_the_protocol() {
    let f = fixture();
    let mut c = f.inetd_with(&[]);
    c.login("alice", "secret");
    c.ok_multi("RETR 1");
    c.err("RETR 99");
    c.quit();
    // Logs went to syslog (or nowhere): never into the client's connection.
    assert_eq!(c.log(), "");
    for line in show(&c.transcript).split("\r\n").filter(|l| !l.is_empty()) {
        assert!(
            !line.contains("session end") && !line.contains("INFO"),
            "log output on stdout: {line}"
        );
    }
}

#[test]
fn the_session_end_is_logged_once_with_its_counts() {
    let f = fixture();
    let mut c = f.inetd();
    c.login("alice", "secret");
    c.ok_multi("RETR 1");
    c.ok_multi("RETR 3");
    c.ok("DELE 2");
    c.quit();
    let log = c.log();
    let ends: Vec<&str> = log.lines().filter(|l| l.contains("session end")).collect();
    assert_eq!(ends.len(), 1, "{log}");
    let retrieved = content(MSG1).len() + content(MSG3).len();
    let deleted = content(PLAIN2).len();
    let line = ends[0];
    for part in [
        "user=alice".to_string(),
        "peer=local".to_string(),
        format!("retr=2/{retrieved}"),
        format!("dele=1/{deleted}"),
        "end=quit".to_string(),
    ] {
        assert!(line.contains(&part), "{part} missing in {line}");
    }
}

/// An inetd-mode process whose pid the test can signal.
struct Raw {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    input: std::process::ChildStdin,
}

impl Raw {
    fn start(conf: &Path, log: &Path) -> Raw {
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(conf)
            .args(["-i", "-f"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(fs::File::create(log).expect("log")))
            .spawn()
            .expect("spawn");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let input = child.stdin.take().expect("stdin");
        let mut r = Raw { child, out, input };
        assert!(r.line().starts_with("+OK"));
        r
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("read");
        l
    }

    fn cmd(&mut self, c: &str) -> String {
        self.input
            .write_all(format!("{c}\r\n").as_bytes())
            .expect("write");
        self.line()
    }
}

#[test]
fn sigterm_ends_an_inetd_session_blocked_in_read_without_commit() {
    let f = fixture();
    let before = f.read_mbox("alice");
    let conf = f.write_config("127.0.0.1:1");
    let log = f.path().join("raw.log");
    let mut r = Raw::start(&conf, &log);
    assert!(r.cmd("USER alice").starts_with("+OK"));
    assert!(r.cmd("PASS secret").starts_with("+OK"));
    assert!(r.cmd("DELE 1").starts_with("+OK"));
    std::thread::sleep(Duration::from_millis(100));
    let st = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = wait_timeout(&mut r.child, PATIENCE).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    r.out.read_to_string(&mut rest).ok();
    assert!(!rest.contains("+OK"), "{rest}");
    assert_eq!(show(&f.read_mbox("alice")), show(&before));
    let log = fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("end=shutdown"), "{log}");
}

#[test]
fn inetd_on_a_tcp_socket_knows_its_peer() {
    let mut f = fixture();
    f.config("timeout = 2s");
    let conf = f.write_config("127.0.0.1:1");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server_side, _) = listener.accept().expect("accept");
    // As inetd does: the accepted socket is the daemon's stdin and stdout.
    let fd_in = OwnedFd::from(server_side.try_clone().expect("clone"));
    let fd_out = OwnedFd::from(server_side);
    let log = f.path().join("tcp-inetd.log");
    let mut child = Command::new(binary())
        .arg("-c")
        .arg(&conf)
        .args(["-i", "-f"])
        .stdin(Stdio::from(fd_in))
        .stdout(Stdio::from(fd_out))
        .stderr(Stdio::from(fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn");
    client
        .set_read_timeout(Some(PATIENCE))
        .expect("client timeout");
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("+OK"), "{line}");
    client
        .write_all(b"USER alice\r\nPASS secret\r\nSTAT\r\n")
        .expect("send");
    for want in ["+OK", "+OK", "+OK 3 "] {
        line.clear();
        reader.read_line(&mut line).expect("reply");
        assert!(line.starts_with(want), "{line}");
    }
    // Then idle: the socket's own timeout ends the session.
    line.clear();
    reader.read_line(&mut line).expect("timeout notice");
    assert!(line.starts_with("-ERR"), "{line}");
    line.clear();
    assert_eq!(reader.read_line(&mut line).expect("eof"), 0);
    let st = wait_timeout(&mut child, PATIENCE).expect("exit");
    assert!(st.success());
    let log = fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("peer=127.0.0.1"), "{log}");
    assert!(log.contains("end=timeout"), "{log}");
}

/// Counts the write(2)-family calls the server makes, with strace.
#[test]
fn each_response_leaves_in_one_write() {
    let Some(strace) = require("strace") else {
        return;
    };
    let f = fixture();
    let conf = f.write_config("127.0.0.1:1");
    let trace = f.path().join("strace.out");
    let mut child = Command::new(&strace)
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=write,writev,sendto,sendmsg",
            "-s",
            "100000",
            "-o",
        ])
        .arg(&trace)
        .arg(binary())
        .arg("-c")
        .arg(&conf)
        .arg("-i")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strace");
    let mut input = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("greeting");
    if !line.starts_with("+OK") {
        eprintln!("SKIPPED: strace cannot trace here ({line:?})");
        child.kill().ok();
        child.wait().ok();
        return;
    }
    let mut ask = |cmd: &str, lines: usize| {
        input.write_all(cmd.as_bytes()).expect("send");
        let mut got = String::new();
        for _ in 0..lines {
            out.read_line(&mut got).expect("reply");
        }
        got
    };
    ask("USER alice\r\nPASS secret\r\n", 2);
    let retr = ask("RETR 2\r\n", 1 + PLAIN2.lines().count() + 1);
    assert!(retr.ends_with("\r\n.\r\n"), "{retr}");
    // A pipelined batch is answered by one write as well.
    ask("STAT\r\nNOOP\r\nLIST 1\r\n", 3);
    ask("QUIT\r\n", 1);
    drop(input);
    wait_timeout(&mut child, PATIENCE).expect("exit");
    let trace = fs::read_to_string(&trace).expect("trace");
    let writes: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("+OK") || l.contains("-ERR") || l.contains("\\r\\n"))
        .collect();
    let retr_writes: Vec<&&str> = writes
        .iter()
        .filter(|l| l.contains("Subject: plain second"))
        .collect();
    assert_eq!(retr_writes.len(), 1, "{writes:#?}");
    assert!(
        retr_writes[0].contains("\"+OK") && retr_writes[0].contains("or not.\\r\\n.\\r\\n\""),
        "RETR split over several writes: {writes:#?}"
    );
    let batch: Vec<&&str> = writes
        .iter()
        .filter(|l| l.contains("+OK 3 ") || l.contains("+OK 1 "))
        .collect();
    assert_eq!(batch.len(), 1, "pipelined batch split: {writes:#?}");
    // greeting, USER, PASS (answered together or not), RETR, the batch, QUIT.
    assert!(writes.len() <= 6, "{writes:#?}");
}

fn threads_of(pid: u32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a connection and returns it once it got a greeting line (whatever it says).
fn greeted(addr: &str) -> (TcpStream, String) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    (s, line)
}

#[test]
fn connections_over_the_limit_cost_no_thread() {
    let mut f = fixture();
    f.config("max_connections = 3");
    f.config("max_connections_per_ip = 50");
    let server = f.standalone();
    // Wait until the harness' start-up probe connection is gone.
    let deadline = Instant::now() + PATIENCE;
    let mut held = Vec::new();
    while held.len() < 3 {
        let (s, line) = greeted(&server.addr);
        if line.starts_with("+OK") {
            held.push(s);
        }
        assert!(Instant::now() < deadline, "never admitted");
    }
    let base = threads_of(server.pid());
    for _ in 0..40 {
        let (_s, line) = greeted(&server.addr);
        assert!(line.starts_with("-ERR [SYS/TEMP]"), "{line}");
    }
    let now = threads_of(server.pid());
    assert!(
        now <= base,
        "threads grew from {base} to {now} for refused connections"
    );
    // main + accept thread + 3 sessions (+1 if the harness probe is still winding down).
    assert!(base <= 6, "{base} threads for 3 sessions");
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_s, line) = greeted(&server.addr);
        if line.starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon started under `sh -c "LIMITS && exec mboxpopd ..."`, logging to `log`, and the
/// address it listens on.
fn daemon_with_limits(limits: &str, conf: &Path, log: &Path) -> (Child, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{limits} && exec {} -c {} -d -f",
            binary().display(),
            conf.display()
        ))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(log).expect("log")))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + PATIENCE;
    let addr = loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
        {
            break format!("127.0.0.1:{}", port.trim());
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("no listening line: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, addr)
}

#[test]
fn running_out_of_file_descriptors_delays_clients_but_keeps_serving() {
    let f = fixture();
    let conf = f.write_config("127.0.0.1:0");
    let log = f.path().join("emfile.log");
    // A handful of descriptors: enough for a few sessions, then accept(2) fails with EMFILE.
    let (mut child, addr) = daemon_with_limits("ulimit -n 14", &conf, &log);
    // Open more connections than there are descriptors; the excess waits in the backlog.
    let mut conns: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "daemon died; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    conns.truncate(0);
    // Once descriptors are free again, new clients are served normally.
    let (mut s, line) = greeted(&addr);
    assert!(line.starts_with("+OK"), "{line}");
    s.write_all(b"QUIT\r\n").expect("quit");
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("accept on"), "no EMFILE was provoked: {text}");
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn the_open_file_limit_is_raised_and_an_idle_connection_holds_one_descriptor() {
    let mut f = fixture();
    f.config("max_connections = 500");
    f.config("max_connections_per_ip = 500");
    let conf = f.write_config("127.0.0.1:0");
    let log = f.path().join("nofile.log");
    // A soft limit below the hard one, as a login shell or inetd may leave it.
    let (mut child, addr) = daemon_with_limits("ulimit -Sn 100 && ulimit -Hn 4096", &conf, &log);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("open file limit: 4096 (hard 4096)"),
        "limit not raised or not logged: {text}"
    );
    // More connections than the old soft limit allowed descriptors.
    let fds = || {
        fs::read_dir(format!("/proc/{}/fd", child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    let held: Vec<TcpStream> = (0..150)
        .map(|_| {
            let (s, line) = greeted(&addr);
            assert!(line.starts_with("+OK"), "{line}");
            s
        })
        .collect();
    let during = fds();
    assert!(
        during <= before + held.len() + 2,
        "{} idle connections took {} descriptors",
        held.len(),
        during - before
    );
    drop(held);
    child.kill().ok();
    child.wait().ok();
}

/// Reads until EOF or `limit`; returns what arrived and whether the server hung up.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => {}
        }
    }
    (got, false)
}

#[test]
fn login_timeout_holds_against_trickling_and_chatty_clients() {
    let mut f = fixture();
    f.config("login_timeout = 2s");
    let server = f.standalone();
    let addr = format!("{}:{}", server.host(), server.port());
    // One byte every 300 ms never completes a line; CAPA every 200 ms completes many.
    let trickler = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            let started = Instant::now();
            for b in b"CAPACAPACAPACAPACAPACAPACAPACAPACAPACAPA"
                .iter()
                .cycle()
                .take(100)
            {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
                if started.elapsed() > Duration::from_secs(15) {
                    break;
                }
            }
            let (got, closed) = read_until_closed(&mut s, Duration::from_secs(1));
            (started.elapsed(), got, closed)
        }
    });
    let mut s = TcpStream::connect(&addr).expect("connect");
    let started = Instant::now();
    let mut closed_after = None;
    for _ in 0..100 {
        if s.write_all(b"CAPA\r\n").is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let (got, closed) = read_until_closed(&mut s, Duration::from_millis(200));
        if closed || String::from_utf8_lossy(&got).contains("Login timeout") {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let chatty = closed_after.expect("the chatty client was cut off");
    assert!(
        chatty >= Duration::from_millis(1800) && chatty < Duration::from_secs(8),
        "{chatty:?}"
    );
    let (elapsed, got, closed) = trickler.join().expect("trickler");
    assert!(
        elapsed < Duration::from_secs(10),
        "trickler kept its slot: {elapsed:?}"
    );
    let _ = (got, closed);
    assert!(server.wait_for_log("end=login timeout"), "{}", server.log());
    // An honest client still logs in.
    let mut c = server.connect();
    c.login("alice", "secret");
    c.quit();
}

#[test]
fn failure_penalty_grows_per_client_across_connections() {
    let _alone = exclusive();
    let mut f = fixture();
    f.config("auth_failure_delay = 200ms");
    f.config("auth_penalty_max = 3s");
    f.config("max_auth_failures = 10");
    let server = f.standalone();
    let timed = |c: &mut Conn, pass: &str| {
        c.ok("USER alice");
        let t = Instant::now();
        let reply = c.cmd(&format!("PASS {pass}"));
        (reply, t.elapsed())
    };
    let mut c = server.connect_from("127.0.0.5");
    let mut times = Vec::new();
    for _ in 0..3 {
        let (reply, t) = timed(&mut c, "wrong");
        assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
        times.push(t);
    }
    // The same client on a new connection inherits its penalty (3 failures: 800 ms).
    let mut c2 = server.connect_from("127.0.0.5");
    let (reply, t) = timed(&mut c2, "wrong");
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
    times.push(t);
    assert!(times[0] < Duration::from_millis(700), "{times:?}");
    assert!(times[3] >= Duration::from_millis(700), "{times:?}");
    assert!(times[3] > times[0] * 3, "{times:?}");
    // Another client is not penalised.
    let mut other = server.connect_from("127.0.0.6");
    let (reply, t) = timed(&mut other, "secret");
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(t < Duration::from_millis(500), "{t:?}");
    other.quit();
    // A success forgets the failures (after waiting out the penalty once more).
    let (reply, _) = timed(&mut c2, "secret");
    assert!(reply.starts_with("+OK"), "{reply}");
    c2.quit();
    let mut c3 = server.connect_from("127.0.0.5");
    let (_, t) = timed(&mut c3, "wrong");
    assert!(t < Duration::from_millis(700), "penalty reset: {t:?}");
    // fail2ban's line: the peer first, before anything the client chose.
    assert!(
        server.wait_for_log("authentication failed: peer=127.0.0.5 user=alice failures=1"),
        "{}",
        server.log()
    );
}

#[test]
fn connection_limits_count_clients_by_prefix() {
    let mut f = fixture();
    f.config("max_connections_per_ip = 2");
    f.config("client_prefix_ipv4 = 24");
    let server = f.standalone();
    // Clients in a /24 of their own: the harness' readiness probe came from 127.0.0.1.
    let _a = server.connect_from("127.0.5.2");
    let _b = server.connect_from("127.0.5.3");
    // Same /24: the third is refused, whatever its last octet.
    let s = tcp_from("127.0.5.4", &format!("{}:{}", server.host(), server.port()));
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("reply");
    assert!(line.starts_with("-ERR [SYS/TEMP]"), "{line}");
    // Another /24 is another client.
    let mut c = server.connect_from("127.0.6.2");
    c.login("alice", "secret");
    c.quit();
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_send_timeout() {
    let f = Fixture::new();
    // Far more than loopback's socket buffers hold, even autotuned.
    let body: String = (0..800_000)
        .map(|i| format!("line {i:06} of a big message\n"))
        .collect();
    let big = format!("From: x@example.org\nSubject: big\n\n{body}");
    f.write_mbox("alice", &mbox(&[&big]));
    let mut f = f;
    f.config("send_timeout = 1s");
    let server = f.standalone();
    let mut s = TcpStream::connect(format!("{}:{}", server.host(), server.port())).expect("c");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    s.write_all(b"USER alice\r\nPASS secret\r\n")
        .expect("login");
    for _ in 0..2 {
        line.clear();
        r.read_line(&mut line).expect("reply");
        assert!(line.starts_with("+OK"), "{line}");
    }
    s.write_all(b"RETR 1\r\n").expect("retr");
    // Read nothing more: the session must end by itself.
    assert!(server.wait_for_log("end=write timeout"), "{}", server.log());
    drop(r);
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// One honest session from its own address: login, STAT, RETR 1, QUIT.
fn honest_session(server: &Server) -> Duration {
    let started = Instant::now();
    let mut c = server.connect_from("127.0.9.9");
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.ok_multi("RETR 1");
    c.quit();
    started.elapsed()
}

/// CPU ticks (user + system) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Wait (at most a minute) until the process uses under a tenth of a core.
fn wait_for_quiet(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(500));
        if cpu_ticks(pid) - before <= 5 {
            return;
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// 2,000 idle connections, 50 clients that stop reading a RETR, 50 that trickle a byte a
/// second and 1,000 bad logins (half of them during the measurement): an honest client is still served, promptly, and no
/// mail is lost. Prints the numbers BENCHMARKS.md reports.
#[test]
fn honest_client_is_served_under_load_and_abuse() {
    let _alone = exclusive();
    let mut f = fixture();
    let big: String = (0..100_000)
        .map(|i| format!("slow line {i:06}\n"))
        .collect();
    let big = format!("Subject: big\n\n{big}");
    for i in 0..50 {
        f.passwd_line(&format!("slow{i}:{{PLAIN}}pw"));
        f.write_mbox(&format!("slow{i}"), &mbox(&[&big]));
    }
    f.config("max_connections = 4000");
    f.config("max_connections_per_ip = 3000");
    f.config("auth_failure_delay = 200ms");
    f.config("login_timeout = 60s");
    f.config("max_auth_failures = 1");
    let server = f.standalone();
    let addr = format!("{}:{}", server.host(), server.port());
    let unloaded = median((0..7).map(|_| honest_session(&server)).collect());
    let rss_before = rss_kib(server.pid());

    let connect_many = |n: usize, source_base: u32| -> Vec<TcpStream> {
        (0..n)
            .map(|i| {
                let source = format!("127.0.{}.{}", source_base + (i / 200) as u32, 1 + i % 200);
                let s = tcp_from(&source, &addr);
                s.set_read_timeout(Some(Duration::from_secs(20))).ok();
                s
            })
            .collect()
    };
    let idle = connect_many(2000, 10);
    // Wait until the daemon has them all (each session thread says hello).
    let mut greeted = 0;
    for s in &idle {
        let mut b = [0u8; 1];
        let mut r = s;
        if r.read(&mut b).is_ok() {
            greeted += 1;
        }
    }
    assert_eq!(greeted, 2000);
    let rss_idle = rss_kib(server.pid());
    let per_idle = (rss_idle.saturating_sub(rss_before)) * 1024 / 2000;

    let mut slow: Vec<TcpStream> = connect_many(50, 30);
    for (i, s) in slow.iter_mut().enumerate() {
        s.write_all(format!("USER slow{i}\r\nPASS pw\r\nRETR 1\r\n").as_bytes())
            .expect("slow reader");
    }
    let trickle = connect_many(50, 40);
    let bad = connect_many(500, 50);
    for s in &bad {
        let mut w = s;
        w.write_all(b"USER alice\r\nPASS wrong\r\n")
            .expect("bad login");
    }
    // 500 more bad logins while the honest client is measured, from 20 addresses.
    let guesser = std::thread::spawn({
        let addr = addr.clone();
        move || {
            for i in 0..500 {
                let mut s = tcp_from(&format!("127.0.60.{}", 1 + i % 20), &addr);
                let _ = s.write_all(b"USER alice\r\nPASS wrong\r\n");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = std::thread::spawn({
        let stop = std::sync::Arc::clone(&stop);
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &trickle {
                    let mut w = s;
                    let _ = w.write_all(b"X");
                }
                std::thread::sleep(Duration::from_millis(1000));
            }
            trickle
        }
    });
    // The slow readers first fill their socket buffers (megabytes each on loopback, a burst
    // of work); measure once they are blocked, with every abuser still connected.
    wait_for_quiet(server.pid());
    let loaded = median((0..9).map(|_| honest_session(&server)).collect());
    guesser.join().expect("guesser");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _trickle = trickler.join().expect("trickler");
    eprintln!(
        "load: unloaded {unloaded:?}, loaded {loaded:?}, RSS {rss_before} KiB -> {rss_idle} KiB \
         with 2000 idle connections ({per_idle} bytes each)"
    );
    assert!(
        loaded <= unloaded * 2 + Duration::from_millis(50),
        "honest client: unloaded {unloaded:?}, loaded {loaded:?}"
    );
    assert!(per_idle < 64 * 1024, "{per_idle} bytes per idle connection");
    // Nothing was lost: every mailbox is as it was (no one quit with deletions).
    assert_eq!(f.read_mbox("slow0"), mbox(&[&big]));
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, PLAIN2, MSG3]));
    drop((idle, slow, bad));
}
