//! Property tests: arbitrary messages written by an MDA-style writer (From_ line, quoting for
//! the mbox dialect, separator line) are indexed, retrieved through the transmit encoder and
//! decoded back; deleting any set of messages leaves the others intact.

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::storage::encode::{encode_to, EncodeOptions};
use mboxpopd::storage::index::{index_mbox, Index, IndexOptions};
use proptest::prelude::*;

/// How the writer stores messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `From ` lines quoted as `>From ` (not reversible).
    Mboxo,
    /// `>*From ` lines get one more `>`.
    Mboxrd,
    /// No quoting; a `Content-Length:` header delimits the body.
    Mboxcl2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Lf,
    Crlf,
    Mixed,
}

#[derive(Debug, Clone)]
struct Message {
    sender: String,
    headers: Vec<Vec<u8>>,
    /// `None`: no empty line and no body at all.
    body: Option<Vec<Vec<u8>>>,
    /// The last line has no newline (the writer adds one unless the message ends the file).
    final_newline: bool,
}

fn header_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        ("[A-Z][A-Za-z-]{0,14}", "[ -~]{0,50}").prop_filter_map("private", |(n, v)| {
            let private = [
                "X-IMAP",
                "X-IMAPbase",
                "X-UID",
                "X-Keywords",
                "Status",
                "X-Status",
                "Content-Length",
            ];
            (!private.iter().any(|p| p.eq_ignore_ascii_case(&n)))
                .then(|| format!("{n}: {v}").into_bytes())
        }),
        "[ \t][ -~]{1,40}".prop_map(String::into_bytes),
        Just(b"Subject: caf\xc3\xa9 \xff\x00 8-bit".to_vec()),
        Just(
            b"X-Long: "
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'h', 3000))
                .collect()
        ),
    ]
    .prop_filter("first header line must not be a continuation", |_| true)
}

fn body_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[ -~]{0,60}".prop_map(String::into_bytes),
        2 => Just(Vec::new()),
        1 => Just(b"From sender@example.org Thu Nov 26 03:32:14 2026".to_vec()),
        1 => Just(b"From here on, we agree.".to_vec()),
        1 => "(>{1,3})From [a-z]{0,5}".prop_map(String::into_bytes),
        1 => "\\.{1,3}[a-z]{0,3}".prop_map(String::into_bytes),
        1 => Just(b"bare\rcarriage\rreturns".to_vec()),
        1 => Just(b"nul \0 and \xff\xfe bytes".to_vec()),
        1 => Just(b"Status: RO (in the body, not a header)".to_vec()),
        1 => (1000usize..5000).prop_map(|n| vec![b'L'; n]),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        "[a-z]{1,8}@example\\.org",
        prop::collection::vec(header_line(), 0..6),
        prop::option::weighted(0.85, prop::collection::vec(body_line(), 0..12)),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(sender, mut headers, body, final_newline)| {
            // A continuation line cannot open the header section.
            if headers
                .first()
                .is_some_and(|h| h[0] == b' ' || h[0] == b'\t')
            {
                headers[0].insert(0, b'X');
                headers[0].insert(1, b':');
            }
            Message {
                sender,
                headers,
                body,
                final_newline,
            }
        })
}

fn quote(dialect: Dialect, line: &[u8]) -> Vec<u8> {
    let quoted = match dialect {
        Dialect::Mboxo => line.starts_with(b"From "),
        Dialect::Mboxrd => {
            let gts = line.iter().take_while(|&&b| b == b'>').count();
            line[gts..].starts_with(b"From ")
        }
        Dialect::Mboxcl2 => false,
    };
    let mut out = Vec::with_capacity(line.len() + 1);
    if quoted {
        out.push(b'>');
    }
    out.extend_from_slice(line);
    out
}

struct Written {
    file: Vec<u8>,
    /// Per message: the content a client must receive, with LF line ends.
    expected: Vec<Vec<u8>>,
}

