//! The floor of the RETR benchmark (not a server): what one RETR at a time costs on this
//! machine when the server does nothing but answer.
//!
//! ```text
//! cargo run --release --example retr_floor -- PATH PORT
//! ```
//! It indexes the mbox at PATH once (for the transmit size of each message), then listens on
//! 127.0.0.1:PORT and answers every command with `+OK`, STAT with the mailbox's totals and
//! `RETR n` with a body of message n's exact size taken from memory, sent in one write: no
//! file, no encoder, no checks. `benches/bench.py` runs it beside the real servers, so the
//! server CPU per GB it measures is the part of every server's figure that belongs to the
//! kernel's loopback TCP and to the client, not to the server.

use std::io::{self, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use mboxpopd::config::Config;
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::mailbox::Mailbox;

/// Stored lines of 72 octets with CRLF: the body of every answer is a prefix of this.
fn pattern(len: usize) -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    line.iter().copied().cycle().take(len).collect()
}

fn serve(mut s: TcpStream, sizes: &[u64], body: &[u8]) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.write_all(b"+OK floor\r\n")?;
    let total: u64 = sizes.iter().sum();
    let mut buf = [0u8; 512];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        while let Some(end) = buf[..have].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).to_ascii_uppercase();
            let mut words = line.split_ascii_whitespace();
            match (
                words.next(),
                words.next().and_then(|w| w.parse::<usize>().ok()),
            ) {
                (Some("RETR"), Some(k)) if (1..=sizes.len()).contains(&k) => {
                    // Sizes count the body's octets; a body ends with CRLF (at least 2).
                    let size = (sizes[k - 1] as usize).max(2);
                    let head = format!("+OK {size} octets\r\n");
                    let parts = [
                        IoSlice::new(head.as_bytes()),
                        IoSlice::new(&body[..size - 2]),
                        IoSlice::new(b"\r\n.\r\n"),
                    ];
                    write_all_vectored(&mut s, &parts)?;
                }
                (Some("STAT"), _) => {
                    s.write_all(format!("+OK {} {total}\r\n", sizes.len()).as_bytes())?
                }
                (Some("QUIT"), _) => return s.write_all(b"+OK\r\n"),
                _ => s.write_all(b"+OK\r\n")?,
            }
            buf.copy_within(end + 2..have, 0);
            have -= end + 2;
        }
        if have == buf.len() {
            return Ok(());
        }
    }
}

fn write_all_vectored(s: &mut TcpStream, parts: &[IoSlice<'_>]) -> io::Result<()> {
    let mut owned: Vec<&[u8]> = parts.iter().map(|p| &**p).collect();
    while !owned.is_empty() {
        let slices: Vec<IoSlice<'_>> = owned.iter().map(|p| IoSlice::new(p)).collect();
        let mut n = s.write_vectored(&slices)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(first) = owned.first_mut() {
            if n < first.len() {
                *first = &first[n..];
                break;
            }
            n -= first.len();
            owned.remove(0);
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = PathBuf::from(args.get(1).expect("usage: retr_floor PATH PORT"));
    let port: u16 = args
        .get(2)
        .and_then(|p| p.parse().ok())
        .expect("usage: retr_floor PATH PORT");
    // The daemon's defaults (mbox format, UIDL scheme), as in the benchmark's config.
    let opts = Config::default().mailbox_options(None);
    let mb = Mailbox::open(&path, &opts).expect("index the mailbox");
    let sizes: Arc<Vec<u64>> = Arc::new((0..mb.count()).map(|i| mb.size(i)).collect());
    drop(mb);
    let largest = sizes.iter().copied().max().unwrap_or(2) as usize;
    let body: Arc<Vec<u8>> = Arc::new(pattern(largest.max(2)));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (sizes, body) = (Arc::clone(&sizes), Arc::clone(&body));
        std::thread::spawn(move || {
            let _ = serve(conn, &sizes, &body);
        });
    }
}
