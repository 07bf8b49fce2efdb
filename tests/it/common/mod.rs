//! Shared harness for the integration tests: a temporary mail setup (config, passwd-file,
//! spool), the real `mboxpopd` binary started in inetd mode (pipes) or standalone mode (an
//! ephemeral loopback port), and a raw line client that checks the protocol byte by byte.
//! `tls` adds a generated PKI and a TLS client, `storage` the helpers of the tests that drive
//! the storage library directly, `isolation` the rule for which tests may run side by side.
#![allow(dead_code)]

pub mod isolation;
pub mod storage;
pub mod tls;

pub use isolation::{exclusive, shared, Exclusive};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expected event (a response line, a port to open, a process to exit)
/// may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The binary under test; `MBOXPOPD_BIN` runs the suite against another build.
pub fn binary() -> PathBuf {
    // Whatever runs the binary is at least a shared test.
    shared();
    match std::env::var_os("MBOXPOPD_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_mboxpopd")),
    }
}

/// A From_ line for fixture messages.
pub const FROM_LINE: &str = "From sender@example.org Thu Nov 26 03:32:14 2026";

/// An mbox (LF line ends) holding `messages`, each written as an MDA does: From_ line, the
/// message, then an empty separator line. Messages are given with LF line ends and must end
/// with a newline.
pub fn mbox(messages: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        assert!(m.ends_with('\n'), "fixture message must end with a newline");
        out.extend_from_slice(FROM_LINE.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(m.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The same mbox with every LF turned into CRLF (spools written by Windows tools, or copied).
pub fn mbox_crlf(messages: &[&str]) -> Vec<u8> {
    crlf(&mbox(messages))
}

/// LF → CRLF (input must not already contain CR).
pub fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 32);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// What a client must receive for `message` (LF line ends): CRLF line ends, not dot-stuffed.
/// Its length is the size STAT/LIST must report.
pub fn content(message: &str) -> Vec<u8> {
    crlf(message.as_bytes())
}

/// RETR's payload on the wire for `message`: CRLF line ends and dot-stuffing, without the
/// terminating ".\r\n".
pub fn wire(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in content(message).split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// Removes dot-stuffing from a multi-line payload (the inverse of [`wire`]).
pub fn unstuff(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    for line in payload.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b".") {
            Some(rest) => out.extend_from_slice(rest),
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// The header part of `message` up to and including the empty line, as TOP n 0 sends it.
pub fn top(message: &str, body_lines: usize) -> Vec<u8> {
    let (head, body) = match message.find("\n\n") {
        Some(i) => (&message[..i + 2], &message[i + 2..]),
        None => (message, ""),
    };
    let mut s = String::from(head);
    for line in body.split_inclusive('\n').take(body_lines) {
        s.push_str(line);
    }
    wire(&s)
}

/// Three ordinary messages used by many tests.
pub const MSG1: &str = "From: Alice <alice@example.org>\n\
To: bob@example.org\n\
Subject: first\n\
Message-ID: <1@example.org>\n\
\n\
Hello Bob.\n\
This is the first message.\n";

pub const MSG2: &str = "From: Carol <carol@example.org>\n\
To: bob@example.org\n\
Subject: dots and froms\n\
Message-ID: <2@example.org>\n\
\n\
A lone dot follows:\n\
.\n\
..two dots\n\
.leading dot\n\
>From a quoted line\n\
From the archive: unquoted, but it follows a text line, so no new message\n\
end.\n";

pub const MSG3: &str = "From: Dave <dave@example.org>\n\
To: bob@example.org\n\
Subject: third\n\
Message-ID: <3@example.org>\n\
\n\
Line one.\n\
\n\
Line three after an empty line.\n";

/// A throwaway mail setup: `dir/passwd`, `dir/spool/<user>` mailboxes, `dir/mboxpopd.conf`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    passwd: Vec<String>,
    config: Vec<String>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Users `alice` (password `secret`) and `bob` (password `hunter2`), no mailboxes yet.
    pub fn new() -> Self {
        shared();
        let dir = tempfile::Builder::new()
            .prefix("mboxpopd-test-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir(dir.path().join("spool")).expect("spool dir");
        // Like a private spool: only the owner (the test user, and so the daemon) writes it.
        fs::set_permissions(dir.path().join("spool"), fs::Permissions::from_mode(0o700))
            .expect("chmod spool");
        Fixture {
            dir,
            passwd: vec!["alice:{PLAIN}secret".into(), "bob:{PLAIN}hunter2".into()],
            config: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a raw passwd-file line.
    pub fn passwd_line(&mut self, line: &str) -> &mut Self {
        self.passwd.push(line.to_string());
        self
    }

    /// Adds (or overrides: later lines win in the harness' own defaults) a config line.
    pub fn config(&mut self, line: &str) -> &mut Self {
        self.config.push(line.to_string());
        self
    }

    /// Sets `key = value`, replacing an extra line with the same key set earlier.
    pub fn set_config(&mut self, key: &str, value: &str) -> &mut Self {
        self.config
            .retain(|l| l.split('=').next().unwrap_or("").trim() != key);
        self.config.push(format!("{key} = {value}"));
        self
    }

    pub fn mailbox(&self, user: &str) -> PathBuf {
        self.path().join("spool").join(user)
    }

    pub fn write_mbox(&self, user: &str, bytes: &[u8]) {
        let p = self.mailbox(user);
        fs::write(&p, bytes).expect("write mbox");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod mbox");
    }

    pub fn read_mbox(&self, user: &str) -> Vec<u8> {
        fs::read(self.mailbox(user)).expect("read mbox")
    }

    /// Waits (up to [`PATIENCE`]) until `user`'s mailbox holds `want`, as it does once a
    /// server process in another process tree (inetd, xinetd) has committed; then asserts it.
    pub fn wait_for_mbox(&self, user: &str, want: &[u8]) {
        let deadline = Instant::now() + PATIENCE;
        while self.read_mbox(user) != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            String::from_utf8_lossy(&self.read_mbox(user)),
            String::from_utf8_lossy(want)
        );
    }

    /// Files in the spool directory other than mailboxes of known users: lock files, journals
    /// or temporary files left behind.
    pub fn spool_leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path().join("spool"))
            .expect("read spool")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !self.passwd.iter().any(|l| l.split(':').next() == Some(n)))
            .collect();
        names.sort();
        names
    }

    /// Writes passwd-file and config; `listen` is the plain listener for standalone mode.
    pub fn write_config(&self, listen: &str) -> PathBuf {
        let passwd = self.path().join("passwd");
        fs::write(&passwd, self.passwd.join("\n") + "\n").expect("write passwd");
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut conf = format!(
            "# written by tests/common\n\
             listen = {listen}\n\
             hostname = test.example\n\
             auth = passwd-file\n\
             passwd_file = {passwd}\n\
             mailbox = {spool}/%u\n\
             plaintext_auth = always\n\
             auth_failure_delay = 0\n\
             lock_timeout = 2s\n\
             index_cache_dir = {cache}\n",
            passwd = passwd.display(),
            spool = self.path().join("spool").display(),
            // Each fixture its own index cache: tests never share (or leave) cache files.
            cache = self.path().join("index-cache").display(),
        );
        // Extra lines replace a default with the same key: the parser may reject duplicates.
        let keys: Vec<&str> = self
            .config
            .iter()
            .map(|l| l.split('=').next().unwrap_or("").trim())
            .collect();
        conf = conf
            .lines()
            .filter(|l| !keys.contains(&l.split('=').next().unwrap_or("").trim()))
            .map(|l| format!("{l}\n"))
            .collect();
        for l in &self.config {
            conf.push_str(l);
            conf.push('\n');
        }
        let path = self.path().join("mboxpopd.conf");
        fs::write(&path, conf).expect("write config");
        path
    }

    fn stderr_file(&self, name: &str) -> (PathBuf, File) {
        let p = self.path().join(name);
        let f = File::create(&p).expect("stderr log");
        (p, f)
    }

    /// One inetd-mode session (`mboxpopd -i -f`) over pipes; logs go to a file.
    pub fn inetd(&self) -> Conn {
        self.inetd_with(&["-f"])
    }

    /// An inetd-mode session with extra command-line flags after `-c FILE -i`.
    pub fn inetd_with(&self, flags: &[&str]) -> Conn {
        self.inetd_preamble(flags, b"").checked()
    }

    /// An inetd-mode session over pipes whose input starts with `preamble` (a PROXY header
    /// for `-P`), written before the greeting is read. Whatever the first line is.
    pub fn inetd_preamble(&self, flags: &[&str], preamble: &[u8]) -> Conn {
        let conf = self.write_config("127.0.0.1:1");
        let n = next_id();
        let (log, errf) = self.stderr_file(&format!("inetd-{n}.log"));
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .arg("-i")
            .args(flags)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errf))
            .spawn()
            .expect("spawn mboxpopd -i");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(preamble).expect("write preamble");
        Conn::new(
            Box::new(stdout),
            Writer::Pipe(Some(stdin)),
            Some(child),
            Some(log),
        )
    }

    /// One inetd-mode session the way inetd and systemd `Accept=yes` start it: the accepted
    /// TCP socket is the process's stdin and stdout.
    pub fn inetd_socket(&self) -> Conn {
        use std::os::fd::OwnedFd;
        let conf = self.write_config("127.0.0.1:1");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let n = next_id();
        let (log, errf) = self.stderr_file(&format!("inetd-socket-{n}.log"));
        let stdin = OwnedFd::from(accepted.try_clone().expect("dup socket"));
        let child = Command::new(binary())
            .arg("-c")
            .arg(&conf)
            .args(["-i", "-f"])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(OwnedFd::from(accepted)))
            .stderr(Stdio::from(errf))
            .spawn()
            .expect("spawn mboxpopd -i");
        client.set_nodelay(true).ok();
        let r = client.try_clone().expect("clone stream");
        Conn::new(Box::new(r), Writer::Tcp(client), Some(child), Some(log)).checked()
    }

    /// Starts a standalone daemon on a free loopback port.
    pub fn standalone(&self) -> Server {
        self.standalone_on("127.0.0.1")
    }

    /// Starts a standalone daemon on a free port of `host` (`127.0.0.1` or `[::1]`).
    pub fn standalone_on(&self, host: &str) -> Server {
        self.standalone_env(host, &[])
    }

    /// A standalone daemon with extra environment variables (e.g. the fault-injection ones).
    pub fn standalone_env(&self, host: &str, env: &[(&str, String)]) -> Server {
        let mut last = String::new();
        // A port found free may be taken before the daemon binds it: retry with another.
        for _ in 0..5 {
            let port = free_port(host);
            let addr = format!("{host}:{port}");
            let conf = self.write_config(&addr);
            let n = next_id();
            let (log, errf) = self.stderr_file(&format!("daemon-{n}.log"));
            let child = Command::new(binary())
                .arg("-c")
                .arg(&conf)
                .arg("-d")
                .arg("-f")
                .env("RUST_LOG", "debug")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(errf))
                .spawn()
                .expect("spawn mboxpopd -d");
            let mut server = Server {
                child: Some(child),
                addr: addr.clone(),
                log,
            };
            match server.wait_listening() {
                Ok(()) => return server,
                Err(e) => last = format!("{e}; log:\n{}", server.log()),
            }
        }
        panic!("standalone daemon did not come up: {last}");
    }
}

fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A TCP connection to `addr` that sends `preamble` before reading the first line.
pub fn connect_preamble(addr: &str, preamble: &[u8], log: Option<PathBuf>) -> Conn {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    s.write_all(preamble).expect("write preamble");
    let r = s.try_clone().expect("clone stream");
    Conn::new(Box::new(r), Writer::Tcp(s), None, log)
}

/// Connects to `addr`, sends `preamble`, and returns what arrives before the server closes
/// the connection (panics if it stays open longer than [`PATIENCE`]).
pub fn until_closed(addr: &str, preamble: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).ok();
    let _ = s.write_all(preamble);
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("{addr} did not close the connection: {e}; got {got:?}"),
    }
}

/// Whether the tests run as root (effective uid 0), read from /proc.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A port nobody listens on right now (bind :0, read it, close), and one no other test in
/// this process was given: all tests share one process, and a port handed out is often bound
/// only later by the daemon.
pub fn free_port(host: &str) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind(format!("{host}:0")).expect("bind ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether the machine has a usable IPv6 loopback.
pub fn have_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// A running standalone daemon; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    log: PathBuf,
}

impl Server {
    /// Starts `cmd`, which must run a daemon listening on `addr` (e.g. the `make run` demo
    /// script, which execs mboxpopd), with stderr going to `log`.
    pub fn spawn(mut cmd: Command, addr: &str, log: PathBuf) -> Server {
        let errf = File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(errf))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut server = Server {
            child: Some(child),
            addr: addr.to_string(),
            log,
        };
        if let Err(e) = server.wait_listening() {
            panic!("{e}; log:\n{}", server.log());
        }
        server
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(format!("daemon exited early: {st}"));
                }
            }
            if TcpStream::connect(&self.addr).is_ok() {
                // That probe connection counts as a session the daemon will log; fine.
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("daemon never accepted a connection".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// The host part as clients write it in URLs (`127.0.0.1` or `[::1]`).
    pub fn host(&self) -> &str {
        let i = self.addr.rfind(':').expect("host:port");
        &self.addr[..i]
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A connection whose greeting must be `+OK`.
    pub fn connect(&self) -> Conn {
        self.connect_any().checked()
    }

    /// A connection from the loopback address `source` (127.0.0.2, ...): a distinct client.
    pub fn connect_from(&self, source: &str) -> Conn {
        let s = tcp_from(source, &self.addr);
        s.set_nodelay(true).ok();
        let r = s.try_clone().expect("clone stream");
        Conn::new(Box::new(r), Writer::Tcp(s), None, Some(self.log.clone())).checked()
    }

    /// A connection whatever its first line (limits answer `-ERR [SYS/TEMP]` instead).
    pub fn connect_any(&self) -> Conn {
        let s = TcpStream::connect(&self.addr).expect("connect to daemon");
        s.set_nodelay(true).ok();
        let r = s.try_clone().expect("clone stream");
        Conn::new(Box::new(r), Writer::Tcp(s), None, Some(self.log.clone()))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A connection to `addr` (e.g. the daemon's proxy listener) that sends `preamble` (a
    /// PROXY header) first; whatever the greeting. The log is this server's.
    pub fn connect_preamble(&self, addr: &str, preamble: &[u8]) -> Conn {
        connect_preamble(addr, preamble, Some(self.log.clone()))
    }

    /// `curl pop3://alice:secret@ADDR/PATH` with `extra` options; asserts success and returns
    /// what curl printed.
    pub fn curl(&self, path: &str, extra: &[&str]) -> Vec<u8> {
        let url = format!("pop3://alice:secret@{}/{path}", self.addr);
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {extra:?} {url}: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }

    /// Waits until the daemon's log contains `needle` (a session's last log line may be
    /// written just after the client saw the connection close).
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        let st = send_signal(sig, self.pid());
        assert!(st.success(), "kill -{sig} failed");
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, PATIENCE).unwrap_or_else(|| {
            child.kill().ok();
            panic!("daemon ignored SIGTERM; log:\n{}", self.log());
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal("TERM", child.id());
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                child.kill().ok();
                child.wait().ok();
            }
        }
    }
}

/// `kill -s SIG PID` through sh's builtin: minimal systems may lack procps' /bin/kill, and
/// the tests keep `unsafe` (libc::kill) out.
fn send_signal(sig: &str, pid: u32) -> ExitStatus {
    Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {sig} {pid}"))
        .status()
        .expect("run sh -c kill")
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

enum Writer {
    Pipe(Option<ChildStdin>),
    Tcp(TcpStream),
}

/// A raw POP3 client connection (inetd pipes or TCP). Reads happen on a helper thread so
/// that every read has a deadline ([`PATIENCE`]) and a misbehaving server fails the test
/// rather than hanging it.
pub struct Conn {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    eof: bool,
    w: Writer,
    child: Option<Child>,
    log: Option<PathBuf>,
    /// The greeting line without CRLF.
    pub greeting: String,
    /// Every byte received so far (for failure messages).
    pub transcript: Vec<u8>,
}

impl Conn {
    /// The pid of the inetd-mode server process behind this connection, if there is one.
    pub fn server_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn new(
        mut r: Box<dyn Read + Send>,
        w: Writer,
        child: Option<Child>,
        log: Option<PathBuf>,
    ) -> Conn {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(chunk[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut c = Conn {
            rx,
            buf: Vec::new(),
            eof: false,
            w,
            child,
            log,
            greeting: String::new(),
            transcript: Vec::new(),
        };
        // A server that closes without a greeting (a refused PROXY header) leaves it empty.
        c.greeting = match c.raw_line() {
            Some(l) => String::from_utf8_lossy(&l).trim_end().to_string(),
            None => String::new(),
        };
        c
    }

    fn checked(self) -> Conn {
        assert!(
            self.greeting.starts_with("+OK"),
            "greeting {:?}; log:\n{}",
            self.greeting,
            self.log()
        );
        self
    }

    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(bytes) => {
                self.transcript.extend_from_slice(&bytes);
                self.buf.extend_from_slice(&bytes);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "timed out waiting for the server; received so far:\n{}\nlog:\n{}",
                String::from_utf8_lossy(&self.transcript),
                self.log()
            ),
        }
    }

    /// The next line including its line end; `None` at EOF.
    pub fn raw_line(&mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Some(self.buf.drain(..=i).collect());
            }
            if !self.fill(deadline) {
                assert!(
                    self.buf.is_empty(),
                    "connection closed mid-line: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    /// The next line, which must end in CRLF, without it.
    pub fn line(&mut self) -> String {
        let l = self.raw_line().unwrap_or_else(|| {
            panic!(
                "connection closed; expected a line. received:\n{}\nlog:\n{}",
                String::from_utf8_lossy(&self.transcript),
                self.log()
            )
        });
        assert!(l.ends_with(b"\r\n"), "line without CRLF: {l:?}");
        assert!(l.len() <= 512, "response line over 512 octets (RFC 2449)");
        String::from_utf8(l[..l.len() - 2].to_vec()).expect("UTF-8 response line")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.w {
            Writer::Pipe(Some(p)) => p.write_all(bytes).and_then(|_| p.flush()),
            Writer::Pipe(None) => Err(io::Error::other("stdin closed")),
            Writer::Tcp(s) => s.write_all(bytes),
        };
        r.expect("send to server");
    }

    /// Like [`send`](Self::send) but tolerates a server that already hung up.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.w {
            Writer::Pipe(Some(p)) => p.write_all(bytes).and_then(|_| p.flush()),
            Writer::Pipe(None) => Err(io::Error::other("stdin closed")),
            Writer::Tcp(s) => s.write_all(bytes),
        }
    }

    /// Sends `command` + CRLF and returns the status line.
    pub fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.line()
    }

    /// Sends a command that must succeed and returns its status line.
    pub fn ok(&mut self, command: &str) -> String {
        let l = self.cmd(command);
        assert!(
            l.starts_with("+OK"),
            "{command:?} -> {l:?}; log:\n{}",
            self.log()
        );
        l
    }

    /// Sends a command that must fail and returns its status line.
    pub fn err(&mut self, command: &str) -> String {
        let l = self.cmd(command);
        assert!(
            l.starts_with("-ERR"),
            "{command:?} -> {l:?} (expected -ERR)"
        );
        l
    }

    /// Reads a multi-line payload up to the terminating ".\r\n"; returns it raw (still
    /// dot-stuffed), without the terminator.
    pub fn multi(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let l = self
                .raw_line()
                .expect("connection closed inside a multi-line response");
            assert!(
                l.ends_with(b"\r\n"),
                "multi-line response line without CRLF: {l:?}"
            );
            if l == b".\r\n" {
                return out;
            }
            out.extend_from_slice(&l);
        }
    }

    /// A multi-line payload as text lines (dot-stuffing removed).
    pub fn multi_lines(&mut self) -> Vec<String> {
        let raw = unstuff(&self.multi());
        String::from_utf8(raw)
            .expect("UTF-8 listing")
            .split_terminator("\r\n")
            .map(str::to_string)
            .collect()
    }

    /// Sends a multi-line command that must succeed; returns the raw payload.
    pub fn ok_multi(&mut self, command: &str) -> Vec<u8> {
        self.ok(command);
        self.multi()
    }

    /// USER/PASS login that must succeed.
    pub fn login(&mut self, user: &str, pass: &str) {
        self.ok(&format!("USER {user}"));
        self.ok(&format!("PASS {pass}"));
    }

    /// Asserts the server closes the connection next (no further bytes).
    pub fn expect_eof(&mut self) {
        if let Some(l) = self.raw_line() {
            panic!(
                "expected the server to hang up, got {:?}",
                String::from_utf8_lossy(&l)
            );
        }
    }

    /// Closes our sending side (the client vanishes without QUIT).
    pub fn hang_up(&mut self) {
        match &mut self.w {
            Writer::Pipe(p) => {
                p.take();
            }
            Writer::Tcp(s) => {
                s.shutdown(Shutdown::Write).ok();
            }
        }
    }

    /// Inetd mode: waits for the session process to exit (after QUIT or a hang-up).
    pub fn wait(&mut self) -> ExitStatus {
        self.hang_up();
        let child = self.child.as_mut().expect("inetd session");
        match wait_timeout(child, PATIENCE) {
            Some(st) => st,
            None => {
                child.kill().ok();
                panic!("session process did not exit; log:\n{}", self.log());
            }
        }
    }

    /// QUIT, its +OK, then the hang-up (and, in inetd mode, the process exit).
    pub fn quit(&mut self) -> String {
        let l = self.ok("QUIT");
        self.expect_eof();
        if self.child.is_some() {
            let st = self.wait();
            assert!(
                st.success(),
                "session exited with {st}; log:\n{}",
                self.log()
            );
        }
        l
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The reader thread holds a clone of the socket: without an explicit shutdown the
        // connection would stay open after the test drops its end.
        if let Writer::Tcp(s) = &self.w {
            s.shutdown(Shutdown::Both).ok();
        }
        if let Some(mut c) = self.child.take() {
            self.w = Writer::Pipe(None);
            if wait_timeout(&mut c, Duration::from_secs(5)).is_none() {
                c.kill().ok();
                c.wait().ok();
            }
        }
    }
}

/// Appends a message the way an MDA does: dot-lock `<mbox>.lock` created with O_EXCL,
/// append, remove the lock. procmail (dot-lock + fcntl) is used when installed, since it is
/// a real MDA.
pub fn deliver(mbox_path: &Path, message: &str) {
    if let Some(procmail) = which("procmail") {
        let child = procmail_delivery(&procmail, mbox_path, message, &[]);
        let out = child.wait_with_output().expect("procmail");
        assert!(
            out.status.success(),
            "procmail failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let lock = PathBuf::from(format!("{}.lock", mbox_path.display()));
    let deadline = Instant::now() + PATIENCE;
    loop {
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("dot-lock {}: {e}", lock.display()),
        }
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(mbox_path)
        .expect("open mbox for append");
    f.write_all(&mbox(&[message])).expect("append");
    f.sync_all().expect("fsync");
    fs::remove_file(&lock).expect("remove dot-lock");
}

/// Starts procmail delivering `message` to `mbox_path` (dot-lock, then fcntl, as Debian's
/// procmail does) and returns it running; `vars` are extra `NAME=value` assignments such as
/// `LOCKSLEEP=1`.
pub fn procmail_delivery(procmail: &Path, mbox_path: &Path, message: &str, vars: &[&str]) -> Child {
    // An empty rcfile delivers to $DEFAULT.
    let dir = mbox_path.parent().expect("spool dir");
    let rc = dir.join("..").join("procmailrc");
    fs::write(&rc, "").expect("rcfile");
    let mut child = Command::new(procmail)
        .arg("-p")
        .arg("-m")
        .arg(format!("DEFAULT={}", mbox_path.display()))
        .arg("LOGFILE=/dev/null")
        .args(vars)
        .arg(&rc)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn procmail");
    let msg = format!("{FROM_LINE}\n{message}");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(msg.as_bytes())
        .expect("feed procmail");
    child
}

/// The full path of an installed program, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Returns the program path, or prints why the test is skipped and returns `None`.
pub fn require(program: &str) -> Option<PathBuf> {
    let p = which(program);
    if p.is_none() {
        eprintln!("SKIPPED: `{program}` is not installed (.ci/run installs it)");
    }
    p
}

/// Runs a command with a deadline, returning (status, stdout, stderr).
pub fn run(cmd: &mut Command) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let to = thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).ok();
        v
    });
    let te = thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).ok();
        v
    });
    let st = match wait_timeout(&mut child, Duration::from_secs(60)) {
        Some(st) => st,
        None => {
            child.kill().ok();
            child.wait().ok();
            panic!("{cmd:?} did not finish in 60 s");
        }
    };
    let o = to.join().unwrap_or_default();
    let e = te.join().unwrap_or_default();
    (
        st,
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    )
}

