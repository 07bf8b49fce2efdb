//! An opened mbox maildrop: open, lock, recover, index, serve, commit.
//!
//! Lock protocol (see `lock`): the fs2 session lock for the whole session; the MDA-facing
//! dot-lock + fcntl lock only while recovering and indexing at open, and while committing at
//! QUIT — or for the whole session with `hold_mda_locks`. Between the two, MDAs may append; the
//! session only ever uses offsets below the indexed length, and the commit keeps what lies past
//! it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::ports::{CommitReport, Maildrop, MessageInfo};
use crate::storage::format::{MboxFormat, UidlFormat};
use crate::sys::credentials;

use super::cache;
use super::commit;
use super::disk_cache;
use super::encode::{encode_slice, encode_to, EncodeOptions};
use super::error::io_error;
use super::imapbase;
use super::index::{
    from_line_fingerprint, index_mbox_from, parallel, Index, IndexError, IndexOptions,
    IndexedMessage, FROM_LINE_CAP,
};
use super::journal::{self, Recovery};
use super::lock::{self, DotLock, DotLockOptions, MdaLocks, SessionLock};
use super::read_ahead::ReadAhead;
use super::StoreError;

/// How to open maildrops: the storage settings plus the session's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxOptions {
    pub format: MboxFormat,
    pub uidl: UidlFormat,
    /// Keep the dot-lock and fcntl lock for the whole session (classic daemons) instead of only
    /// while indexing and committing.
    pub hold_mda_locks: bool,
    pub dotlock_use_link: bool,
    pub dotlock_stale_age: Duration,
    /// How long to wait for an MDA's locks before `[IN-USE]`.
    pub lock_timeout: Duration,
    /// Refuse a mailbox not owned by this uid (system-user mode); `None` skips the check.
    pub owner_uid: Option<u32>,
    /// Uids besides the mailbox's owner and root whose commit journals recovery applies: the
    /// uids this daemon writes as (`user =`, and the uid it was started as). A journal owned
    /// by anyone else is ignored and logged, never applied.
    pub journal_writers: Vec<u32>,
}

impl MailboxOptions {
    fn dot(&self) -> DotLockOptions {
        DotLockOptions {
            use_link: self.dotlock_use_link,
            stale_age: self.dotlock_stale_age,
        }
    }
}

/// The uids this daemon writes journals as: the one it started as (root, or the user an inetd
/// runs it as) and the `user =` of virtual-user mode (`run_user`).
pub fn journal_writers(run_user: Option<&str>) -> Vec<u32> {
    let mut uids = vec![credentials::start_euid()];
    if let Some((uid, _, _)) = run_user.and_then(credentials::lookup_user) {
        uids.push(uid);
    }
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// An open maildrop. Implements [`Maildrop`] for the protocol core.
pub struct Mailbox {
    path: PathBuf,
    opts: MailboxOptions,
    state: State,
    read_ahead: ReadAhead,
}

enum State {
    /// The file does not exist: an empty maildrop; nothing is created.
    Missing,
    Open(Box<Opened>),
    /// After commit (or a foreign rewrite was detected): every lock released.
    Closed,
}

struct Opened {
    file: Arc<File>,
    read_only: bool,
    dev: u64,
    ino: u64,
    /// Link count when opened: a rename over the mailbox or its removal lowers it.
    nlink: u64,
    /// mtime when indexed (seconds, nanoseconds): a file of exactly the indexed length whose
    /// mtime moved was rewritten in place (an append would have made it longer).
    mtime: (i64, i64),
    /// Shared with the index cache.
    index: Arc<Index>,
    /// Visible message `i` is `index.messages[first_visible + i]`: only the first message can
    /// be the hidden pseudo message.
    first_visible: usize,
    /// Held for the whole session only with `hold_mda_locks`. Dropped before `_session`.
    held: Option<MdaLocks>,
    /// This mailbox's file in the on-disk index cache, if one is configured.
    disk: Option<disk_cache::Slot>,
    _session: SessionLock,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("path", &self.path)
            .field("messages", &self.count())
            .finish()
    }
}