/// Write `msgs` the way an MDA appends them. `last_separator`: the file ends with an empty line.
fn write(
    msgs: &[Message],
    dialect: Dialect,
    ends: Ends,
    last_separator: bool,
    seed: u64,
) -> Written {
    // A last message ending in an empty line needs the separator: without it, the file's final
    // empty line is read as the separator (the indexer's documented convention).
    let ends_empty = msgs.last().is_some_and(|m| match &m.body {
        Some(b) => b.last().is_none_or(|l| l.is_empty()),
        None => false,
    });
    let last_separator = last_separator || ends_empty;
    let mut file = Vec::new();
    let mut expected = Vec::new();
    let mut toggle = seed;
    let mut eol = move || -> &'static [u8] {
        match ends {
            Ends::Lf => b"\n",
            Ends::Crlf => b"\r\n",
            Ends::Mixed => {
                toggle = toggle
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if toggle >> 63 == 0 {
                    b"\n"
                } else {
                    b"\r\n"
                }
            }
        }
    };
    for (i, m) in msgs.iter().enumerate() {
        let last = i + 1 == msgs.len();
        // Lines as the client must see them, and as stored.
        let mut lines: Vec<Vec<u8>> = m.headers.clone();
        let header_count = lines.len();
        if let Some(body) = &m.body {
            lines.push(Vec::new());
            lines.extend(body.iter().cloned());
        }
        // An empty last line without its newline would be no line at all.
        let unterminated = !m.final_newline
            && last
            && !last_separator
            && lines.last().is_some_and(|l| !l.is_empty());
        let mut want = Vec::new();
        for l in &lines {
            want.extend_from_slice(l);
            want.push(b'\n');
        }
        expected.push(want);

        let mut stored_body = Vec::new();
        let body_start = header_count + usize::from(m.body.is_some());
        for (j, l) in lines.iter().enumerate().skip(body_start) {
            stored_body.extend_from_slice(&quote(dialect, l));
            if !(unterminated && j + 1 == lines.len()) {
                stored_body.extend_from_slice(eol());
            }
        }
        file.extend_from_slice(format!("From {} Thu Nov 26 03:32:14 2026", m.sender).as_bytes());
        file.extend_from_slice(eol());
        if dialect == Dialect::Mboxcl2 && m.body.is_some() {
            file.extend_from_slice(format!("Content-Length: {}", stored_body.len()).as_bytes());
            file.extend_from_slice(eol());
        }
        for (j, l) in lines.iter().enumerate().take(body_start) {
            file.extend_from_slice(&quote(dialect, l));
            if !(unterminated && j + 1 == lines.len()) {
                file.extend_from_slice(eol());
            }
        }
        file.extend_from_slice(&stored_body);
        if !last || last_separator {
            file.extend_from_slice(eol());
        }
    }
    if dialect == Dialect::Mboxo {
        // mboxo cannot be unquoted: the client sees the quoted lines.
        for w in &mut expected {
            let mut q = Vec::new();
            for l in w.split_inclusive(|&b| b == b'\n') {
                let body_line = l.strip_suffix(b"\n").unwrap_or(l);
                q.extend_from_slice(&quote(Dialect::Mboxo, body_line));
                q.push(b'\n');
            }
            *w = q;
        }
    }
    Written { file, expected }
}

/// Undo the transmit form: CRLF → LF, remove stuffed dots.
fn decode(retr: &[u8]) -> Vec<u8> {
    assert!(
        retr.is_empty() || retr.ends_with(b"\r\n"),
        "output ends with CRLF"
    );
    let mut out = Vec::new();
    for line in retr.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .expect("every line ends with CRLF");
        assert!(!line.contains(&b'\n'));
        let line = if line.starts_with(b".") {
            &line[1..]
        } else {
            line
        };
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

fn retrieve(file: &[u8], idx: &Index, i: usize, format: MboxFormat, top: Option<u64>) -> Vec<u8> {
    let m = &idx.messages[i];
    let src = &file[m.header_offset() as usize..idx.end_offset(i) as usize];
    let mut out = Vec::new();
    let n = encode_to(src, EncodeOptions { format, top }, &mut out).expect("in memory");
    assert_eq!(n, out.len() as u64);
    out
}

fn format_of(d: Dialect) -> MboxFormat {
    if d == Dialect::Mboxrd {
        MboxFormat::Mboxrd
    } else {
        MboxFormat::Mboxo
    }
}

/// 200 cases by default; `PROPTEST_CASES=n` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::Mboxo),
        Just(Dialect::Mboxrd),
        Just(Dialect::Mboxcl2)
    ]
}

