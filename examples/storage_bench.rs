//! Storage benchmark (not a test): index a large mailbox and commit single deletions at its
//! start, middle and end, reporting wall time, bytes rewritten and peak memory.
//!
//! ```text
//! cargo run --release --example storage_bench -- [DIR] [MESSAGES] [TOTAL_MIB]
//! cargo run --release --example storage_bench -- --generate PATH [MESSAGES] [TOTAL_MIB]
//! cargo run --release --example storage_bench -- --disk-cache PATH [ROUNDS]
//! cargo run --release --example storage_bench -- --commit PATH first|middle|last
//! ```
//! `--commit` opens an existing spool and commits one deletion, printing one line with the wall
//! time, the bytes the commit wrote (`write_bytes` and `wchar` of /proc/self/io), the bytes it
//! read (`rchar`) and its CPU time (user + system); `benches/commit_cost.sh` alternates two
//! binaries over fresh copies of one spool.
//! Defaults: a temporary directory under /var/tmp, 100000 messages, 1024 MiB. Results and the
//! machine they came from are recorded in BENCHMARKS.md.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::mailbox::{Mailbox, MailboxOptions};

fn options() -> MailboxOptions {
    MailboxOptions {
        format: MboxFormat::Mboxo,
        uidl: UidlFormat::Native,
        hold_mda_locks: false,
        dotlock_use_link: false,
        dotlock_stale_age: Duration::from_secs(300),
        lock_timeout: Duration::from_secs(30),
        owner_uid: None,
        journal_writers: Vec::new(),
    }
}

/// Peak resident set size of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `write_bytes`, `wchar` and `rchar` of /proc/self/io.
fn proc_io() -> [u64; 3] {
    let s = fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    [get("write_bytes:"), get("wchar:"), get("rchar:")]
}

/// User and system CPU time of this process so far, from /proc/self/stat (clock ticks,
/// assumed 100 per second as on every Linux port this runs on).
fn cpu_time() -> (Duration, Duration) {
    let s = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let tick = |i: usize| Duration::from_millis(f.get(i).copied().unwrap_or(0) * 10);
    (tick(11), tick(12))
}

/// `--commit PATH first|middle|last`: one commit on an existing spool, measured.
fn commit_once(path: &Path, which: &str) {
    let mut mb = Mailbox::open(path, &options()).expect("open");
    let n = mb.count();
    let victim = match which {
        "first" => 0,
        "middle" => n / 2,
        "last" => n - 1,
        other => panic!("first, middle or last, not {other}"),
    };
    let io0 = proc_io();
    let (u0, s0) = cpu_time();
    let t = Instant::now();
    mb.commit(&[victim]).expect("commit");
    let d = t.elapsed();
    let (u1, s1) = cpu_time();
    let io1 = proc_io();
    println!(
        "commit {which}: wall_ms {:.1} write_bytes {} wchar {} rchar {} user_ms {:.1} sys_ms {:.1}",
        d.as_secs_f64() * 1e3,
        io1[0] - io0[0],
        io1[1] - io0[1],
        io1[2] - io0[2],
        (u1 - u0).as_secs_f64() * 1e3,
        (s1 - s0).as_secs_f64() * 1e3
    );
}

