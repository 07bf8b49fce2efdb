//! Indexing a big mailbox on several cores.
//!
//! The file is cut at From_ lines that follow an empty line, one near each of `k - 1` evenly
//! spaced offsets. Each later part is indexed by its own thread from its cut to the end of
//! the file, as if a message started there, while the calling thread indexes from the start.
//! When a scan reaches the next cut it checks that it is in the state the next part started
//! from (the cut line opened a new message, no Content-Length body spans it, nothing is
//! pending; [`Indexer::continues_at`]); from there both would read the same bytes the same
//! way, so the next part's messages (which already include those of the parts after it) are
//! taken over and the result is the index a single scan gives. If the check fails (the cut
//! lies inside a trusted Content-Length body, say) or the next part failed, that part is
//! stopped and dropped, and the scan simply goes on to the end of the file.
//!
//! Each core reads and scans its own part, so no data moves between caches. A process runs at
//! most `available_parallelism() - 1` extra threads at a time; when none is free, or the file
//! is small, the index is built by one scan.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::Scope;

use super::{
    is_from_line, scan, Index, IndexError, IndexOptions, Indexer, Join, Part, FROM_LINE_MAX,
};

/// Files smaller than this are indexed by one thread: starting another costs more than it
/// saves, and small mailboxes are the common case.
pub const PARALLEL_MIN: u64 = 8 << 20;

/// Each part is at least this long.
const PART_MIN: u64 = PARALLEL_MIN / 2;

/// At most this many parts (and read buffers) for one file.
const PARTS_MAX: usize = 8;

/// How far past each evenly spaced offset a cut is looked for.
const WINDOW: usize = 256 << 10;

/// Messages per block of a later part (see [`Indexer::spilled`]).
const CHUNK: usize = 4096;

/// An extra scan's stack: it only runs the indexer, which does not recurse.
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

/// Claims on the process's extra threads, released on drop.
struct Slots(usize);

impl Slots {
    /// Up to `want` of the free ones.
    fn claim(want: usize) -> Slots {
        let max = max_helpers();
        let before = BUSY
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then(|| n + want.min(max - n))
            })
            .unwrap_or(max);
        Slots(want.min(max.saturating_sub(before)))
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        BUSY.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Index a file of `len` bytes whose bytes from offset `o` on `open_at(o)` yields (to its
/// end, like the reader given to [`super::index_mbox`]). Several threads for a file of at
/// least [`PARALLEL_MIN`] bytes when extra threads are free; the result is always what
/// [`super::index_mbox`] gives.
pub fn index_file<R, F>(open_at: F, len: u64, opts: &IndexOptions) -> Result<Index, IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    if len >= PARALLEL_MIN {
        let parts = ((len / PART_MIN) as usize).min(PARTS_MAX);
        let slots = Slots::claim(parts - 1);
        if slots.0 > 0 {
            let k = slots.0 as u64 + 1;
            let hints: Vec<u64> = (1..k).map(|j| len / k * j).collect();
            return index_parts(&open_at, &hints, opts, CHUNK).map(|(index, _)| index);
        }
    }
    super::index_mbox(open_at(0), opts)
}

/// Index with cuts looked for from each of `hints` on (any offsets: a hint without a usable
/// cut after it, or whose cut is not past the previous one, is left out). Returns the index
/// and how many parts were joined.
pub fn index_parts<R, F>(
    open_at: &F,
    hints: &[u64],
    opts: &IndexOptions,
    chunk: usize,
) -> Result<(Index, usize), IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    let mut cuts: Vec<(u64, u64)> = Vec::with_capacity(hints.len());
    for &hint in hints {
        let from = cuts.last().map_or(hint, |&(at, len)| hint.max(at + len));
        if let Some(cut) = find_cut(open_at(from), from)? {
            cuts.push(cut);
        }
    }
    let stops: Vec<AtomicBool> = cuts.iter().map(|_| AtomicBool::new(false)).collect();
    let joined = AtomicUsize::new(0);
    let shared = Shared {
        open_at,
        opts,
        chunk,
        joined: &joined,
    };
    let part = std::thread::scope(|s| run_part(s, &shared, 0, None, &cuts, &stops))?;
    Ok((part.finish(), joined.load(Ordering::Relaxed)))
}

/// What every part's thread reads.
struct Shared<'a, F> {
    open_at: &'a F,
    opts: &'a IndexOptions,
    chunk: usize,
    joined: &'a AtomicUsize,
}