/// Splits an mbox into its messages (From_ line and separator line removed), for checking
/// what a commit left or what a client delivered. LF files only.
pub fn split_mbox(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut prev_empty = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if prev_empty && line.starts_with(b"From ") {
            if let Some(last) = msgs.last_mut() {
                if last.ends_with(b"\n\n") {
                    last.pop();
                }
            }
            msgs.push(Vec::new());
        } else if let Some(last) = msgs.last_mut() {
            last.extend_from_slice(line);
        }
        prev_empty = line == b"\n";
    }
    if let Some(last) = msgs.last_mut() {
        if last.ends_with(b"\n\n") {
            last.pop();
        }
    }
    msgs
}

/// Bytes as text for readable assertion failures (`assert_eq!(show(a), show(b))`).
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A TCP connection to `addr` whose source address is `source` (any loopback address works
/// on Linux without configuration), so one test can play many clients.
pub fn tcp_from(source: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let target: std::net::SocketAddr = addr.parse().expect("server address");
    let src: std::net::SocketAddr = format!("{source}:0").parse().expect("source address");
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None).expect("socket");
    socket.bind(&src.into()).expect("bind source address");
    socket.connect(&target.into()).expect("connect to daemon");
    socket.into()
}

/// Whether a system tool is installed in one of the usual directories.
pub fn tool(name: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).is_file())
}