/// Write a realistic spool: typical headers and 72-column body lines (one `>From ` line each),
/// `n` messages of about `total / n` bytes each, one in twenty header-only.
fn generate(path: &Path, n: u64, total: u64) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let per = total / n;
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n";
    let mut written = 0u64;
    for i in 0..n {
        let head = format!(
            "From sender{i}@example.org Thu Nov 26 03:32:14 2026\n\
             Received: from mx.example.org (mx.example.org [192.0.2.1]) by mail.example.net \
             with ESMTP id {i:08X}; Thu, 26 Nov 2026 03:32:14 +0000\n\
             Date: Thu, 26 Nov 2026 03:32:14 +0000\n\
             From: Sender {i} <sender{i}@example.org>\n\
             To: user@example.net\n\
             Subject: benchmark message {i}\n\
             Message-ID: <{i}.bench@example.org>\n\
             Status: RO\n\n"
        );
        w.write_all(head.as_bytes())?;
        let mut size = head.len() as u64;
        // One message in twenty is header-only; the others carry a quoted `>From ` line.
        let body_limit = if i % 20 == 19 { size + 1 } else { per - 1 };
        let mut k = 0u64;
        while size + (line.len() as u64) < body_limit {
            let l = if k == 3 {
                ">From the archive: quoted so that it does not start a new message.....\n"
            } else {
                line
            };
            w.write_all(l.as_bytes())?;
            size += l.len() as u64;
            k += 1;
        }
        w.write_all(b"\n")?;
        written += size + 1;
    }
    w.flush()?;
    w.get_ref().sync_all()?;
    Ok(written)
}

