//! Indexing a big mailbox on two cores.
//!
//! The file is cut at a From_ line near its middle that follows an empty line. A second thread
//! indexes from that line to the end as if a message started there, while the calling thread
//! indexes from the start. When the first scan reaches the cut it checks that it is in the
//! state the second one started from (the cut line opened a new message, no Content-Length
//! body spans it, nothing is pending; [`Indexer::continues_at`]); from there both would read
//! the same bytes the same way, so the second part's messages are appended and the result is
//! the index a single scan gives. If the check fails (the cut lies inside a trusted
//! Content-Length body, say) or the second scan fails, the second part is dropped and the
//! first scan simply goes on to the end of the file.
//!
//! Each core then reads and scans its own half, so no data moves between caches. A process
//! uses at most `available_parallelism() - 1` second threads at a time; when none is free, or
//! the file is small, the index is built by one scan as before.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::{is_from_line, scan, Index, IndexError, IndexOptions, Indexer, Join, FROM_LINE_MAX};

/// Files smaller than this are indexed by one thread: starting another costs more than it
/// saves, and small mailboxes are the common case.
pub const PARALLEL_MIN: u64 = 8 << 20;

/// How far past the middle a cut is looked for.
const WINDOW: usize = 256 << 10;

/// Messages per block of the second part (see [`Indexer::spilled`]).
const CHUNK: usize = 4096;

/// The second scan's stack: it only runs the indexer, which does not recurse.
const STACK: usize = 256 << 10;

static BUSY: AtomicUsize = AtomicUsize::new(0);

fn max_helpers() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .saturating_sub(1)
    })
}

/// A claim on one of the process's second threads, released on drop.
struct Slot;

impl Slot {
    fn claim() -> Option<Slot> {
        let max = max_helpers();
        BUSY.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Index a file of `len` bytes whose bytes from offset `o` on `open_at(o)` yields (to its
/// end, like the reader given to [`super::index_mbox`]). Two threads for a file of at least
/// [`PARALLEL_MIN`] bytes when a second thread is free; the result is always what
/// [`super::index_mbox`] gives.
pub fn index_file<R, F>(open_at: F, len: u64, opts: &IndexOptions) -> Result<Index, IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    if len >= PARALLEL_MIN {
        if let Some(_slot) = Slot::claim() {
            return index_split(&open_at, len / 2, opts);
        }
    }
    super::index_mbox(open_at(0), opts)
}

/// Index with a cut looked for from offset `hint` on (any offset: a file without a usable cut
/// there is indexed by one scan).
pub fn index_split<R, F>(open_at: &F, hint: u64, opts: &IndexOptions) -> Result<Index, IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    index_split_with(open_at, hint, opts, CHUNK).map(|(index, _)| index)
}

fn index_split_with<R, F>(
    open_at: &F,
    hint: u64,
    opts: &IndexOptions,
    chunk: usize,
) -> Result<(Index, bool), IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    let one_scan = || super::index_mbox(open_at(0), opts).map(|index| (index, false));
    let Some((split, line_len)) = find_cut(open_at(hint), hint)? else {
        return one_scan();
    };
    let stop = AtomicBool::new(false);
    let merged = AtomicBool::new(false);
    std::thread::scope(|s| {
        let second = std::thread::Builder::new()
            .name("index".into())
            .stack_size(STACK)
            .spawn_scoped(s, || {
                let mut indexer = Indexer::new(opts);
                indexer.chunk = chunk;
                scan(open_at(split), indexer, split, None, Some(&stop))
            });
        let Ok(second) = second else {
            return one_scan();
        };
        let (stop, merged) = (&stop, &merged);
        let join = Join {
            split,
            at: split + line_len,
            second: Some(Box::new(move |wanted: bool| {
                if !wanted {
                    stop.store(true, Ordering::Relaxed);
                }
                match second.join() {
                    Ok(Ok(part)) if wanted => {
                        merged.store(true, Ordering::Relaxed);
                        Some(part)
                    }
                    _ => None,
                }
            })),
        };
        let index = scan(open_at(0), Indexer::new(opts), 0, Some(join), None)?.finish();
        Ok((index, merged.load(Ordering::Relaxed)))
    })
}