/// useradd, chpasswd and userdel fail rather than wait when another holds /etc/passwd's lock:
/// the tests of one crate run in parallel threads and take turns.
pub static SHADOW_TOOLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A throwaway system account made with useradd and chpasswd (the distribution's default
/// hash), deleted on drop.
pub struct SystemAccount {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl SystemAccount {
    pub fn create(tag: &str, password: &str) -> SystemAccount {
        shared();
        let _one_at_a_time = SHADOW_TOOLS.lock().unwrap_or_else(|e| e.into_inner());
        // Unique per call, not just per process: every test module shares this process, and
        // two of them may pick the same tag.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("mbxt{}{}n{n}", tag, std::process::id() % 100_000);
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "-d", "/nonexistent", &name])
            .status()
            .expect("useradd")
            .success();
        assert!(ok, "useradd {name}");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("write");
        assert!(chpasswd.wait().expect("wait").success(), "chpasswd");
        let line = fs::read_to_string("/etc/passwd")
            .expect("passwd")
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .expect("account in /etc/passwd")
            .to_string();
        let f: Vec<&str> = line.split(':').collect();
        SystemAccount {
            name,
            uid: f[2].parse().expect("uid"),
            gid: f[3].parse().expect("gid"),
        }
    }

    /// The account's hash in /etc/shadow.
    pub fn shadow_hash(&self) -> String {
        fs::read_to_string("/etc/shadow")
            .expect("shadow")
            .lines()
            .find(|l| l.starts_with(&format!("{}:", self.name)))
            .and_then(|l| l.split(':').nth(1).map(str::to_string))
            .expect("shadow entry")
    }
}

