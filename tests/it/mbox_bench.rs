//! Indexing throughput, not a timed test: run it by hand in release mode,
//! `MBOX_BENCH_MB=1024 cargo test --release --test it mbox_bench:: -- --ignored --nocapture`.
//! It writes a synthetic mailbox of ~10 KiB messages to a temporary file, then indexes it from
//! the file (page cache warm) with each UIDL scheme and prints the rate.

use std::io::{BufWriter, Write};
use std::time::Instant;

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::storage::index::{index_mbox, IndexOptions};

#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn index_throughput() {
    let mb: u64 = std::env::var("MBOX_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let mut w = BufWriter::with_capacity(1 << 20, file.reopen().expect("reopen"));
    let body_line =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n";
    let mut written = 0u64;
    let mut n = 0u64;
    while written < mb << 20 {
        let msg = format!(
            "From sender{n}@example.org Thu Nov 26 03:32:14 2026\n\
Received: from mx.example.org by mail.example.net; Thu, 26 Nov 2026 03:32:14 +0000\n\
Date: Thu, 26 Nov 2026 03:32:10 +0000\nMessage-ID: <{n}@example.org>\n\
From: sender{n}@example.org\nTo: user@example.net\nSubject: message {n}\nStatus: RO\n\n{}\n",
            body_line.repeat(125)
        );
        w.write_all(msg.as_bytes()).expect("write");
        written += msg.len() as u64;
        n += 1;
    }
    w.flush().expect("flush");
    drop(w);
    for uidl in [UidlFormat::Native, UidlFormat::Popa3d, UidlFormat::XUidl] {
        let opts = IndexOptions {
            format: MboxFormat::Mboxo,
            uidl,
        };
        let f = std::fs::File::open(file.path()).expect("open");
        let t = Instant::now();
        let idx = index_mbox(f, &opts).expect("index");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(idx.messages.len() as u64, n);
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        println!(
            "  process peak RSS so far: {}",
            peak.trim_start_matches("VmHWM:").trim()
        );
        println!(
            "{uidl:?}: indexed {} messages, {:.1} MiB in {secs:.2} s = {:.0} MiB/s",
            n,
            written as f64 / 1048576.0,
            written as f64 / 1048576.0 / secs
        );
    }
}
