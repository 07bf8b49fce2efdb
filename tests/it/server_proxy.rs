//! The PROXY protocol and XCLIENT against the real binary: the client address a trusted
//! proxy names replaces the socket's peer in log lines, limits and the plaintext policy;
//! anything else on a proxy listener is closed without a greeting. Then the real HAProxy
//! (`send-proxy-v2`) in front of two daemons on one spool.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn v1(src: &str, sport: u16) -> Vec<u8> {
    format!("PROXY TCP4 {src} 127.0.0.1 {sport} 110\r\n").into_bytes()
}

fn v2_inet(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 12 + 7]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&110u16.to_be_bytes());
    // A TLV (ALPN "pop3") to be skipped.
    h.extend_from_slice(&[0x01, 0x00, 0x04]);
    h.extend_from_slice(b"pop3");
    h
}

/// A daemon with a plain listener (for readiness and XCLIENT) and a proxy listener.
fn proxied_daemon(f: &mut Fixture) -> (Server, String) {
    let proxy_addr = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    f.set_config("proxy_listen", &proxy_addr)
        .set_config("proxy_trusted_networks", "127.0.0.1/32");
    (f.standalone(), proxy_addr)
}

#[test]
fn the_header_names_the_client_for_logs_policy_and_limits() {
    let mut f = Fixture::new();
    f.set_config("plaintext_auth", "tls")
        .set_config("max_connections_per_ip", "1");
    f.write_mbox("alice", &mbox(&[MSG1]));
    let (server, proxy) = proxied_daemon(&mut f);

    // A loopback client behind the proxy may log in under `plaintext_auth = tls`...
    let mut c = server.connect_preamble(&proxy, &v1("127.0.0.5", 40000));
    assert!(c.greeting.starts_with("+OK"), "{}", c.greeting);
    c.login("alice", "secret");
    c.quit();
    // ...a remote one may not, although the proxy itself is on loopback.
    let mut remote = server.connect_preamble(&proxy, &v2_inet([192, 0, 2, 10], 40001));
    assert!(remote.greeting.starts_with("+OK"), "{}", remote.greeting);
    let capa = remote.ok_multi("CAPA");
    assert!(!show(&capa).contains("\r\nUSER\r\n"), "{}", show(&capa));
    assert!(!show(&capa).contains("XCLIENT"), "{}", show(&capa));
    let r = remote.cmd("USER alice");
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    // The per-client limit counts 192.0.2.10, not the proxy: a second connection of that
    // client is refused, another client (through the same proxy) is not.
    let mut again = server.connect_preamble(&proxy, &v1("192.0.2.10", 40002));
    assert!(
        again.greeting.starts_with("-ERR [SYS/TEMP]"),
        "{}",
        again.greeting
    );
    again.expect_eof();
    let mut other = server.connect_preamble(&proxy, &v1("192.0.2.11", 40003));
    assert!(other.greeting.starts_with("+OK"), "{}", other.greeting);
    other.quit();
    remote.quit();
    assert!(server.wait_for_log("session end: user=- peer=192.0.2.10"));
    let log = server.log();
    assert!(log.contains("login user=alice peer=127.0.0.5"), "{log}");
    assert!(
        log.contains("refused 192.0.2.10: too many connections"),
        "{log}"
    );
}

#[test]
fn without_a_valid_header_the_connection_closes_without_a_greeting() {
    let mut f = Fixture::new();
    let (server, proxy) = proxied_daemon(&mut f);
    // A POP3 client that connects directly sends nothing and waits for a greeting.
    let t = Instant::now();
    assert_eq!(show(&until_closed(&proxy, b"")), "");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    // One that speaks first, and a broken header, are closed at once.
    for bad in [
        &b"USER alice\r\n"[..],
        b"PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
    ] {
        let t = Instant::now();
        assert_eq!(show(&until_closed(&proxy, bad)), "", "{bad:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{bad:?}");
    }
    assert!(server.wait_for_log("no PROXY protocol header in time"));
    let log = server.log();
    assert!(log.contains(": no PROXY protocol header"), "{log}");
    assert!(log.contains("malformed PROXY v1 header"), "{log}");
    assert!(log.contains("PROXY v2 header of 65535"), "{log}");
    // The plain listener is unaffected.
    server.connect().quit();
}

