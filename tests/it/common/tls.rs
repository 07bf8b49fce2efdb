//! Harness for the TLS integration tests: a generated PKI, a mail setup in a tempdir, and the
//! real `mboxpopd` binary in standalone mode (plain + implicit-TLS listeners on ephemeral
//! loopback ports) or in inetd mode over pipes.

pub mod certs;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use super::{binary, PATIENCE};
pub use certs::Pki;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";

pub const MSG1: &str = "From: Bob <bob@example.org>\nTo: alice@example.org\nSubject: one\n\n\
Hello over TLS.\n.a line starting with a dot\n";
pub const MSG2: &str = "From: Carol <carol@example.org>\nTo: alice@example.org\nSubject: two\n\n\
Second message.\n";

/// What a client receives for `msg`: CRLF line ends, no dot-stuffing.
pub fn crlf(msg: &str) -> String {
    msg.replace('\n', "\r\n")
}

pub fn free_port() -> u16 {
    super::free_port("127.0.0.1")
}

/// A PKI plus a mail setup: `passwd`, `mail/alice` (two messages), `mboxpopd.conf`.
pub struct Setup {
    pub pki: Pki,
    pub cert: PathBuf,
    pub key: PathBuf,
    extra: Vec<String>,
}

impl Setup {
    pub fn new() -> Setup {
        super::shared();
        let pki = Pki::new();
        let cert = pki.fullchain(&pki.cert, "fullchain.pem");
        let key = pki.key.clone();
        let setup = Setup {
            pki,
            cert,
            key,
            extra: Vec::new(),
        };
        fs::create_dir_all(setup.path("mail")).expect("mail dir");
        let passwd = setup.path("passwd");
        fs::write(&passwd, format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("passwd");
        // {PLAIN} secrets in a world-readable file draw a startup warning.
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600)).expect("chmod");
        let mbox = format!(
            "From bob@example.org Thu Nov 26 03:32:14 2026\n{MSG1}\n\
             From carol@example.org Thu Nov 26 03:33:14 2026\n{MSG2}\n"
        );
        fs::write(setup.mailbox(), mbox).expect("mbox");
        setup
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.pki.path(name)
    }

    pub fn mailbox(&self) -> PathBuf {
        self.path("mail").join(USER)
    }

    /// An extra `key = value` line for the configuration.
    pub fn config(&mut self, line: &str) -> &mut Self {
        self.extra.push(line.to_string());
        self
    }

    /// Write `mboxpopd.conf` for the given listeners (empty: none of that kind). Lines added
    /// with [`Setup::config`] replace the defaults with the same key.
    pub fn write_config(&self, listen: &str, tls_listen: &str) -> PathBuf {
        let mut lines = vec![
            format!("listen = {listen}"),
            String::from("hostname = localhost"),
            String::from("auth = passwd-file"),
            format!("passwd_file = {}", self.path("passwd").display()),
            format!("mailbox = {}/%u", self.path("mail").display()),
            format!("tls_cert = {}", self.cert.display()),
            format!("tls_key = {}", self.key.display()),
            String::from("auth_failure_delay = 0"),
            String::from("handshake_timeout = 5s"),
        ];
        if !tls_listen.is_empty() {
            lines.push(format!("tls_listen = {tls_listen}"));
        }
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
        for extra in &self.extra {
            lines.retain(|l| key(l) != key(extra));
            lines.push(extra.clone());
        }
        let path = self.path("mboxpopd.conf");
        fs::write(&path, lines.join("\n") + "\n").expect("config");
        path
    }

    /// Start the daemon with a plain and an implicit-TLS listener.
    pub fn start(&self) -> Server {
        let port = free_port();
        let tls_port = free_port();
        let conf = self.write_config(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{tls_port}"),
        );
        let log = self.path("daemon.log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .args(["-d", "-f"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn mboxpopd -d -f");
        let mut server = Server {
            child,
            port,
            tls_port,
            log,
        };
        server.wait_ready();
        server
    }

    /// `mboxpopd -t` on the current configuration.
    pub fn check_config(&self) -> Output {
        let conf = self.write_config("127.0.0.1:1", "127.0.0.1:2");
        Command::new(binary())
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run mboxpopd -t")
    }

    /// `mboxpopd -d -f` that is expected to fail at startup; returns its output.
    pub fn start_failing(&self) -> Output {
        let conf = self.write_config(
            &format!("127.0.0.1:{}", free_port()),
            &format!("127.0.0.1:{}", free_port()),
        );
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .args(["-d", "-f"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!("mboxpopd kept running despite a bad TLS setup");
            }
            thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    }

    /// `mboxpopd -i [flags]` with pipes for stdin/stdout.
    pub fn inetd(&self, flags: &[&str]) -> Pipes {
        let conf = self.write_config("127.0.0.1:1", "");
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .arg("-i")
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mboxpopd -i");
        Pipes {
            stdin: Some(child.stdin.take().expect("stdin")),
            stdout: child.stdout.take().expect("stdout"),
            child,
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    log: PathBuf,
}

impl Server {
    fn wait_ready(&mut self) {
        let started = Instant::now();
        for port in [self.port, self.tls_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = self.child.try_wait().expect("try_wait") {
                    panic!("mboxpopd exited with {status}: {}", self.log());
                }
                assert!(started.elapsed() < PATIENCE, "mboxpopd did not listen");
                thread::sleep(Duration::from_millis(25));
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle` at least `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "log never had {count}× {needle:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Threads of the daemon process right now.
    pub fn threads(&self) -> usize {
        fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        s
    }

    pub fn connect_tls_port(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.tls_port)).expect("connect");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// inetd mode: the daemon's stdin and stdout as one stream.
#[derive(Debug)]
pub struct Pipes {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl Read for Pipes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Write for Pipes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        self.stdin.take();
        let started = Instant::now();
        while let Ok(None) = self.child.try_wait() {
            if started.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// A native-tls client trusting only the test CA.
pub fn connector(pki: &Pki) -> native_tls::TlsConnector {
    let ca = native_tls::Certificate::from_pem(&fs::read(&pki.ca).expect("ca")).expect("pem");
    native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .build()
        .expect("connector")
}

/// Line-oriented POP3 client over any stream.
pub struct Client<S: Read + Write> {
    reader: BufReader<S>,
}

impl<S: Read + Write> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a line");
        assert!(n > 0, "connection closed while a line was expected");
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(bytes).expect("send");
        s.flush().expect("flush");
    }

    pub fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.line()
    }

    /// Lines of a multi-line response up to (not including) the final ".".
    pub fn multiline(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line == ".\r\n" {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Read until the server closes the connection (EOF or reset); returns whether it did
    /// before sending 64 KiB (a TLS alert may come first).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
            }
        }
        false
    }

    pub fn into_inner(self) -> S {
        // Nothing may sit in the buffer when the stream changes hands (STLS).
        assert!(self.reader.buffer().is_empty(), "unread bytes before TLS");
        self.reader.into_inner()
    }
}

/// Run a command with `stdin` fed in, with a time limit; returns (status ok, stdout, stderr).
pub fn run(cmd: &mut Command, stdin: &[u8]) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
        // Keep stdin open a little so s_client does not quit before the server answers.
        thread::sleep(Duration::from_millis(300));
    });
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
