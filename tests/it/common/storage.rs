//! Shared helpers for the storage integration tests: mbox fixtures, a splitter that checks a
//! spool message by message, and re-running this test binary as a child process that crashes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::index::{index_mbox, IndexOptions};
use mboxpopd::storage::mailbox::{Mailbox, MailboxOptions};

pub fn options() -> MailboxOptions {
    super::shared();
    MailboxOptions {
        format: MboxFormat::Mboxo,
        uidl: UidlFormat::Native,
        hold_mda_locks: false,
        dotlock_use_link: false,
        // A crashed child leaves its dot-lock behind; its pid is gone, so take it over at once.
        dotlock_stale_age: Duration::ZERO,
        lock_timeout: Duration::from_secs(20),
        owner_uid: None,
        journal_writers: Vec::new(),
    }
}

/// (UIDL, size) of every visible message.
pub type View = Vec<(String, u64)>;

/// What a session opening `path` with [`options`] lists (`Err`: the open failed).
pub fn session_view(path: &Path) -> Result<View, String> {
    let mb = Mailbox::open(path, &options()).map_err(|e| e.to_string())?;
    Ok(mb
        .messages()
        .into_iter()
        .map(|m| (m.uidl, m.size))
        .collect())
}

/// The same from one scan of `bytes` (`Err`: not an mbox).
pub fn index_view(bytes: &[u8]) -> Result<View, String> {
    let o = options();
    let opts = IndexOptions {
        format: o.format,
        uidl: o.uidl,
    };
    let idx = index_mbox(bytes, &opts).map_err(|_| String::from("not an mbox"))?;
    Ok(idx
        .messages
        .iter()
        .filter(|m| !m.hidden)
        .map(|m| (m.uidl.to_string(), m.size))
        .collect())
}

/// [`index_view`] of the file at `path`.
pub fn full_view(path: &Path) -> Result<View, String> {
    index_view(&std::fs::read(path).map_err(|e| e.to_string())?)
}

/// Let the last change of a file age past the cache's racy window, so the next session may
/// cache its state.
pub fn settle() {
    std::thread::sleep(mboxpopd::storage::cache::RACY + Duration::from_millis(10));
}

/// One mbox message (From_ line to the blank separator line included), `body_lines` long,
/// identified by `tag` in its Message-ID. Bodies hold dot lines and quoted From lines.
pub fn message(tag: &str, body_lines: usize) -> Vec<u8> {
    super::shared();
    let mut m = format!(
        "From sender@example.org Thu Nov 26 03:32:14 2026\nFrom: a@example.org\n\
         Subject: message {tag}\nMessage-ID: <{tag}@test>\n\n"
    )
    .into_bytes();
    for i in 0..body_lines {
        match i % 17 {
            5 => m.extend_from_slice(b".\n"),
            11 => m.extend_from_slice(format!(">From the body of {tag}\n").as_bytes()),
            _ => m.extend_from_slice(
                format!("line {i} of {tag}: lorem ipsum dolor sit amet\n").as_bytes(),
            ),
        }
    }
    m.push(b'\n');
    m
}

pub fn mbox(messages: &[Vec<u8>]) -> Vec<u8> {
    messages.concat()
}

/// Split a spool into messages at From_ lines that start the file or follow a blank line.
pub fn split(spool: &[u8]) -> Vec<&[u8]> {
    super::shared();
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < spool.len() {
        if spool[pos..].starts_with(b"From ") && (pos == 0 || spool[..pos].ends_with(b"\n\n")) {
            starts.push(pos);
        }
        pos = match memchr::memchr(b'\n', &spool[pos..]) {
            Some(i) => pos + i + 1,
            None => spool.len(),
        };
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| &spool[s..starts.get(i + 1).copied().unwrap_or(spool.len())])
        .collect()
}

/// The Message-ID tag of a stored message.
pub fn tag_of(message: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(message);
    let start = s.find("Message-ID: <")? + "Message-ID: <".len();
    let end = s[start..].find("@test>")? + start;
    Some(s[start..end].to_owned())
}

/// Re-run this test binary, running only the ignored helper test `name` of the caller's
/// module (a top-level test of the calling file), with `env`.
#[track_caller]
pub fn spawn_child(name: &str, env: &[(&str, String)]) -> Child {
    super::shared();
    let caller = Path::new(std::panic::Location::caller().file());
    let module = caller.file_stem().and_then(|s| s.to_str()).expect("caller");
    let test = format!("{module}::{name}");
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        test.as_str(),
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    super::shared();
    std::fs::write(path, bytes).expect("write fixture");
}

/// A small xorshift generator: deterministic from a printed seed, no extra dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_time() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        eprintln!("random seed: {seed}");
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a client must receive for a fixture message: CRLF, dot-stuffed, no From_ line.
pub fn transmit(stored: &[u8]) -> Vec<u8> {
    let body = &stored[memchr::memchr(b'\n', stored).expect("from line") + 1..];
    // The blank separator line before the next From_ line is not part of the message.
    let body = &body[..body.len() - 1];
    let mut out = Vec::new();
    for line in body.split_inclusive(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The RFC 1939 size of a RETR output: its octets minus the byte-stuffing dots (one per line
/// that starts with "..").
pub fn unstuffed_len(out: &[u8]) -> u64 {
    let stuffed = out
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b".."))
        .count();
    (out.len() - stuffed) as u64
}