#[test]
fn xclient_from_a_trusted_peer_names_the_client() {
    let mut f = Fixture::new();
    f.set_config("proxy_trusted_networks", "127.0.0.1");
    f.write_mbox("alice", &mbox(&[MSG1]));
    let server = f.standalone();
    let mut c = server.connect();
    assert!(c.greeting.starts_with("+OK [XCLIENT] "), "{}", c.greeting);
    let capa = show(&c.ok_multi("CAPA"));
    assert!(capa.contains("\r\nXCLIENT\r\n"), "{capa}");
    // What Dovecot's pop3 proxy sends, pipelined with USER.
    c.send(b"XCLIENT ADDR=198.51.100.4 PORT=4000 SESSION=AbCdEf123 TTL=4\r\nUSER alice\r\n");
    assert_eq!(c.line(), "+OK");
    assert!(c.line().starts_with("+OK"));
    let r = c.cmd("PASS wrong");
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    c.ok("USER alice");
    c.ok("PASS secret");
    c.quit();
    assert!(server.wait_for_log("session end: user=alice peer=198.51.100.4"));
    let log = server.log();
    assert!(
        log.contains("authentication failed: peer=198.51.100.4 user=alice failures=1"),
        "{log}"
    );
    assert!(
        log.contains("xclient: proxy=127.0.0.1 peer=198.51.100.4 port=4000"),
        "{log}"
    );
    // Without trust, there is no XCLIENT.
    let mut f = Fixture::new();
    f.set_config("proxy_trusted_networks", "10.0.0.0/8");
    let server = f.standalone();
    let mut c = server.connect();
    assert_eq!(c.greeting, "+OK POP3 server ready");
    let r = c.cmd("XCLIENT ADDR=198.51.100.4 PORT=4000");
    assert!(r.starts_with("-ERR"), "{r}");
    c.quit();
}

#[test]
fn inetd_reads_the_header_from_stdin_with_dash_p() {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1]));
    let mut c = f.inetd_preamble(&["-f", "-P"], &v2_inet([203, 0, 113, 9], 5555));
    assert!(c.greeting.starts_with("+OK"), "{}", c.greeting);
    c.login("alice", "secret");
    c.quit();
    assert!(c.wait().success());
    assert!(
        c.log().contains("login user=alice peer=203.0.113.9"),
        "{}",
        c.log()
    );
    let mut c = f.inetd_preamble(&["-f", "--proxy"], b"USER alice\r\n");
    assert_eq!(c.greeting, "", "no greeting without a header");
    c.wait();
    assert!(c.log().contains("no PROXY protocol header"), "{}", c.log());
}

// ---- the real HAProxy ---------------------------------------------------------------------

