//! Indexes that outlive the session: an in-memory cache per mailbox path, bounded in total
//! size (least recently used out first).
//!
//! An entry is trusted only for the very file it was made from: same device and inode, and
//! then either
//! - *unchanged*: same length, mtime and ctime (nanoseconds) — nothing wrote to the file since
//!   (ctime cannot be set back by anyone); or
//! - *grown*: longer than the indexed length, and the From_ lines at the indexed offsets still
//!   there — an MDA appended. The index is continued from [`Index::resume_offset`].
//!
//! A state younger than a clock tick is never cached ([`RACY`]): a write in the same tick
//! would not move the timestamps. Beyond that, an in-place rewrite that keeps the length and
//! every sampled From_ line where it was *and* is followed by an append is taken for an append
//! (no mail program rewrites that way: mutt and Dovecot shift the messages after an edit).
//!
//! Either way the caller re-reads a sample of From_ lines ([`sample`]) and compares their
//! fingerprints before reusing anything. Anything else (shorter, same length with a new mtime
//! or ctime, another inode) is indexed from scratch. The cache is process-wide: in the
//! standalone daemon it serves later sessions; in inetd mode it dies with the process, and
//! `disk_cache` keeps indexes across processes under the same rules ([`verdict`],
//! [`storable`]).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::storage::format::{MboxFormat, UidlFormat};

use super::index::Index;

/// Default bound on the indexes kept (48 bytes a message: about 5.6 million messages).
pub const DEFAULT_LIMIT: usize = 256 << 20;

/// What identifies a file's state: a write changes mtime and ctime, a replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

type Key = PathBuf;

struct Entry {
    /// Fingerprint of the last bytes below the indexed length ([`Lookup`]).
    tail: u64,
    /// The options the index was made with.
    format: MboxFormat,
    uidl: UidlFormat,
    stamp: Stamp,
    index: Arc<Index>,
    bytes: usize,
    used: u64,
}

struct Cache {
    entries: HashMap<Key, Entry>,
    total: usize,
    limit: usize,
    clock: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

static REUSED: AtomicU64 = AtomicU64::new(0);
static CONTINUED: AtomicU64 = AtomicU64::new(0);

/// Indexes reused unchanged and continued over a grown file so far (for logs and tests).
pub fn stats() -> (u64, u64) {
    (
        REUSED.load(Ordering::Relaxed),
        CONTINUED.load(Ordering::Relaxed),
    )
}

/// Count a reuse (`grown`: continued) once the caller's checks passed.
pub fn count_hit(grown: bool) {
    let c = if grown { &CONTINUED } else { &REUSED };
    c.fetch_add(1, Ordering::Relaxed);
}

fn with<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    let mut guard = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = guard.get_or_insert_with(|| Cache {
        entries: HashMap::new(),
        total: 0,
        limit: DEFAULT_LIMIT,
        clock: 0,
    });
    f(cache)
}

/// Bound the total size of cached indexes (0 disables the cache).
pub fn set_limit(bytes: usize) {
    with(|c| {
        c.limit = bytes;
        c.evict();
    });
}

/// What the cache holds for a file in the state `now`. Either way the caller checks, before
/// reusing anything, the sampled From_ lines and the fingerprint (the `u64`) of the last bytes
/// below the indexed length, which an edit that moved anything changes.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Indexed in exactly this state.
    Unchanged(Arc<Index>, u64),
    /// Indexed when shorter, same inode: continue it if the checks pass.
    Grown(Arc<Index>, u64),
    Miss,
}

/// How a cached index made from the file in state `then` (with `format`/`uidl`, now wanted
/// with `want`) relates to the file in state `now`: the one rule for the memory and the disk
/// cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    Grown,
    Stale,
}

pub fn verdict(
    then: &Stamp,
    made: (MboxFormat, UidlFormat),
    index: &Index,
    want: (MboxFormat, UidlFormat),
    now: &Stamp,
) -> Verdict {
    let same_file = made == want && (then.dev, then.ino) == (now.dev, now.ino);
    if same_file && then == now && index.length == now.len {
        Verdict::Unchanged
    } else if same_file && now.len > index.length && index.resume_offset().is_some() {
        Verdict::Grown
    } else {
        Verdict::Stale
    }
}

/// Whether an index of the file in state `stamp` may be kept for later sessions: it covers the
/// whole file, and (unless the state is our own commit's, see [`store_own`]) the state is not
/// younger than [`RACY`].
pub fn storable(stamp: &Stamp, index: &Index, own: bool) -> bool {
    stamp.len == index.length && (own || !racy(stamp))
}