fn ends() -> impl Strategy<Value = Ends> {
    prop_oneof![Just(Ends::Lf), Just(Ends::Crlf), Just(Ends::Mixed)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn written_messages_come_back(
        msgs in prop::collection::vec(message(), 1..7),
        dialect in dialect(),
        ends in ends(),
        last_separator in any::<bool>(),
        seed in any::<u64>(),
    ) {
        crate::common::shared();
        let w = write(&msgs, dialect, ends, last_separator, seed);
        let format = format_of(dialect);
        let idx = index_mbox(&w.file[..], &IndexOptions { format, uidl: UidlFormat::Native })
            .expect("indexes");
        prop_assert_eq!(idx.messages.len(), msgs.len());
        prop_assert_eq!(idx.length, w.file.len() as u64);
        for (i, m) in idx.messages.iter().enumerate() {
            let retr = retrieve(&w.file, &idx, i, format, None);
            // RFC 1939 sizes count CRLF line ends but not the byte-stuffing dots.
            let stuffed = retr.split(|&b| b == b'\n').filter(|l| l.starts_with(b"..")).count();
            prop_assert_eq!(m.size, (retr.len() - stuffed) as u64, "size of message {}", i);
            prop_assert_eq!(decode(&retr), w.expected[i].clone(), "content of message {}", i);
            // TOP is a prefix of RETR with the headers, the blank line and k body lines.
            for k in [0u64, 1, 3] {
                let top = retrieve(&w.file, &idx, i, format, Some(k));
                prop_assert!(retr.starts_with(&top));
                if let Some(body) = &msgs[i].body {
                    let lines = msgs[i].headers.len() + 1 + body.len().min(k as usize);
                    prop_assert_eq!(top.windows(2).filter(|p| p == b"\r\n").count(), lines);
                }
            }
            prop_assert!(!m.hidden);
        }
    }

    #[test]
    fn deleting_messages_keeps_the_others(
        msgs in prop::collection::vec(message(), 1..7),
        dialect in dialect(),
        ends in ends(),
        last_separator in any::<bool>(),
        deleted in prop::collection::vec(any::<bool>(), 7),
        uidl in prop_oneof![Just(UidlFormat::Native), Just(UidlFormat::Popa3d)],
    ) {
        crate::common::shared();
        let w = write(&msgs, dialect, ends, last_separator, 7);
        let opts = IndexOptions { format: format_of(dialect), uidl };
        let idx = index_mbox(&w.file[..], &opts).expect("indexes");
        let mut kept_file = Vec::new();
        let mut kept = Vec::new();
        for (i, m) in idx.messages.iter().enumerate() {
            if !deleted[i] {
                kept_file.extend_from_slice(&w.file[m.from_offset as usize..idx.next_offset(i) as usize]);
                kept.push(i);
            }
        }
        let after = index_mbox(&kept_file[..], &opts).expect("re-indexes");
        prop_assert_eq!(after.messages.len(), kept.len());
        let base = |u: &mboxpopd::storage::uidl::Uidl| u.to_string().split('-').next().unwrap_or_default().to_string();
        for (j, (&i, new)) in kept.iter().zip(&after.messages).enumerate() {
            let old = &idx.messages[i];
            let old_content = &w.file[old.header_offset() as usize..idx.end_offset(i) as usize];
            let new_content = &kept_file[new.header_offset() as usize..after.end_offset(j) as usize];
            prop_assert_eq!(old_content, new_content);
            prop_assert_eq!(old.size, new.size);
            prop_assert_eq!(&old.from_line, &new.from_line);
            // Same digest; only the occurrence suffix of identical copies may move.
            prop_assert_eq!(base(&old.uidl), base(&new.uidl));
            let copies = idx.messages.iter().filter(|m| base(&m.uidl) == base(&old.uidl)).count();
            if copies == 1 {
                prop_assert_eq!(&old.uidl, &new.uidl);
            }
        }
    }
}