impl Drop for SystemAccount {
    fn drop(&mut self) {
        let _one_at_a_time = SHADOW_TOOLS.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..20 {
            match Command::new("userdel").arg(&self.name).status() {
                Ok(st) if st.success() => return,
                // Exit 10: /etc/passwd is locked by a concurrent useradd; try again.
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// `mboxpopd -c CONF -i -f` over pipes with extra environment variables (the fault-injection
/// ones), its log on stderr: for tests that drive the process and its exit themselves.
pub fn spawn_inetd(conf: &Path, env: &[(&str, String)]) -> Child {
    Command::new(binary())
        .arg("-c")
        .arg(conf)
        .args(["-i", "-f"])
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mboxpopd -i")
}

/// Dovecot's pop3 binary as Debian installs it.
pub const DOVECOT_POP3: &str = "/usr/lib/dovecot/pop3";

/// Whether Dovecot's pop3 can be run for a differential check (its binary, root, setpriv).
pub fn dovecot_available() -> bool {
    Path::new(DOVECOT_POP3).exists() && is_root() && which("setpriv").is_some()
}

/// Dovecot's pop3 as `nobody` on stdin/stdout, already logged in, serving a copy of `mbox` as
/// its INBOX (in-memory index); `extra_conf` is appended to its configuration. The directory
/// must outlive the child.
pub fn spawn_dovecot_pop3(mbox: &[u8], extra_conf: &str) -> (tempfile::TempDir, Child) {
    let tmp = tempfile::Builder::new()
        .prefix("mboxpopd-dovecot-")
        .tempdir()
        .expect("tempdir");
    let d = tmp.path();
    let mode = |p: &Path, m| fs::set_permissions(p, fs::Permissions::from_mode(m));
    mode(d, 0o777).expect("chmod");
    fs::create_dir(d.join("mail")).expect("mkdir");
    mode(&d.join("mail"), 0o777).expect("chmod");
    fs::write(d.join("mail/inbox"), mbox).expect("write");
    mode(&d.join("mail/inbox"), 0o666).expect("chmod");
    let conf = format!(
        "base_dir = {d}/run\nlog_path = {d}/log\nprotocols = pop3\nssl = no\n\
         mail_location = mbox:{d}/mail:INBOX={d}/mail/inbox:INDEX=MEMORY\n{extra_conf}",
        d = d.display()
    );
    fs::write(d.join("dovecot.conf"), conf).expect("conf");
    let child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(DOVECOT_POP3)
        .arg("-c")
        .arg(d.join("dovecot.conf"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("USER", "nobody")
        .env("HOME", d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dovecot pop3");
    (tmp, child)
}