/// Drop the file from the page cache (GNU dd: nocache with count=0 advises DONTNEED).
fn drop_cache(path: &Path) {
    let _ = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status();
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    // Measure the indexer, not the daemon's index cache.
    mboxpopd::storage::cache::set_limit(0);
    let args: Vec<String> = std::env::args().collect();
    // `--generate PATH MESSAGES TOTAL_MIB`: only write the spool (for the Dovecot comparison).
    if args.get(1).map(String::as_str) == Some("--generate") {
        let path = PathBuf::from(args.get(2).expect("PATH"));
        let n: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
        let mib_total: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1024);
        let size = generate(&path, n, mib_total * 1024 * 1024).expect("generate");
        println!("generated {n} messages, {:.1} MiB", mib(size));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--commit") {
        let path = PathBuf::from(args.get(2).expect("PATH"));
        commit_once(&path, args.get(3).map_or("first", String::as_str));
        return;
    }
    // `--index PATH [ROUNDS]`: only index an existing spool, warm cache (for profiling).
    if args.get(1).map(String::as_str) == Some("--index") {
        let path = PathBuf::from(args.get(2).expect("PATH"));
        let rounds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
        let size = fs::metadata(&path).expect("stat").len();
        for _ in 0..rounds {
            let t = Instant::now();
            let mb = Mailbox::open(&path, &options()).expect("open");
            let d = t.elapsed();
            println!(
                "index {} messages: {:.3} s, {:.0} MiB/s, peak RSS {:.1} MiB",
                mb.count(),
                d.as_secs_f64(),
                mib(size) / d.as_secs_f64(),
                peak_rss_kib() as f64 / 1024.0
            );
        }
        return;
    }
    // `--disk-cache PATH [ROUNDS]`: the on-disk index cache file of an existing spool: encode,
    // decode (checksum and checks included), and a whole open from it, warm page cache.
    if args.get(1).map(String::as_str) == Some("--disk-cache") {
        use mboxpopd::storage::cache::Stamp;
        use mboxpopd::storage::disk_cache::{decode_file, encode_file, CacheDir};
        let path = PathBuf::from(args.get(2).expect("PATH"));
        let rounds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
        let o = options();
        let bytes = fs::read(&path).expect("read");
        let iopts = mboxpopd::storage::index::IndexOptions {
            format: o.format,
            uidl: o.uidl,
        };
        let index = mboxpopd::storage::index::index_mbox(&bytes[..], &iopts).expect("index");
        drop(bytes);
        let stamp = Stamp::of(&fs::metadata(&path).expect("stat"));
        let dir = std::env::temp_dir().join(format!("mboxpopd-dc-{}", std::process::id()));
        let cache = CacheDir::prepare(&dir).expect("cache dir");
        // A first open builds the index and stores it (with the real tail fingerprint).
        let slot = cache.open(&path, o.format, o.uidl).expect("slot");
        Mailbox::open_cached(&path, &o, Some(slot)).expect("open");
        for _ in 0..rounds {
            let t = Instant::now();
            let file = encode_file(&path, o.format, o.uidl, &stamp, 0, &index);
            let stored = fs::read(
                dir.join(
                    fs::read_dir(&dir)
                        .expect("dir")
                        .next()
                        .expect("file")
                        .expect("entry")
                        .file_name(),
                ),
            )
            .expect("read");
            let enc = t.elapsed();
            let t = Instant::now();
            let back = decode_file(&stored, &path, o.format, o.uidl).expect("decodes");
            let dec = t.elapsed();
            assert_eq!(back.2, index);
            let slot = cache.open(&path, o.format, o.uidl).expect("slot");
            let t = Instant::now();
            slot.store(&stamp, back.1, &index);
            let store = t.elapsed();
            drop(slot);
            let slot = cache.open(&path, o.format, o.uidl).expect("slot");
            let t = Instant::now();
            let mb = Mailbox::open_cached(&path, &o, Some(slot)).expect("open");
            let open = t.elapsed();
            mboxpopd::storage::cache::forget(&path);
            println!(
                "{} messages, cache file {:.1} MiB: encode {:.1} ms, decode {:.1} ms, \
                 store {:.1} ms, open from the file {:.1} ms",
                mb.count(),
                mib(file.len() as u64),
                enc.as_secs_f64() * 1e3,
                dec.as_secs_f64() * 1e3,
                store.as_secs_f64() * 1e3,
                open.as_secs_f64() * 1e3,
            );
        }
        fs::remove_dir_all(&dir).ok();
        return;
    }
    let dir = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        let d = std::env::temp_dir().join(format!("mboxpopd-bench-{}", std::process::id()));
        fs::create_dir_all(&d).expect("bench dir");
        d
    });
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let total: u64 = args
        .get(3)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1024)
        * 1024
        * 1024;
    let path = dir.join("bench-user");

    let t = Instant::now();
    let size = generate(&path, n, total).expect("generate");
    println!(
        "generated {n} messages, {:.1} MiB in {:.2?}",
        mib(size),
        t.elapsed()
    );

    let opts = options();
    let report = |what: &str, d: Duration, extra: String| {
        println!(
            "{what:<40} {:>9.3} s  {extra}  peak RSS {:.1} MiB",
            d.as_secs_f64(),
            peak_rss_kib() as f64 / 1024.0
        );
    };

    // Index, cold cache and warm cache.
    drop_cache(&path);
    let t = Instant::now();
    let mb = Mailbox::open(&path, &opts).expect("open");
    let d = t.elapsed();
    let count = mb.count();
    report(
        "index (cold cache)",
        d,
        format!("{count} messages, {:.0} MiB/s", mib(size) / d.as_secs_f64()),
    );
    drop(mb);
    let t = Instant::now();
    let mb = Mailbox::open(&path, &opts).expect("open");
    let d = t.elapsed();
    report(
        "index (warm cache)",
        d,
        format!("{:.0} MiB/s", mib(size) / d.as_secs_f64()),
    );
    drop(mb);

    // Commits: last, middle, first (each on the spool the previous one left).
    for (label, pick) in [("last", 2u8), ("middle", 1), ("first", 0)] {
        let mut mb = Mailbox::open(&path, &opts).expect("open");
        let len = mb.count();
        let victim = match pick {
            0 => 0,
            1 => len / 2,
            _ => len - 1,
        };
        let before = fs::metadata(&path).expect("stat").len();
        let t = Instant::now();
        let r = mb.commit(&[victim]).expect("commit");
        let d = t.elapsed();
        let after = fs::metadata(&path).expect("stat").len();
        assert!(after < before);
        report(
            &format!("commit deleting the {label} message"),
            d,
            format!(
                "rewrote {:.1} MiB (journalled the same)",
                mib(r.rewritten_bytes)
            ),
        );
    }
    println!(
        "peak RSS overall: {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    if args.get(1).is_none() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        let _ = fs::remove_file(&path);
    }
}