/// Read up to [`WINDOW`] bytes from `reader` (the file from `offset`) and find a cut in them.
fn find_cut<R: Read>(mut reader: R, offset: u64) -> Result<Option<(u64, u64)>, IndexError> {
    let mut window = vec![0u8; WINDOW];
    let mut n = 0;
    while n < window.len() {
        match reader.read(&mut window[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IndexError::Io(e)),
        }
    }
    Ok(cut_in(&window[..n], offset))
}

/// The first From_ line in `window` (file bytes from `offset`) that follows an empty line and
/// ends inside the window: its offset and length with its line end.
pub fn cut_in(window: &[u8], offset: u64) -> Option<(u64, u64)> {
    for p in memchr::memmem::find_iter(window, b"\nFrom ") {
        let empty_before = (p >= 1 && window[p - 1] == b'\n')
            || (p >= 2 && window[p - 1] == b'\r' && window[p - 2] == b'\n');
        if !empty_before {
            continue;
        }
        let start = p + 1;
        let rest = &window[start..window.len().min(start + FROM_LINE_MAX)];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            continue;
        };
        let line = &rest[..=nl];
        if is_from_line(line) {
            return Some((offset + start as u64, line.len() as u64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::format::{MboxFormat, UidlFormat};
    use crate::storage::index::index_mbox;

    fn opts(format: MboxFormat, uidl: UidlFormat) -> IndexOptions {
        IndexOptions { format, uidl }
    }

    fn split_chunked(
        data: &[u8],
        hint: u64,
        o: &IndexOptions,
        chunk: usize,
    ) -> Result<(Index, bool), IndexError> {
        let open = |at: u64| &data[(at as usize).min(data.len())..];
        index_split_with(&open, hint, o, chunk)
    }

    const A: &[u8] = b"From a@x Thu Nov 26 03:32:14 2026\nSubject: a\n\nbody a\n\n";
    const B: &[u8] = b"From b@x Thu Nov 26 03:32:15 2026\nSubject: b\n\nbody b\nFrom x\n\n";

    #[test]
    fn a_cut_follows_an_empty_line_and_passes_the_from_rule() {
        let data = [A, b"\nFrom not a date\n\n", B].concat();
        let (at, len) = cut_in(&data, 100).expect("a cut");
        assert_eq!(&data[(at - 100) as usize..][..len as usize], &B[..34]);
        assert_eq!(cut_in(b"From a b\nx\n", 0), None);
        assert_eq!(
            cut_in(b"\n\nFrom a Thu Nov 26 03:32:14 2026", 0),
            None,
            "no line end"
        );
    }

    #[test]
    fn split_indexes_equal_one_scan_at_every_hint() {
        let mut data = Vec::new();
        for _ in 0..5 {
            data.extend_from_slice(A);
            data.extend_from_slice(B);
        }
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let one = index_mbox(&data[..], &o).expect("indexes");
        assert_eq!(one.messages.len(), 10);
        let mut merged = 0;
        for hint in 0..=data.len() as u64 {
            for chunk in [1, 3, CHUNK] {
                let (split, joined) = split_chunked(&data, hint, &o, chunk).expect("indexes");
                assert_eq!(split, one, "hint {hint}, chunk {chunk}");
                merged += usize::from(joined);
            }
        }
        // Every hint before the last message's From_ line finds a cut that joins.
        let last = one.messages[9].from_offset as usize;
        assert_eq!(merged, 3 * (last - 1), "{merged}");
    }

    #[test]
    fn a_cut_inside_a_trusted_content_length_body_falls_back_to_one_scan() {
        // The second message's body holds what looks like a message; its Content-Length is
        // right, so it is one message, and the cut inside it must not split it.
        let inner = b"From c@x Thu Nov 26 03:32:16 2026\nSubject: c\n\nbody c\n";
        let body = [&b"x\n\n"[..], inner].concat();
        let second = [
            &b"From b@x Thu Nov 26 03:32:15 2026\nContent-Length: "[..],
            body.len().to_string().as_bytes(),
            b"\n\n",
            &body,
            b"\n",
        ]
        .concat();
        let data = [A, &second, A].concat();
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let one = index_mbox(&data[..], &o).expect("indexes");
        assert_eq!(one.messages.len(), 3);
        let hint = (A.len() + 50) as u64;
        assert!(cut_in(&data[hint as usize..], hint).is_some());
        let (split, joined) = split_chunked(&data, hint, &o, 1).expect("indexes");
        assert_eq!(split, one);
        assert!(!joined);
    }

    #[test]
    fn a_failing_second_part_leaves_the_first_scan_to_finish() {
        // The second reader fails at once: the first scan reads on and gets the same error
        // at the same place, or the whole index when the failure is only in the second.
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("boom"))
            }
        }
        enum R<'a> {
            Ok(&'a [u8]),
            Fail,
        }
        impl Read for R<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                match self {
                    R::Ok(d) => d.read(b),
                    R::Fail => Failing.read(b),
                }
            }
        }
        let data = [A, B, A, B].concat();
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let one = index_mbox(&data[..], &o).expect("indexes");
        let split = cut_in(&data[10..], 10).expect("a cut").0;
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let open = |at: u64| {
            // The window read and the first scan work; the second scan (at the cut) fails.
            calls.fetch_add(1, Ordering::Relaxed);
            if at == split {
                R::Fail
            } else {
                R::Ok(&data[at as usize..])
            }
        };
        assert_eq!(index_split(&open, 10, &o).expect("indexes"), one);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn mbox_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"\n\n"[..]),
                Just(&b"\nFrom a@b Thu Nov 26 03:32:14 2026\n"[..]),
                Just(&b"\n\nFrom a@b Thu Nov 26 03:32:14 2026\n"[..]),
                Just(&b"\n\r\nFrom c@d Fri Nov 27 13:02:44 2026\r\n"[..]),
                Just(&b"From x\n"[..]),
                Just(&b"Content-Length: 3\n"[..]),
                Just(&b"Content-Length: 0\n"[..]),
                Just(&b"Content-Length: 40\n"[..]),
                Just(&b"X-UIDL: u1\n"[..]),
                Just(&b"X-UID: 7\n"[..]),
                Just(&b"X-IMAP: 1 2\n"[..]),
                Just(&b"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"[..]),
                Just(&b"Status: RO\n"[..]),
                Just(&b">From "[..]),
                Just(&b".\r"[..]),
                Just(&b"abc"[..]),
                Just(&b"\0\xff"[..]),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|p| {
                let mut v = b"From first@x Thu Nov 26 03:32:14 2026\n".to_vec();
                v.extend(p.concat());
                v
            })
        }

        proptest! {
            #[test]
            fn a_split_index_is_the_single_scan_index(
                data in mbox_bytes(),
                hint in any::<prop::sample::Index>(),
                chunk in 1usize..4,
                format in prop_oneof![Just(MboxFormat::Mboxo), Just(MboxFormat::Mboxrd)],
                uidl in prop_oneof![
                    Just(UidlFormat::Native),
                    Just(UidlFormat::Popa3d),
                    Just(UidlFormat::DovecotMd5),
                    Just(UidlFormat::XUidl),
                    Just(UidlFormat::Imap),
                    Just(UidlFormat::DovecotUid),
                ],
            ) {
                let o = opts(format, uidl);
                let hint = hint.index(data.len() + 1) as u64;
                let one = index_mbox(&data[..], &o).expect("indexes");
                let (split, _) = split_chunked(&data, hint, &o, chunk).expect("indexes");
                prop_assert_eq!(split, one);
            }
        }
    }
}