/// Open the spool file without following a symlink, without updating atime (procmail waits a
/// second when atime > mtime) and without blocking on a FIFO. `Ok(None)`: no such file.
fn open_spool(path: &Path) -> Result<Option<(File, bool)>, StoreError> {
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    let try_open = |write: bool, flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(flags)
            .open(path)
    };
    let mut read_only = false;
    let mut attempt = try_open(true, base | libc::O_NOATIME);
    loop {
        match attempt {
            Ok(f) => return Ok(Some((f, read_only))),
            // O_NOATIME is allowed only to the owner (or CAP_FOWNER).
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                attempt = try_open(!read_only, base);
                if let Err(e2) = &attempt {
                    if e2.raw_os_error() == Some(libc::EPERM) {
                        return Err(StoreError::Permanent(format!(
                            "cannot open {}: {e2}",
                            path.display()
                        )));
                    }
                }
            }
            Err(e)
                if !read_only
                    && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EROFS)) =>
            {
                // Readable but not writable: serve it, refuse deletions at QUIT.
                read_only = true;
                attempt = try_open(false, base | libc::O_NOATIME);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                log::error!("{} is a symbolic link; refusing it", path.display());
                return Err(StoreError::Permanent(format!(
                    "{} is a symbolic link",
                    path.display()
                )));
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                return Err(StoreError::Permanent(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(StoreError::Temporary(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// Reads `[pos, end)` of a file with pread, independent of the shared file cursor.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.end.saturating_sub(self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The message's From_ line is not where the index says (the file was rewritten).
#[derive(Debug)]
struct Moved;

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the From_ line moved")
    }
}

impl std::error::Error for Moved {}

/// Reads a message from its From_ line: the line (`skip` bytes) is not passed on but its
/// fingerprint is checked first, so serving a message costs one read, not two, and nothing is
/// sent from a rewritten file.
struct FromChecked<'a> {
    inner: ReadAt<'a>,
    skip: usize,
    seen: usize,
    head: [u8; FROM_LINE_CAP],
    expect: u32,
}

impl Read for FromChecked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.seen < self.skip {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Err(io::Error::other(Moved));
            }
            let take = n.min(self.skip - self.seen);
            if self.seen < FROM_LINE_CAP {
                let k = take.min(FROM_LINE_CAP - self.seen);
                self.head[self.seen..self.seen + k].copy_from_slice(&buf[..k]);
            }
            self.seen += take;
            if self.seen == self.skip {
                let line = &self.head[..self.skip.min(FROM_LINE_CAP)];
                if from_line_fingerprint(line) != self.expect {
                    return Err(io::Error::other(Moved));
                }
            }
            if take < n {
                buf.copy_within(take..n, 0);
                return Ok(n - take);
            }
        }
        self.inner.read(buf)
    }
}

/// Remembers whether an error came from the client side of a copy, so a failed socket write
/// (`Client`) is not mistaken for a failed disk read (`Temporary`).
struct ClientWriter<'a> {
    out: &'a mut dyn Write,
    failed: bool,
}

impl Write for ClientWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.out.write(b).inspect_err(|_| self.failed = true)
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b).inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().inspect_err(|_| self.failed = true)
    }
}

impl Mailbox {
    /// Open, lock, recover an interrupted commit, and index the maildrop at `path`.
    pub fn open(path: &Path, opts: &MailboxOptions) -> Result<Mailbox, StoreError> {
        Mailbox::open_cached(path, opts, None)
    }