pub fn lookup(path: &Path, format: MboxFormat, uidl: UidlFormat, now: &Stamp) -> Lookup {
    with(|c| {
        c.clock += 1;
        let clock = c.clock;
        let Some(e) = c.entries.get_mut(path) else {
            return Lookup::Miss;
        };
        e.used = clock;
        let v = verdict(&e.stamp, (e.format, e.uidl), &e.index, (format, uidl), now);
        if v == Verdict::Unchanged {
            return Lookup::Unchanged(Arc::clone(&e.index), e.tail);
        }
        // Anything else replaces the entry: let it go now, before the new index is built.
        let Some(e) = c.entries.remove(path) else {
            return Lookup::Miss;
        };
        c.total -= e.bytes;
        if v == Verdict::Grown {
            return Lookup::Grown(e.index, e.tail);
        }
        Lookup::Miss
    })
}

/// How recent a change may be for its state not to be cached. File timestamps advance in
/// clock ticks (a few milliseconds): a write in the same tick as the change the stamp shows
/// would leave mtime and ctime as they are, so such a "racy" state is not trusted (git's rule).
pub const RACY: Duration = Duration::from_millis(20);

/// Whether the state `stamp` is younger than [`RACY`] now: a write from now on could leave it
/// as it is.
pub fn racy(stamp: &Stamp) -> bool {
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        return true;
    };
    let latest = stamp.mtime.max(stamp.ctime);
    let Ok(secs) = u64::try_from(latest.0) else {
        return true;
    };
    let changed = Duration::new(secs, u32::try_from(latest.1).unwrap_or(0));
    now.saturating_sub(changed) < RACY
}

/// Remember `index`, made from the file in state `stamp` (taken under the MDA locks). A state
/// younger than [`RACY`] is not remembered.
pub fn store(
    path: &Path,
    format: MboxFormat,
    uidl: UidlFormat,
    stamp: Stamp,
    tail: u64,
    index: &Arc<Index>,
) {
    insert(path, format, uidl, stamp, tail, index, true);
}

/// Remember the index of a file this process has just rewritten, in state `stamp` taken
/// before the MDA locks are released. The racy-state rule does not apply: the change is our
/// own, made under the locks; a later append changes the length, and a program that rewrote
/// the file in place within the same clock tick after we let go is the one case not seen.
pub fn store_own(
    path: &Path,
    format: MboxFormat,
    uidl: UidlFormat,
    stamp: Stamp,
    tail: u64,
    index: &Arc<Index>,
) {
    insert(path, format, uidl, stamp, tail, index, false);
}

fn insert(
    path: &Path,
    format: MboxFormat,
    uidl: UidlFormat,
    stamp: Stamp,
    tail: u64,
    index: &Arc<Index>,
    racy_check: bool,
) {
    let key = path.to_owned();
    let bytes = index.heap_bytes() + path.as_os_str().len() + 128;
    with(|c| {
        if let Some(old) = c.entries.remove(&key) {
            c.total -= old.bytes;
        }
        if bytes > c.limit || !storable(&stamp, index, !racy_check) {
            return;
        }
        c.clock += 1;
        c.total += bytes;
        let used = c.clock;
        c.entries.insert(
            key,
            Entry {
                tail,
                format,
                uidl,
                stamp,
                index: Arc::clone(index),
                bytes,
                used,
            },
        );
        c.evict();
    });
}

/// Forget the entry of `path`.
pub fn forget(path: &Path) {
    with(|c| {
        if let Some(e) = c.entries.remove(path) {
            c.total -= e.bytes;
        }
    });
}

impl Cache {
    fn evict(&mut self) {
        while self.total > self.limit {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.total -= e.bytes;
            }
        }
    }
}

/// The messages whose From_ lines are re-read before an index is reused: all of them up to
/// `max`, else `max` spread evenly, always including the first and the last.
pub fn sample(count: usize, max: usize) -> Vec<usize> {
    if count <= max {
        return (0..count).collect();
    }
    let mut v: Vec<usize> = (0..max).map(|i| i * (count - 1) / (max - 1)).collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_the_ends() {
        assert_eq!(sample(3, 64), [0, 1, 2]);
        let s = sample(100_000, 64);
        assert_eq!(s.len(), 64);
        assert_eq!(s[0], 0);
        assert_eq!(s[63], 99_999);
        assert!(sample(0, 64).is_empty());
    }
}