struct Haproxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start_haproxy(dir: &std::path::Path, listens: &[(String, String, &str)]) -> Haproxy {
    let mut cfg = String::from(
        "global\n    maxconn 200\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
         timeout client 60s\n    timeout server 60s\n",
    );
    for (i, (front, back, extra)) in listens.iter().enumerate() {
        cfg.push_str(&format!(
            "\nlisten pop{i}\n    bind {front}\n    server b{i} {back} send-proxy-v2{extra}\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    fs::write(&path, cfg).expect("haproxy.cfg");
    let log = dir.join("haproxy.log");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(fs::File::create(&log).expect("log")))
        .stderr(Stdio::from(
            fs::File::create(dir.join("haproxy.err")).expect("err"),
        ))
        .spawn()
        .expect("spawn haproxy");
    let mut h = Haproxy { child, log };
    let deadline = Instant::now() + PATIENCE;
    for (front, _, _) in listens {
        while std::net::TcpStream::connect(front).is_err() {
            if let Ok(Some(st)) = h.child.try_wait() {
                panic!(
                    "haproxy exited: {st}: {}",
                    fs::read_to_string(dir.join("haproxy.err")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "haproxy never listened on {front}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = &h.log;
    h
}

fn curl_from(source: &str, front: &str, path: &str) -> std::process::Output {
    curl_scheme(source, "pop3", front, path)
}

fn curl_scheme(source: &str, scheme: &str, front: &str, path: &str) -> std::process::Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30", "--insecure"])
        .args(["--interface", source])
        .arg(format!("{scheme}://alice:secret@{front}/{path}"))
        .output()
        .expect("run curl")
}

/// One fetch-and-delete pass over `front`: the Message-IDs retrieved, or `None` when the
/// session did not commit (locked out, or QUIT failed) so nothing it saw was deleted.
fn drain_once(front: &str) -> Option<Vec<String>> {
    let mut c = connect_preamble(front, b"", None);
    if !c.greeting.starts_with("+OK") {
        return None;
    }
    c.ok("USER alice");
    let r = c.cmd("PASS secret");
    if !r.starts_with("+OK") {
        assert!(r.contains("[IN-USE]"), "{r}");
        return None;
    }
    let stat = c.ok("STAT");
    let n: usize = stat
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("STAT");
    let mut ids = Vec::new();
    for i in 1..=n {
        let msg = show(&c.ok_multi(&format!("RETR {i}")));
        let id = msg
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .expect("Message-ID")
            .to_string();
        ids.push(id);
        c.ok(&format!("DELE {i}"));
    }
    let r = c.quit();
    r.starts_with("+OK").then_some(ids)
}

#[test]
fn haproxy_send_proxy_v2_in_front_of_two_daemons_on_one_spool() {
    if require("haproxy").is_none() || require("curl").is_none() {
        println!("SKIPPED: haproxy or curl not installed");
        return;
    }
    let mut f = Fixture::new();
    f.set_config("lock_timeout", "5s");
    f.write_mbox("alice", &mbox(&[MSG1]));
    let b1 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let b2 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let tls1 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    // A throwaway certificate: behind the proxy, TLS ends at the backends.
    let (st, _, err) = run(Command::new("openssl")
        .current_dir(f.path())
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
        ]));
    assert!(st.success(), "openssl: {err}");
    let cert = f.path().join("cert.pem").display().to_string();
    let key = f.path().join("key.pem").display().to_string();
    f.set_config("tls_cert", &cert).set_config("tls_key", &key);
    f.set_config("proxy_trusted_networks", "127.0.0.1/32");
    f.set_config("proxy_listen", &b1);
    f.set_config("proxy_tls_listen", &tls1);
    let s1 = f.standalone();
    f.set_config("proxy_listen", &b2);
    let tls2 = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    f.set_config("proxy_tls_listen", &tls2);
    let s2 = f.standalone();
    let fronts: Vec<String> = (0..4)
        .map(|_| format!("127.0.0.1:{}", free_port("127.0.0.1")))
        .collect();
    let _haproxy = start_haproxy(
        f.path(),
        &[
            (fronts[0].clone(), b1.clone(), ""),
            (fronts[1].clone(), b2.clone(), ""),
            // A real header, but sent from an address the backends do not trust.
            (fronts[2].clone(), b1.clone(), " source 127.0.0.3"),
            // Implicit TLS: the header goes first, the handshake follows.
            (fronts[3].clone(), tls1.clone(), ""),
        ],
    );
    let out = curl_scheme("127.0.0.4", "pop3s", &fronts[3], "");
    assert!(
        out.status.success(),
        "pop3s via haproxy: {}",
        show(&out.stderr)
    );
    assert_eq!(show(&out.stdout), format!("1 {}\r\n", wire(MSG1).len()));
    assert!(
        s1.wait_for_log("login user=alice peer=127.0.0.4 "),
        "{}",
        s1.log()
    );

    // Each client's own address reaches both backends.
    for source in ["127.0.0.2", "127.0.0.3"] {
        for front in &fronts[..2] {
            let out = curl_from(source, front, "");
            assert!(
                out.status.success(),
                "curl via {front} from {source}: {}",
                show(&out.stderr)
            );
            assert_eq!(show(&out.stdout), format!("1 {}\r\n", wire(MSG1).len()));
        }
    }
    for (s, name) in [(&s1, "backend 1"), (&s2, "backend 2")] {
        for source in ["127.0.0.2", "127.0.0.3"] {
            assert!(
                s.wait_for_log(&format!("login user=alice peer={source} ")),
                "{name} never logged {source}:\n{}",
                s.log()
            );
        }
        assert!(
            !s.log().contains("login user=alice peer=127.0.0.1 "),
            "{}",
            s.log()
        );
    }

    // Two sessions of one user through different backends exclude each other.
    let mut first = connect_preamble(&fronts[0], b"", None);
    first.login("alice", "secret");
    let mut second = connect_preamble(&fronts[1], b"", None);
    second.ok("USER alice");
    let r = second.cmd("PASS secret");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}\n{}", s2.log());
    // A root daemon that took the user's identity ends the session there.
    drop(second);
    first.quit();

    // A header from an untrusted address, and a direct connection without one, are refused.
    let out = curl_from("127.0.0.2", &fronts[2], "");
    assert!(!out.status.success(), "{}", show(&out.stdout));
    assert!(s1.wait_for_log("refused 127.0.0.3"), "{}", s1.log());
    assert_eq!(show(&until_closed(&b2, b"USER alice\r\n")), "");
    assert!(
        s2.wait_for_log("closed connection from proxy 127.0.0.1"),
        "{}",
        s2.log()
    );

    // Retrieve and delete through both backends while an MDA delivers: nothing lost, nothing
    // twice.
    f.write_mbox("alice", b"");
    let total = 40;
    let done = Arc::new(AtomicBool::new(false));
    let mbox_path = f.mailbox("alice");
    let delivering = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            for i in 0..total {
                deliver(
                    &mbox_path,
                    &format!(
                        "From: mda@example.org\nSubject: m{i}\nMessage-ID: <{i}@mda>\n\nbody {i}\n"
                    ),
                );
                thread::sleep(Duration::from_millis(15));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut round = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let finished = done.load(Ordering::SeqCst);
        if let Some(ids) = drain_once(&fronts[round % 2]) {
            for id in ids {
                *seen.entry(id).or_default() += 1;
            }
        }
        round += 1;
        if finished && seen.len() >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {round} rounds: {seen:?}"
        );
    }
    delivering.join().expect("deliverer");
    // The last pass finds nothing left.
    assert_eq!(drain_once(&fronts[0]), Some(Vec::new()));
    let want: BTreeMap<String, usize> = (0..total).map(|i| (format!("<{i}@mda>"), 1)).collect();
    assert_eq!(seen, want, "after {round} rounds");
    println!("{round} fetch-and-delete rounds through two backends during {total} deliveries");
}