    /// [`Mailbox::open`], with the mailbox's file in the on-disk index cache (`disk`, opened
    /// before the session took the user's identity): its index is reused when the checks
    /// allow, and it receives the new index.
    pub fn open_cached(
        path: &Path,
        opts: &MailboxOptions,
        disk: Option<disk_cache::Slot>,
    ) -> Result<Mailbox, StoreError> {
        let Some((file, read_only)) = open_spool(path)? else {
            if journal::journal_path(path).exists() {
                log::error!(
                    "{}: a commit journal exists but the mailbox does not; leaving both alone",
                    path.display()
                );
            }
            return Ok(Mailbox {
                path: path.to_owned(),
                opts: opts.clone(),
                state: State::Missing,
                read_ahead: ReadAhead::default(),
            });
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::Temporary(format!("cannot stat {}: {e}", path.display())))?;
        if !meta.file_type().is_file() {
            log::error!("{} is not a regular file; refusing it", path.display());
            return Err(StoreError::Permanent(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if let Some(uid) = opts.owner_uid {
            if meta.uid() != uid {
                log::error!(
                    "{} is owned by uid {}, not by the user (uid {uid}); refusing it",
                    path.display(),
                    meta.uid()
                );
                return Err(StoreError::Permanent(format!(
                    "{} is not owned by the user",
                    path.display()
                )));
            }
        }
        let file = Arc::new(file);
        let session = SessionLock::try_acquire(Arc::clone(&file), path)?;
        let locks = MdaLocks::acquire(&file, path, !read_only, &opts.dot(), opts.lock_timeout)?;

        if read_only {
            // Only a journal recovery would apply blocks the login; anything else at that
            // name is not ours and must not lock the user out.
            let pending = fs::symlink_metadata(journal::journal_path(path)).is_ok_and(|j| {
                j.file_type().is_file()
                    && journal::trusted(j.uid(), meta.uid(), &opts.journal_writers)
            });
            if pending {
                return Err(StoreError::Temporary(format!(
                    "{}: an interrupted commit needs recovery but the mailbox is read-only",
                    path.display()
                )));
            }
        } else {
            commit::recover_logged(&file, path, &opts.journal_writers)?;
        }

        let meta = file
            .metadata()
            .map_err(|e| StoreError::Temporary(format!("cannot stat {}: {e}", path.display())))?;
        let index = load_index(&file, path, opts, &cache::Stamp::of(&meta), disk.as_ref())?;
        let first_visible = usize::from(index.messages.first().is_some_and(|m| m.hidden));
        let held = if opts.hold_mda_locks {
            Some(locks)
        } else {
            drop(locks);
            None
        };
        Ok(Mailbox {
            path: path.to_owned(),
            opts: opts.clone(),
            read_ahead: ReadAhead::default(),
            state: State::Open(Box::new(Opened {
                file,
                read_only,
                dev: meta.dev(),
                ino: meta.ino(),
                nlink: meta.nlink(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                index,
                first_visible,
                held,
                disk,
                _session: session,
            })),
        })
    }

    /// The indexed length (bytes that belong to the listed messages).
    pub fn indexed_len(&self) -> u64 {
        match &self.state {
            State::Open(o) => o.index.length,
            _ => 0,
        }
    }

    fn opened(&self) -> Result<&Opened, StoreError> {
        match &self.state {
            State::Open(o) => Ok(o),
            State::Missing => Err(StoreError::Temporary(String::from("no such message"))),
            State::Closed => Err(StoreError::Temporary(String::from(
                "the maildrop is closed",
            ))),
        }
    }

    /// Cheap checks that the file still is what was indexed: same inode at the path, not
    /// shorter than the indexed length, and the From_ line of `messages` where we left it.
    /// Growth alone is an MDA's append, not a change.
    ///
    /// The mtime test needs the MDA locks held (`locked`): without them an MDA may be in the
    /// middle of an append, and Linux updates mtime before it grows the size, so a stat can see
    /// the new mtime with the old length.
    ///
    /// `strict`: always look the path up (commits). Otherwise (RETR, TOP) only when the
    /// inode's link count moved since the open: replacing or removing the mailbox unlinks our
    /// inode from its name, and the path walk is the largest cost of a small RETR. Whatever is
    /// served comes from our descriptor, whose bytes the other checks vouch for.
    fn verify(
        &self,
        o: &Opened,
        messages: &[usize],
        locked: bool,
        strict: bool,
    ) -> Result<(), StoreError> {
        let changed = |what: String| {
            log::error!(
                "{}: changed by another program during the session: {what}",
                self.path.display()
            );
            StoreError::Changed(what)
        };
        let meta = o
            .file
            .metadata()
            .map_err(|e| io_error("cannot stat", &self.path, &e))?;
        if strict || meta.nlink() != o.nlink {
            match fs::symlink_metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) == (o.dev, o.ino) => {}
                Ok(_) => return Err(changed(String::from("the mailbox was replaced"))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(changed(String::from("the mailbox was removed")))
                }
                Err(e) => return Err(io_error("cannot stat", &self.path, &e)),
            }
        }
        let len = meta.len();
        if len < o.index.length {
            return Err(changed(format!(
                "the mailbox shrank from {} to {len} bytes",
                o.index.length
            )));
        }
        if locked && len == o.index.length && (meta.mtime(), meta.mtime_nsec()) != o.mtime {
            return Err(changed(String::from(
                "the mailbox was modified in place (same length, new mtime)",
            )));
        }
        for &i in messages {
            let m: &IndexedMessage = &o.index.messages[i];
            let same = from_line_matches(&o.file, m)
                .map_err(|e| io_error("cannot read", &self.path, &e))?;
            if !same {
                return Err(changed(format!(
                    "message {} no longer starts at offset {}",
                    i + 1,
                    m.from_offset
                )));
            }
        }
        Ok(())
    }

    /// Release every lock; the session is over for the storage.
    fn close(&mut self) {
        self.state = State::Closed;
        self.read_ahead.clear();
    }
}

/// Whether the From_ line of `m` is still where it was indexed (fingerprint of its start).
fn from_line_matches(file: &File, m: &IndexedMessage) -> io::Result<bool> {
    let mut buf = [0u8; FROM_LINE_CAP];
    let line_len = ((m.header_offset() - m.from_offset) as usize).min(FROM_LINE_CAP);
    match file.read_exact_at(&mut buf[..line_len], m.from_offset) {
        Ok(()) => Ok(from_line_fingerprint(&buf[..line_len]) == m.from_line),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fingerprint of the (at most) 4 KiB of the file that end at `len`: a cached index is reused
/// only if these bytes are still the same (with the From_ lines, this catches rewrites that
/// moved anything, even when every From_ line looks alike).
fn tail_fingerprint(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let n = len.min(buf.len() as u64) as usize;
    match file.read_exact_at(&mut buf[..n], len - n as u64) {
        Ok(()) => Ok(xxhash_rust::xxh3::xxh3_64(&buf[..n])),
        // Shorter than that now: no match possible.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

/// How many From_ lines are re-read before a cached index is reused.
const CACHE_CHECKS: usize = 64;

/// The index of the file in state `stamp` (MDA locks held): the cached one (from memory, else
/// from `disk`) when the file is unchanged, the cached one continued when it only grew, else
/// a fresh one; cached for the next session either way.
fn load_index(
    file: &File,
    path: &Path,
    opts: &MailboxOptions,
    stamp: &cache::Stamp,
    disk: Option<&disk_cache::Slot>,
) -> Result<Arc<Index>, StoreError> {
    let (format, uidl) = (opts.format, opts.uidl);
    // Judged before anything is read: a write in the same clock tick as the change `stamp`
    // shows would not move it, so what is read below could not be told from that state.
    let settled = !cache::racy(stamp);
    let read_error = |e: io::Error| io_error("cannot read", path, &e);
    let checked = |ix: &Index, tail: u64| -> Result<bool, StoreError> {
        if tail_fingerprint(file, ix.length).map_err(read_error)? != tail {
            log::info!("{}: rewritten since it was last indexed", path.display());
            return Ok(false);
        }
        for i in cache::sample(ix.messages.len(), CACHE_CHECKS) {
            if !from_line_matches(file, &ix.messages[i])
                .map_err(|e| io_error("cannot read", path, &e))?
            {
                log::info!("{}: rewritten since it was last indexed", path.display());
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut source = "memory";
    let mut found = cache::lookup(path, format, uidl, stamp);
    if let (cache::Lookup::Miss, Some(d)) = (&found, disk) {
        source = "disk";
        found = d.lookup(stamp);
    }
    // Greppable: how much of the file a login read.
    let report = |reused: u64, how: &str, source: &str| {
        log::debug!(
            "{}: index {how}: reused={reused} scanned={} cache={source}",
            path.display(),
            stamp.len - reused.min(stamp.len)
        );
    };
    let index = match found {
        cache::Lookup::Unchanged(ix, tail) if checked(&ix, tail)? => {
            report(ix.length, "unchanged", source);
            cache::count_hit(false);
            if source == "disk" {
                cache::store(path, format, uidl, *stamp, tail, &ix);
            }
            return Ok(ix);
        }
        cache::Lookup::Grown(ix, tail) if checked(&ix, tail)? => {
            let from = ix.resume_offset().unwrap_or(0);
            report(from, "continued", source);
            // The indexer reads in large blocks itself: no buffer in between. Up to the length
            // the file had when it was judged grown (see `index_file`).
            let reader = ReadAt {
                file,
                pos: from,
                end: stamp.len,
            };
            let iopts = IndexOptions { format, uidl };
            // Sole owner (the cache let go of it): continued in place; else a copy.
            let prefix = Arc::try_unwrap(ix).unwrap_or_else(|shared| (*shared).clone());
            match index_mbox_from(reader, &iopts, prefix) {
                Ok(new) => {
                    cache::count_hit(true);
                    new
                }
                Err(IndexError::Io(e)) => return Err(io_error("cannot read", path, &e)),
                Err(IndexError::NotMbox(_)) => index_file(file, path, opts, stamp.len)?,
            }
        }
        _ => {
            report(0, "built", "none");
            index_file(file, path, opts, stamp.len)?
        }
    };
    let index = Arc::new(index);
    let tail = tail_fingerprint(file, index.length).map_err(read_error)?;
    // The index and the tail were read after `stamp` was taken, and anyone who ignores our
    // locks (the owner) may have written meanwhile. Kept under `stamp`, an index of bytes the
    // file no longer holds would pass a later login's checks (the tail and the From_ lines were
    // read after the write) and be continued once the file grows: keep it only if the file is
    // still in that state.
    if !settled {
        return Ok(index);
    }
    if !file
        .metadata()
        .is_ok_and(|m| cache::Stamp::of(&m) == *stamp)
    {
        log::info!("{}: changed while it was indexed", path.display());
        return Ok(index);
    }
    cache::store(path, format, uidl, *stamp, tail, &index);
    if let Some(d) = disk {
        if cache::storable(stamp, &index, false) {
            d.store(stamp, tail, &index);
        }
    }
    Ok(index)
}

/// Index `file` from scratch, up to `len` (its length when the login judged it).
fn index_file(
    file: &File,
    path: &Path,
    opts: &MailboxOptions,
    len: u64,
) -> Result<Index, StoreError> {
    crate::sys::memory::tune_allocator();
    crate::sys::file_io::advise_sequential(file);
    let iopts = IndexOptions {
        format: opts.format,
        uidl: opts.uidl,
    };
    // The indexer reads in large blocks itself: no buffer in between. Every reader stops at
    // `len`: MDAs wait for our locks, and a writer that ignores them (the owner, appending
    // without end) must not keep this login reading; what it added is indexed at the next
    // login.
    let open_at = |pos: u64| ReadAt {
        file,
        pos,
        end: len,
    };
    parallel::index_file(open_at, len, &iopts).map_err(|e| match e {
        IndexError::NotMbox(why) => {
            log::error!(
                "{} is not an mbox file ({why}); refusing it and leaving it untouched",
                path.display()
            );
            StoreError::Permanent(format!("{} is not an mbox file", path.display()))
        }
        IndexError::Io(e) => io_error("cannot read", path, &e),
    })
}

impl Opened {
    /// The index (into `index.messages`) of visible message `index`.
    fn visible(&self, index: usize) -> Option<usize> {
        let i = self.first_visible.checked_add(index)?;
        (i < self.index.messages.len()).then_some(i)
    }
}

impl Maildrop for Mailbox {
    fn count(&self) -> usize {
        match &self.state {
            State::Open(o) => o.index.messages.len() - o.first_visible,
            _ => 0,
        }
    }

    fn size(&self, index: usize) -> u64 {
        match &self.state {
            State::Open(o) => o.visible(index).map_or(0, |i| o.index.messages[i].size),
            _ => 0,
        }
    }

    fn info(&self, index: usize) -> MessageInfo {
        match &self.state {
            State::Open(o) => o.visible(index).map_or_else(MessageInfo::default, |i| {
                let m = &o.index.messages[i];
                MessageInfo {
                    size: m.size,
                    uidl: m.uidl.to_string(),
                }
            }),
            _ => MessageInfo::default(),
        }
    }

    fn write_message(
        &mut self,
        index: usize,
        top: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), StoreError> {
        // Borrows only `state`: the read-ahead beside it is used mutably below.
        let State::Open(o) = &self.state else {
            return self.opened().map(|_| ());
        };
        let i = o
            .visible(index)
            .ok_or_else(|| StoreError::Temporary(format!("no message {}", index + 1)))?;
        // The From_ line is checked from the same read that starts the message (below).
        if let Err(e) = self.verify(o, &[], o.held.is_some(), false) {
            if matches!(e, StoreError::Changed(_)) {
                self.close();
            }
            return Err(e);
        }
        let m = &o.index.messages[i];
        let mut w = ClientWriter { out, failed: false };
        let opts = EncodeOptions {
            format: self.opts.format,
            top,
        };
        let range = m.from_offset..o.index.end_offset(i);
        let skip = (m.header_offset() - m.from_offset) as usize;
        let served = match self.read_ahead.get(&o.file, range, o.index.length) {
            Ok(Some(bytes)) => match bytes.get(skip..) {
                Some(body) if from_line_fingerprint(&bytes[..skip]) == m.from_line => {
                    encode_slice(body, opts, &mut w)
                }
                _ => Err(io::Error::other(Moved)),
            },
            Ok(None) => {
                // Larger than the read-ahead: streamed in large blocks, no buffer in between.
                let src = FromChecked {
                    inner: ReadAt {
                        file: &o.file,
                        pos: m.from_offset,
                        end: o.index.end_offset(i),
                    },
                    skip,
                    seen: 0,
                    head: [0; FROM_LINE_CAP],
                    expect: m.from_line,
                };
                encode_to(src, opts, &mut w)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::other(Moved)),
            Err(e) => Err(e),
        };
        match served {
            Ok(_) => Ok(()),
            Err(e) if w.failed => Err(StoreError::Client(e)),
            Err(e) if e.get_ref().is_some_and(|r| r.is::<Moved>()) => {
                let what = format!(
                    "message {} no longer starts at offset {}",
                    i + 1,
                    m.from_offset
                );
                log::error!(
                    "{}: changed by another program during the session: {what}",
                    self.path.display()
                );
                self.close();
                Err(StoreError::Changed(what))
            }
            Err(e) => Err(io_error("cannot read", &self.path, &e)),
        }
    }

    fn commit(&mut self, deleted: &[usize]) -> Result<CommitReport, StoreError> {
        let o = match &self.state {
            State::Open(o) => o,
            // An empty (missing) maildrop has nothing to delete and nothing is created.
            State::Missing => {
                self.close();
                return Ok(CommitReport::default());
            }
            State::Closed => {
                return Err(StoreError::Temporary(String::from(
                    "the maildrop is closed",
                )))
            }
        };
        let mut targets = Vec::with_capacity(deleted.len());
        for &d in deleted {
            let i = o
                .visible(d)
                .ok_or_else(|| StoreError::Temporary(format!("no message {}", d + 1)))?;
            targets.push(i);
        }
        targets.sort_unstable();
        targets.dedup();
        if targets.is_empty() {
            self.close();
            return Ok(CommitReport::default());
        }
        if o.read_only {
            let msg = format!(
                "{} is read-only; the deletions were not applied",
                self.path.display()
            );
            log::error!("{msg}");
            self.close();
            return Err(StoreError::Permanent(msg));
        }

        let _locks = match &o.held {
            Some(_) => None,
            None => Some(MdaLocks::acquire(
                &o.file,
                &self.path,
                true,
                &self.opts.dot(),
                self.opts.lock_timeout,
            )?),
        };
        // Check the deleted messages and the ones right after them: those are the offsets the
        // rewrite relies on.
        let mut check = targets.clone();
        check.extend(
            targets
                .iter()
                .map(|&i| i + 1)
                .filter(|&i| i < o.index.messages.len()),
        );
        check.sort_unstable();
        check.dedup();
        if let Err(e) = self.verify(o, &check, true, true) {
            self.close();
            return Err(e);
        }
        let old_len = o
            .file
            .metadata()
            .map_err(|e| io_error("cannot stat", &self.path, &e))?
            .len();
        let ranges: Vec<Range<u64>> = targets
            .iter()
            .map(|&i| o.index.messages[i].from_offset..o.index.next_offset(i))
            .collect();
        // The UIDVALIDITY field moves to the new first message in the same rewrite.
        let carry = match imapbase::plan_for_commit(&o.file, &o.index, &targets, old_len) {
            Ok(c) => c,
            Err(e) => {
                self.close();
                return Err(io_error("cannot read", &self.path, &e));
            }
        };
        let insert = carry.as_ref().map(|c| commit::Insert {
            at: c.at,
            bytes: &c.bytes,
        });
        // From here on the cache file may describe neither file: a crash mid-commit must not
        // leave it to be taken for the old file grown.
        if let Some(d) = &o.disk {
            d.clear();
        }
        let result = commit::rewrite(
            &o.file,
            &self.path,
            &ranges,
            insert,
            old_len,
            &self.opts.journal_writers,
        );
        if carry.is_some() && result.is_ok() {
            log::info!(
                "{}: moved the UIDVALIDITY header to the new first message",
                self.path.display()
            );
        }
        // The cached index describes the old file: free it now. When the new file's index
        // follows from the old one exactly (and nothing else moved), the next session gets it.
        cache::forget(&self.path);
        if result.is_ok() && carry.is_none() {
            if let (Some(next), Ok(meta)) = (o.index.without(&targets), o.file.metadata()) {
                if let Ok(tail) = tail_fingerprint(&o.file, next.length) {
                    let stamp = cache::Stamp::of(&meta);
                    let next = Arc::new(next);
                    let (format, uidl) = (self.opts.format, self.opts.uidl);
                    cache::store_own(&self.path, format, uidl, stamp, tail, &next);
                    if let Some(d) = &o.disk {
                        if cache::storable(&stamp, &next, true) {
                            d.store(&stamp, tail, &next);
                        }
                    }
                }
            }
        }
        let report = result.map(|stats| CommitReport {
            deleted_messages: targets.len(),
            deleted_octets: targets.iter().map(|&i| o.index.messages[i].size).sum(),
            rewritten_bytes: stats.rewritten_bytes,
        });
        drop(_locks);
        self.close();
        report
    }
}

/// Recover an interrupted commit of the mailbox at `path`, if its journal exists, and release
/// a dot-lock left by a dead mboxpopd process. The daemon calls this at start-up (see
/// [`recover_spool_dir`]) so mail is consistent and MDAs are free again before any of them
/// would take over (or wait out) our stale locks. A mailbox in use is skipped (`InUse`) after
/// at most `opts.lock_timeout`.
pub fn recover(path: &Path, opts: &MailboxOptions) -> Result<Recovery, StoreError> {
    let journal_present = fs::symlink_metadata(journal::journal_path(path)).is_ok();
    if !journal_present && !lock::held_by_dead_mboxpopd(&DotLock::path_for(path)) {
        return Ok(Recovery::Clean);
    }
    let Some((file, read_only)) = open_spool(path)? else {
        return Ok(Recovery::Clean);
    };
    if read_only {
        return Err(StoreError::Temporary(format!(
            "{}: cannot recover a read-only mailbox",
            path.display()
        )));
    }
    let file = Arc::new(file);
    let _session = SessionLock::try_acquire(Arc::clone(&file), path)?;
    // Taking the MDA locks takes over our dead dot-lock; dropping them releases it.
    let _locks = MdaLocks::acquire(&file, path, true, &opts.dot(), opts.lock_timeout)?;
    commit::recover_logged(&file, path, &opts.journal_writers)
}

/// Run [`recover`] for every mailbox in `dir` that has a commit journal or a dot-lock of a
/// dead mboxpopd process.
pub fn recover_spool_dir(
    dir: &Path,
    opts: &MailboxOptions,
) -> io::Result<Vec<(PathBuf, Result<Recovery, StoreError>)>> {
    let mut mailboxes = std::collections::BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(m) = name.strip_suffix(".mboxpopd-journal") {
            mailboxes.insert(m.to_owned());
        } else if let Some(m) = name.strip_suffix(".lock") {
            if lock::held_by_dead_mboxpopd(&dir.join(name)) {
                mailboxes.insert(m.to_owned());
            }
        }
    }
    Ok(mailboxes
        .into_iter()
        .map(|m| {
            let path = dir.join(m);
            let r = recover(&path, opts);
            (path, r)
        })
        .collect())
}