/// Index from `start` to the end of the file; the parts at `cuts` (each with its stop flag in
/// `stops`) run in threads of their own, and the first of them is joined if this scan
/// reaches it in the same state.
fn run_part<'scope, 'env, R, F>(
    s: &'scope Scope<'scope, 'env>,
    shared: &'env Shared<'env, F>,
    start: u64,
    stop: Option<&'env AtomicBool>,
    cuts: &'env [(u64, u64)],
    stops: &'env [AtomicBool],
) -> Result<Part, IndexError>
where
    R: Read + Send,
    F: Fn(u64) -> R + Sync,
{
    let mut indexer = Indexer::new(shared.opts);
    if start > 0 {
        indexer.chunk = shared.chunk;
    }
    let mut join = None;
    if let (Some((&(split, line_len), later)), Some((next_stop, later_stops))) =
        (cuts.split_first(), stops.split_first())
    {
        let next = std::thread::Builder::new()
            .name("index".into())
            .stack_size(STACK)
            .spawn_scoped(s, move || {
                run_part(s, shared, split, Some(next_stop), later, later_stops)
            });
        // Without a thread this scan just reads on.
        if let Ok(next) = next {
            let joined = shared.joined;
            join = Some(Join {
                split,
                at: split + line_len,
                second: Some(Box::new(move |wanted: bool| {
                    if !wanted {
                        next_stop.store(true, Ordering::Relaxed);
                    }
                    match next.join() {
                        Ok(Ok(part)) if wanted => {
                            joined.fetch_add(1, Ordering::Relaxed);
                            Some(part)
                        }
                        _ => None,
                    }
                })),
            });
        }
    }
    scan((shared.open_at)(start), indexer, start, join, stop)
}

/// Read up to [`WINDOW`] bytes from `reader` (the file from `offset`) and find a cut in them
/// ([`cut_in`]).
pub fn find_cut<R: Read>(mut reader: R, offset: u64) -> Result<Option<(u64, u64)>, IndexError> {
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
        parts(data, &[hint], o, chunk).map(|(index, joined)| (index, joined > 0))
    }

    fn parts(
        data: &[u8],
        hints: &[u64],
        o: &IndexOptions,
        chunk: usize,
    ) -> Result<(Index, usize), IndexError> {
        let open = |at: u64| &data[(at as usize).min(data.len())..];
        index_parts(&open, hints, o, chunk)
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
    fn every_part_is_joined_when_every_cut_is_a_message_start() {
        let data = [A, B].concat().repeat(8);
        let o = opts(MboxFormat::Mboxo, UidlFormat::Native);
        let one = index_mbox(&data[..], &o).expect("indexes");
        let len = data.len() as u64;
        for k in 2..=6u64 {
            let hints: Vec<u64> = (1..k).map(|j| len / k * j).collect();
            for chunk in [1, 2, CHUNK] {
                let (index, joined) = parts(&data, &hints, &o, chunk).expect("indexes");
                assert_eq!(index, one, "{k} parts, chunk {chunk}");
                assert_eq!(joined as u64, k - 1, "{k} parts, chunk {chunk}");
            }
        }
        // A hint at or before the previous cut looks after that cut; one at the end finds none.
        let (index, joined) = parts(&data, &[len / 2, len / 2, len], &o, 1).expect("indexes");
        assert_eq!((index, joined), (one, 2));
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
        let (index, joined) = index_parts(&open, &[10], &o, CHUNK).expect("indexes");
        assert_eq!((index, joined), (one, 0));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    mod props {
        use super::*;
        use crate::storage::index::tests::props::{both_formats, every_uidl_format, mbox_bytes};
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn a_split_index_is_the_single_scan_index(
                data in mbox_bytes(),
                hint in any::<prop::sample::Index>(),
                chunk in 1usize..4,
                more in prop::collection::vec(any::<prop::sample::Index>(), 1..5),
                format in both_formats(),
                uidl in every_uidl_format(),
            ) {
                let o = opts(format, uidl);
                let hint = hint.index(data.len() + 1) as u64;
                let one = index_mbox(&data[..], &o).expect("indexes");
                let (split, _) = split_chunked(&data, hint, &o, chunk).expect("indexes");
                prop_assert_eq!(split, one.clone());
                // Several parts, some cuts possibly inside Content-Length bodies.
                let mut hints: Vec<u64> =
                    more.iter().map(|h| h.index(data.len() + 1) as u64).collect();
                hints.sort_unstable();
                let (split, _) = parts(&data, &hints, &o, chunk).expect("indexes");
                prop_assert_eq!(split, one);
            }
        }
    }
}
