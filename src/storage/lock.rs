//! Locks around an mbox spool.
//!
//! Three independent locks, for three different audiences:
//! - the *session lock*, an fs2 (flock) exclusive lock held for the whole POP3 session, keeps a
//!   second mboxpopd session (any process or thread) out. MDAs never look at it.
//! - the *dot-lock* `PATH.lock` and
//! - an *fcntl write lock* on the whole file, including everything past its end,
//!
//! are the locks MDAs honour (Postfix `local`, Exim, procmail, mutt). They are taken in that
//! order — dot-lock first, then fcntl — because procmail does the same: taking fcntl first
//! deadlocks against a procmail that holds the dot-lock and blocks in fcntl (see NOTES.md).
//!
//! Every lock is an RAII guard: dropping it (normal return, `?`, panic unwinding) releases it and
//! removes the dot-lock file.
//!
//! Our dot-lock names its owner beyond doubt: `PID:HOST` on the first line (what Dovecot writes
//! and reads) and `mboxpopd boot=BOOT_ID start=TICKS` on the second, TICKS being the owner's
//! start time (`/proc/PID/stat` field 22). A lock in this format from this host and boot whose
//! owner is gone is taken over at once, so a crash does not lock users and MDAs out for
//! `dotlock_stale_age`; every other lock keeps the classic age + pid rule (see [`judge`]).
//!
//! Lock files are data written by whoever may create files in the spool directory: they are
//! opened without following symlinks or blocking on FIFOs, and read up to a small bound.

use crate::sys::file_lock as sys;
use crate::sys::process;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fs2::FileExt;

use super::StoreError;

/// The session lock: an exclusive flock on the open mailbox file, held until dropped.
///
/// flock locks belong to the open file description, so a second open of the same file — even
/// from another thread of this process — conflicts, which is exactly the session semantics.
#[derive(Debug)]
pub struct SessionLock {
    file: Arc<File>,
}

impl SessionLock {
    /// Try once, without waiting: a maildrop in use is reported at once as `[IN-USE]`.
    pub fn try_acquire(file: Arc<File>, path: &Path) -> Result<Self, StoreError> {
        match file.try_lock_exclusive() {
            Ok(()) => Ok(SessionLock { file }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || is_would_block(&e) => Err(
                StoreError::InUse(format!("{} is locked by another session", path.display())),
            ),
            Err(e) => Err(StoreError::Temporary(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Closing the file would release it too; unlocking explicitly keeps the guard honest
        // when the file outlives the lock.
        let _ = FileExt::unlock(&*self.file);
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EWOULDBLOCK) || e.raw_os_error() == Some(libc::EAGAIN)
}

/// How to create dot-locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DotLockOptions {
    /// Create a unique file and link(2) it to `PATH.lock` (works on NFSv2) instead of O_EXCL.
    pub use_link: bool,
    /// A dot-lock at least this old whose owner process is gone is taken over.
    pub stale_age: Duration,
}

/// The outcome of one attempt to create the dot-lock.
enum Attempt {
    Acquired(DotLock),
    Busy,
    /// `PATH.lock` is not a lock file (a FIFO, a symlink, ...) and we may not remove it.
    Blocked(String),
}

/// A dot-lock file `PATH.lock` naming us (see the module docs). Removed on drop if it is
/// still ours.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
    /// Identity of the lock file we created, so drop never removes a lock someone else made
    /// after taking ours over.
    dev: u64,
    ino: u64,
}

impl DotLock {
    /// The dot-lock path for a mailbox: `PATH.lock`.
    pub fn path_for(mailbox: &Path) -> PathBuf {
        let mut p = mailbox.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    fn try_once(mailbox: &Path, opts: &DotLockOptions) -> io::Result<Attempt> {
        let path = Self::path_for(mailbox);
        // A second try only right after removing a stale lock.
        for _ in 0..2 {
            let created = if opts.use_link {
                create_by_link(&path)
            } else {
                create_excl(&path)
            };
            match created {
                Ok((dev, ino)) => return Ok(Attempt::Acquired(DotLock { path, dev, ino })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match take_over_if_stale(&path, opts.stale_age)? {
                        Takeover::Removed => {}
                        Takeover::Busy => return Ok(Attempt::Busy),
                        Takeover::Unremovable(why) => return Ok(Attempt::Blocked(why)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // Someone else created a new lock right after we removed the stale one.
        Ok(Attempt::Busy)
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("cannot remove dot-lock {}: {e}", self.path.display());
                }
            }
            Ok(_) => log::warn!(
                "dot-lock {} was replaced by another process; leaving it",
                self.path.display()
            ),
            Err(e) => log::warn!("dot-lock {} vanished: {e}", self.path.display()),
        }
    }
}

fn lock_contents() -> String {
    let pid = std::process::id();
    let host = process::host_name();
    match (process::boot_id(), process::own_start_time()) {
        (Some(boot), Some(start)) => format!("{pid}:{host}\nmboxpopd boot={boot} start={start}\n"),
        // Without /proc nothing beyond the pid identifies us: others judge the lock by age.
        _ => format!("{pid}:{host}\n"),
    }
}

/// What a dot-lock says about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LockOwner {
    /// Written by mboxpopd: identifies the owning process across pid reuse and reboots.
    Ours {
        pid: i32,
        host: String,
        boot: String,
        start: u64,
    },
    /// Any other program's lock: a bare pid (mutt, Exim), `pid:host` (Dovecot), `0`
    /// (procmail) or anything else. The pid, if one can be read.
    Foreign { pid: Option<i32> },
}

impl LockOwner {
    pub(crate) fn pid(&self) -> Option<i32> {
        match self {
            LockOwner::Ours { pid, .. } => Some(*pid),
            LockOwner::Foreign { pid } => *pid,
        }
    }
}

/// Parse the first bytes of a lock file. Never fails: what is not our format is foreign.
pub(crate) fn parse_lock(content: &[u8]) -> LockOwner {
    let text = String::from_utf8_lossy(content);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("").trim();
    let (pid_text, host) = match first.split_once(':') {
        Some((p, h)) => (p, Some(h)),
        None => (first, None),
    };
    let pid = pid_text.parse::<i32>().ok().filter(|p| *p > 0);
    let mut ours = || {
        let second = lines.next()?.strip_prefix("mboxpopd ")?;
        let (mut boot, mut start) = (None, None);
        for field in second.split(' ') {
            match field.split_once('=') {
                Some(("boot", b)) if !b.is_empty() => boot = Some(b.to_owned()),
                Some(("start", t)) => start = Some(t.parse::<u64>().ok()?),
                _ => {}
            }
        }
        Some(LockOwner::Ours {
            pid: pid?,
            host: host.filter(|h| !h.is_empty())?.to_owned(),
            boot: boot?,
            start: start?,
        })
    };
    ours().unwrap_or(LockOwner::Foreign { pid })
}

/// What the caller found out about the pid a lock names, on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidState {
    /// kill(pid, 0) says a process with this pid exists (ours or not).
    pub exists: bool,
    /// Its start time from /proc, when /proc shows it.
    pub start_time: Option<u64>,
}

/// Where we run: the host name and boot id written into our own locks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here<'a> {
    pub host: &'a str,
    pub boot: Option<&'a str>,
}

/// Whether a lock may be taken over, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// Our format, this host and boot, and the recorded process no longer exists.
    DeadOwner,
    /// Our format and this host, written before the last reboot.
    Rebooted,
    /// The classic rule: at least `stale_age` old and no live process with its pid.
    Aged,
}

/// The stale-lock rule, without any I/O.
///
/// Only a lock in our own format, written on this host, is judged by its owner's identity:
/// the owner lives iff a process with the recorded pid *and* start time exists. Every other
/// lock needs both age and a dead pid: age alone would break a slow but live delivery, the pid
/// alone would trust a pid from another NFS client or a reused one. When /proc hides a
/// process that kill(2) still sees (hidepid), our own lock falls back to that rule too.
pub(crate) fn judge(
    owner: &LockOwner,
    age: Duration,
    stale_age: Duration,
    here: Here<'_>,
    pid: PidState,
) -> Verdict {
    if let LockOwner::Ours {
        host, boot, start, ..
    } = owner
    {
        if host == here.host {
            match here.boot {
                Some(b) if b == boot => match pid.start_time {
                    Some(s) if s == *start => return Verdict::Keep,
                    // The pid now belongs to a younger process.
                    Some(_) => return Verdict::DeadOwner,
                    None if !pid.exists => return Verdict::DeadOwner,
                    None => {}
                },
                Some(_) => return Verdict::Rebooted,
                None => {}
            }
        }
    }
    let pid_lives = owner.pid().is_some() && pid.exists;
    if age >= stale_age && !pid_lives {
        Verdict::Aged
    } else {
        Verdict::Keep
    }
}

fn create_excl(path: &Path) -> io::Result<(u64, u64)> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let written = f.write_all(lock_contents().as_bytes());
    let meta = f.metadata();
    match (written, meta) {
        (Ok(()), Ok(m)) => Ok((m.dev(), m.ino())),
        (Err(e), _) | (_, Err(e)) => {
            // Never leave a half-made lock behind.
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

/// The NFS-safe method: O_EXCL is not atomic on NFSv2, link(2) is. Create a uniquely named
/// file, link it to the lock name, and trust the link count rather than link's return value
/// (a lost NFS reply can report failure for a link that was made).
fn create_by_link(path: &Path) -> io::Result<(u64, u64)> {
    let host = process::host_name().replace(['/', '.'], "_");
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut unique = path.as_os_str().to_owned();
    unique.push(format!(".{host}.{}.{nanos}", std::process::id()));
    let unique = PathBuf::from(unique);
    let (dev, ino) = create_excl(&unique)?;
    let linked = fs::hard_link(&unique, path);
    let nlink = fs::symlink_metadata(&unique).map(|m| m.nlink());
    let _ = fs::remove_file(&unique);
    match (linked, nlink) {
        (_, Ok(2)) => Ok((dev, ino)),
        (Err(e), _) => Err(e),
        (Ok(()), Ok(_)) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        (Ok(()), Err(e)) => Err(e),
    }
}

/// The outcome of looking at an existing `PATH.lock`.
enum Takeover {
    /// It is gone now (removed by us or its owner): try to create ours again.
    Removed,
    /// A lock that must be respected, for now.
    Busy,
    /// Not a lock file, and we may not remove it; why, for the log.
    Unremovable(String),
}

/// What is at the lock path, read as untrusted data.
enum LockFile {
    Gone,
    /// A regular file: its identity and its first bytes.
    Regular(Metadata, Vec<u8>),
    /// Anything else (symlink, FIFO, directory, device): nobody's valid lock.
    NotALock(Metadata),
}

/// How many bytes of a lock file are read: ours are about 90.
const LOCK_READ_LIMIT: u64 = 256;

/// Read the lock at `path` without following a symlink, without blocking on a FIFO (or any
/// other special file: the lstat comes first, and O_NONBLOCK guards the race) and without
/// reading more than [`LOCK_READ_LIMIT`] bytes.
fn read_lock_file(path: &Path) -> io::Result<LockFile> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockFile::Gone),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Ok(LockFile::NotALock(meta));
    }
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockFile::Gone),
        // Swapped for a symlink since the lstat.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(LockFile::NotALock(fs::symlink_metadata(path)?))
        }
        Err(e) => return Err(e),
    };
    let fmeta = f.metadata()?;
    if !fmeta.file_type().is_file() {
        return Ok(LockFile::NotALock(fmeta));
    }
    let mut content = Vec::new();
    f.take(LOCK_READ_LIMIT).read_to_end(&mut content)?;
    Ok(LockFile::Regular(fmeta, content))
}

/// Remove `path` if it still is the file `meta` describes. The identity is re-checked right
/// before unlinking, so a lock that was taken over and recreated by someone else in the
/// meantime survives (the window that remains is the classic one every dot-locking program
/// has). `Ok(false)`: it changed; leave it.
fn remove_if_same(path: &Path, meta: &Metadata) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.ino() == meta.ino() && m.dev() == meta.dev() => {}
        _ => return Ok(false),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

fn kind_of(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_dir() {
        "directory"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Look at an existing `path` and remove it if it is stale (see [`judge`]) or not a lock at
/// all. Never removes a lock whose owner lives.
fn take_over_if_stale(path: &Path, stale_age: Duration) -> io::Result<Takeover> {
    let (meta, content) = match read_lock_file(path)? {
        LockFile::Gone => return Ok(Takeover::Removed),
        LockFile::Regular(m, c) => (m, c),
        LockFile::NotALock(meta) => {
            let what = format!(
                "{} is a {} owned by uid {}, not a lock file",
                path.display(),
                kind_of(&meta),
                meta.uid()
            );
            return match remove_if_same(path, &meta) {
                Ok(true) => {
                    log::warn!("{what}; removed it");
                    Ok(Takeover::Removed)
                }
                Ok(false) => Ok(Takeover::Busy),
                Err(e) => Ok(Takeover::Unremovable(format!(
                    "{what}, and it cannot be removed: {e}"
                ))),
            };
        }
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    let owner = parse_lock(&content);
    let pid = owner.pid();
    let state = PidState {
        exists: pid.is_some_and(sys::process_alive),
        start_time: match owner {
            LockOwner::Ours { pid, .. } => process::start_time(pid),
            LockOwner::Foreign { .. } => None,
        },
    };
    let here = Here {
        host: process::host_name(),
        boot: process::boot_id(),
    };
    let verdict = judge(&owner, age, stale_age, here, state);
    if verdict == Verdict::Keep || !remove_if_same(path, &meta)? {
        return Ok(Takeover::Busy);
    }
    let pid = pid.map_or_else(|| String::from("unknown"), |p| p.to_string());
    match &owner {
        LockOwner::Ours { host, .. } => log::warn!(
            "took over dot-lock {} of pid {pid} on {host}: {} (age {}s)",
            path.display(),
            if verdict == Verdict::Rebooted {
                "written before the last reboot"
            } else {
                "that process is gone"
            },
            age.as_secs()
        ),
        LockOwner::Foreign { .. } => log::warn!(
            "took over stale dot-lock {} (age {}s, owner pid {pid})",
            path.display(),
            age.as_secs()
        ),
    }
    Ok(Takeover::Removed)
}

/// Whether `path` is a dot-lock in our format whose owner is gone (this host; see [`judge`]):
/// one our crashed process left, which anyone may remove at once.
pub fn held_by_dead_mboxpopd(path: &Path) -> bool {
    let Ok(LockFile::Regular(_, content)) = read_lock_file(path) else {
        return false;
    };
    let owner = parse_lock(&content);
    let LockOwner::Ours { pid, .. } = owner else {
        return false;
    };
    let state = PidState {
        exists: sys::process_alive(pid),
        start_time: process::start_time(pid),
    };
    let here = Here {
        host: process::host_name(),
        boot: process::boot_id(),
    };
    matches!(
        judge(&owner, Duration::ZERO, Duration::MAX, here, state),
        Verdict::DeadOwner | Verdict::Rebooted
    )
}

/// An fcntl write (or, on a read-only open, read) lock over the whole file and everything past
/// its end (`l_len = 0`): procmail locks from EOF onwards, so locking only the existing bytes
/// would not keep it out.
///
/// On Linux it is an open-file-description lock (F_OFD_SETLK): it conflicts with the classic
/// POSIX locks MDAs take, but unlike them it is not dropped when *any* descriptor of this
/// process for the same file is closed — which in a threaded daemon would happen whenever a
/// second session for the same user opens the file and is refused.
#[derive(Debug)]
pub struct FcntlLock {
    file: Arc<File>,
}

impl FcntlLock {
    /// One non-blocking attempt. `Ok(None)` when another process holds a conflicting lock.
    pub fn try_acquire(file: Arc<File>, write: bool) -> io::Result<Option<Self>> {
        match sys::set_whole_file_lock(&file, Some(write)) {
            Ok(()) => Ok(Some(FcntlLock { file })),
            Err(e)
                if is_would_block(&e)
                    || e.raw_os_error() == Some(libc::EACCES)
                    || e.raw_os_error() == Some(libc::EDEADLK) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for FcntlLock {
    fn drop(&mut self) {
        if let Err(e) = sys::set_whole_file_lock(&self.file, None) {
            log::warn!("cannot release fcntl lock: {e}");
        }
    }
}

/// The MDA-facing locks, taken dot-lock first, then fcntl. Released in reverse order on drop.
#[derive(Debug)]
pub struct MdaLocks {
    // Field order is drop order: the fcntl lock goes first, then the dot-lock.
    _fcntl: FcntlLock,
    _dot: Option<DotLock>,
}

impl MdaLocks {
    /// Take both locks, retrying with short sleeps for at most `timeout`, then `[IN-USE]`.
    ///
    /// A spool directory we may not create files in (no `mail` group, read-only or full file
    /// system) cannot hold our dot-lock; then only the fcntl lock is taken and a warning logged,
    /// as popa3d does permanently. (On a full disk no MDA can deliver anyway, and refusing the
    /// login would also refuse the deletions that free space.)
    pub fn acquire(
        file: &Arc<File>,
        mailbox: &Path,
        write: bool,
        dot: &DotLockOptions,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        let mut reported = false;
        let dot_lock = loop {
            match DotLock::try_once(mailbox, dot) {
                Ok(Attempt::Acquired(l)) => break Some(l),
                Ok(Attempt::Busy) => {}
                Ok(Attempt::Blocked(why)) => {
                    // Once per wait: it is retried every few hundred milliseconds.
                    if !reported {
                        log::error!("{why}; waiting at most {}s", timeout.as_secs());
                        reported = true;
                    }
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EACCES)
                            | Some(libc::EPERM)
                            | Some(libc::EROFS)
                            | Some(libc::ENOSPC)
                            | Some(libc::EDQUOT)
                    ) =>
                {
                    log::warn!(
                        "cannot create dot-lock {}: {e}; relying on the fcntl lock alone",
                        DotLock::path_for(mailbox).display()
                    );
                    break None;
                }
                Err(e) => {
                    return Err(StoreError::Temporary(format!(
                        "cannot create dot-lock {}: {e}",
                        DotLock::path_for(mailbox).display()
                    )))
                }
            }
            wait_or_give_up(deadline, &mut pause, mailbox, "dot-lock")?;
        };
        let fcntl = loop {
            match FcntlLock::try_acquire(Arc::clone(file), write) {
                Ok(Some(l)) => break l,
                Ok(None) => {}
                Err(e) => {
                    return Err(StoreError::Temporary(format!(
                        "cannot fcntl-lock {}: {e}",
                        mailbox.display()
                    )))
                }
            }
            // `dot_lock` is dropped (file removed) if we give up here.
            wait_or_give_up(deadline, &mut pause, mailbox, "fcntl lock")?;
        };
        Ok(MdaLocks {
            _fcntl: fcntl,
            _dot: dot_lock,
        })
    }
}

fn wait_or_give_up(
    deadline: Instant,
    pause: &mut Duration,
    mailbox: &Path,
    what: &str,
) -> Result<(), StoreError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(StoreError::InUse(format!(
            "timed out waiting for the {what} on {}",
            mailbox.display()
        )));
    }
    thread::sleep((*pause).min(deadline - now));
    *pause = (*pause * 2).min(Duration::from_millis(200));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn opts(stale: u64) -> DotLockOptions {
        DotLockOptions {
            use_link: false,
            stale_age: Duration::from_secs(stale),
        }
    }

    fn rw(path: &Path) -> Arc<File> {
        Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .expect("open"),
        )
    }

    #[test]
    fn session_lock_excludes_a_second_open_in_the_same_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let a = rw(&p);
        let b = rw(&p);
        let la = SessionLock::try_acquire(Arc::clone(&a), &p).expect("first");
        assert!(matches!(
            SessionLock::try_acquire(Arc::clone(&b), &p),
            Err(StoreError::InUse(_))
        ));
        drop(la);
        SessionLock::try_acquire(b, &p).expect("after release");
    }

    #[test]
    fn dot_lock_holds_pid_and_is_removed_on_drop() {
        for use_link in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("u");
            let f = rw(&p);
            let o = DotLockOptions {
                use_link,
                ..opts(300)
            };
            let locks = MdaLocks::acquire(&f, &p, true, &o, Duration::from_secs(1)).expect("lock");
            let content = fs::read_to_string(DotLock::path_for(&p)).expect("lock file");
            // Dovecot-compatible first line, our identity on the second.
            let first = content.lines().next().expect("line 1");
            assert_eq!(
                first,
                format!("{}:{}", std::process::id(), process::host_name())
            );
            assert!(matches!(
                parse_lock(content.as_bytes()),
                LockOwner::Ours { pid, .. } if pid == std::process::id() as i32
            ));
            drop(locks);
            assert!(!DotLock::path_for(&p).exists());
            // No temporary link files left behind either.
            assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
        }
    }

    #[test]
    fn live_dot_lock_times_out_as_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        // Owned by a live process (us), and old enough: still not stale.
        fs::write(DotLock::path_for(&p), format!("{}\n", std::process::id())).expect("write");
        let t = Instant::now();
        let r = MdaLocks::acquire(&f, &p, true, &opts(0), Duration::from_millis(300));
        assert!(matches!(r, Err(StoreError::InUse(_))));
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(
            DotLock::path_for(&p).exists(),
            "a foreign lock must survive"
        );
    }

    #[test]
    fn stale_dot_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        // A pid that has exited: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        fs::write(DotLock::path_for(&p), format!("{pid}\n")).expect("write");
        // Young: not taken over within the timeout.
        let r = MdaLocks::acquire(&f, &p, true, &opts(3600), Duration::from_millis(100));
        assert!(matches!(r, Err(StoreError::InUse(_))));
        // Old enough: taken over.
        let locks =
            MdaLocks::acquire(&f, &p, true, &opts(0), Duration::from_secs(2)).expect("takeover");
        let content = fs::read_to_string(DotLock::path_for(&p)).expect("lock file");
        assert_eq!(content, lock_contents());
        drop(locks);
        assert!(!DotLock::path_for(&p).exists());
    }

    #[test]
    fn fcntl_lock_conflicts_with_another_process_and_covers_past_eof() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        fs::write(&p, b"From a\n\nx\n").expect("write");
        let f = rw(&p);
        let held = FcntlLock::try_acquire(Arc::clone(&f), true)
            .expect("fcntl")
            .expect("free");
        // flock(1) is util-linux; use a real process taking a POSIX fcntl lock from EOF onwards,
        // as procmail does: python is not guaranteed, perl is (Debian essential).
        let script = r#"
            use Fcntl qw(F_SETLK F_WRLCK SEEK_END);
            open(my $fh, "+<", $ARGV[0]) or die;
            my $fl = pack("s s x4 q q i x4", F_WRLCK, SEEK_END, 0, 0, 0);
            print fcntl($fh, F_SETLK, $fl) ? "got" : "busy";
        "#;
        let run = || {
            let out = std::process::Command::new("perl")
                .arg("-e")
                .arg(script)
                .arg(&p)
                .output()
                .expect("perl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(run(), "busy");
        // Another descriptor for the same file opened and closed in this process (a refused
        // second session) must not release it, as it would with classic POSIX locks.
        drop(rw(&p));
        assert_eq!(run(), "busy");
        drop(held);
        assert_eq!(run(), "got");
    }

    #[test]
    fn locks_are_released_when_a_panic_unwinds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _locks =
                MdaLocks::acquire(&f, &p, true, &opts(300), Duration::from_secs(1)).expect("lock");
            assert!(DotLock::path_for(&p).exists());
            panic!("a session thread dies while holding the MDA locks");
        }));
        assert!(r.is_err());
        assert!(!DotLock::path_for(&p).exists());
        // The fcntl lock is free too: another open file description gets it at once.
        let g = rw(&p);
        assert!(FcntlLock::try_acquire(g, true).expect("fcntl").is_some());
    }

    #[test]
    fn unwritable_spool_dir_falls_back_to_fcntl_only() {
        if is_root() {
            // Root ignores directory permissions; the fallback cannot be provoked this way.
            eprintln!("skipped: running as root, directory permissions are not enforced");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
        let r = MdaLocks::acquire(&f, &p, true, &opts(300), Duration::from_millis(100));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        r.expect("fcntl-only lock");
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    fn our_lock(pid: u32, host: &str, boot: &str, start: u64) -> String {
        format!("{pid}:{host}\nmboxpopd boot={boot} start={start}\n")
    }

    #[test]
    fn our_own_lock_in_the_live_process_is_kept_even_when_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        fs::write(DotLock::path_for(&p), lock_contents()).expect("write");
        let r = MdaLocks::acquire(&f, &p, true, &opts(0), Duration::from_millis(200));
        assert!(matches!(r, Err(StoreError::InUse(_))));
        assert!(DotLock::path_for(&p).exists());
    }

    #[test]
    fn our_lock_of_a_dead_process_is_taken_over_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        let host = process::host_name();
        let boot = process::boot_id().expect("boot id");
        let lock = DotLock::path_for(&p);
        let fresh = opts(3600);
        // Dead pid, fresh lock: no age wait.
        fs::write(&lock, our_lock(dead_pid(), host, boot, 1)).expect("write");
        let t = Instant::now();
        drop(MdaLocks::acquire(&f, &p, true, &fresh, Duration::from_secs(5)).expect("takeover"));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // Our own pid, but another start time: the pid was reused.
        let me = std::process::id();
        let start = process::own_start_time().expect("start");
        fs::write(&lock, our_lock(me, host, boot, start + 1)).expect("write");
        drop(MdaLocks::acquire(&f, &p, true, &fresh, Duration::from_secs(5)).expect("reused"));
        // Written before a reboot.
        fs::write(&lock, our_lock(me, host, "00000000-0000", start)).expect("write");
        drop(MdaLocks::acquire(&f, &p, true, &fresh, Duration::from_secs(5)).expect("reboot"));
        // From another host: the age rule, so not within the timeout.
        fs::write(&lock, our_lock(dead_pid(), "elsewhere", boot, 1)).expect("write");
        let r = MdaLocks::acquire(&f, &p, true, &fresh, Duration::from_millis(100));
        assert!(matches!(r, Err(StoreError::InUse(_))));
        // procmail's lock: the age rule.
        fs::write(&lock, "0").expect("write");
        let r = MdaLocks::acquire(&f, &p, true, &fresh, Duration::from_millis(100));
        assert!(matches!(r, Err(StoreError::InUse(_))));
        drop(MdaLocks::acquire(&f, &p, true, &opts(0), Duration::from_secs(1)).expect("aged"));
    }

    #[test]
    fn a_fifo_or_symlink_planted_as_the_lock_never_blocks_and_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("u");
        let f = rw(&p);
        let lock = DotLock::path_for(&p);
        let made = std::process::Command::new("mkfifo")
            .arg(&lock)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let t = Instant::now();
        let locks = MdaLocks::acquire(&f, &p, true, &opts(3600), Duration::from_secs(2));
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(locks.expect("the FIFO is no lock"));
        let target = dir.path().join("target");
        fs::write(&target, b"keep").expect("write");
        std::os::unix::fs::symlink(&target, &lock).expect("symlink");
        drop(MdaLocks::acquire(&f, &p, true, &opts(3600), Duration::from_secs(2)).expect("link"));
        assert_eq!(fs::read(&target).expect("read"), b"keep");
        assert!(!lock.exists());
    }

    #[test]
    fn judge_rules() {
        let here = Here {
            host: "h",
            boot: Some("b"),
        };
        let ours = |host: &str, boot: &str| LockOwner::Ours {
            pid: 7,
            host: host.into(),
            boot: boot.into(),
            start: 100,
        };
        let young = Duration::from_secs(1);
        let stale = Duration::from_secs(300);
        let live = PidState {
            exists: true,
            start_time: Some(100),
        };
        let gone = PidState {
            exists: false,
            start_time: None,
        };
        let reused = PidState {
            exists: true,
            start_time: Some(555),
        };
        let hidden = PidState {
            exists: true,
            start_time: None,
        };
        let j = |o: &LockOwner, age, p| judge(o, age, stale, here, p);
        assert_eq!(j(&ours("h", "b"), young, live), Verdict::Keep);
        assert_eq!(j(&ours("h", "b"), stale * 9, live), Verdict::Keep);
        assert_eq!(j(&ours("h", "b"), young, gone), Verdict::DeadOwner);
        assert_eq!(j(&ours("h", "b"), young, reused), Verdict::DeadOwner);
        assert_eq!(j(&ours("h", "b"), stale, hidden), Verdict::Keep);
        assert_eq!(j(&ours("h", "old"), young, live), Verdict::Rebooted);
        assert_eq!(j(&ours("other", "b"), young, gone), Verdict::Keep);
        assert_eq!(j(&ours("other", "b"), stale, gone), Verdict::Aged);
        let procmail = parse_lock(b"0");
        assert_eq!(procmail, LockOwner::Foreign { pid: None });
        assert_eq!(j(&procmail, young, gone), Verdict::Keep);
        assert_eq!(j(&procmail, stale, gone), Verdict::Aged);
        let dovecot = parse_lock(b"7:h\n");
        assert_eq!(dovecot, LockOwner::Foreign { pid: Some(7) });
        assert_eq!(j(&dovecot, stale, live), Verdict::Keep);
        assert_eq!(j(&dovecot, young, gone), Verdict::Keep);
        assert_eq!(
            parse_lock(b"7:h\nmboxpopd boot=b start=100\n"),
            ours("h", "b")
        );
        assert_eq!(
            parse_lock(b"7:h\nmboxpopd boot=b start=x\n"),
            LockOwner::Foreign { pid: Some(7) }
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            pid in 1i32..i32::MAX,
            host in "[a-z0-9.-]{1,20}",
            boot in "[0-9a-f-]{1,36}",
            start in proptest::prelude::any::<u64>(),
        ) {
            let _ = parse_lock(&bytes);
            let text = format!("{pid}:{host}\nmboxpopd boot={boot} start={start}\n");
            proptest::prop_assert_eq!(
                parse_lock(text.as_bytes()),
                LockOwner::Ours { pid, host, boot, start }
            );
        }

        #[test]
        fn a_live_owner_is_never_taken_over(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            age in 0u64..100_000,
            stale in 0u64..100_000,
            same_host in proptest::prelude::any::<bool>(),
            same_boot in proptest::prelude::any::<bool>(),
            start in 0u64..5,
        ) {
            let here = Here { host: "h", boot: Some("b") };
            let candidates = [
                parse_lock(&bytes),
                LockOwner::Ours {
                    pid: 7,
                    host: if same_host { "h" } else { "x" }.into(),
                    boot: if same_boot { "b" } else { "y" }.into(),
                    start,
                },
            ];
            for owner in candidates {
                // The very process the lock names is alive (same pid, same start time).
                let recorded = match &owner {
                    LockOwner::Ours { start, .. } => Some(*start),
                    LockOwner::Foreign { .. } => None,
                };
                let alive = PidState { exists: true, start_time: recorded };
                let v = judge(&owner, Duration::from_secs(age), Duration::from_secs(stale), here, alive);
                let rebooted = matches!(&owner, LockOwner::Ours { host, boot, .. } if host == "h" && boot != "b");
                let pidless = owner.pid().is_none();
                proptest::prop_assert!(v == Verdict::Keep || rebooted || (pidless && age >= stale));
                // A foreign lock younger than the stale age always stays.
                if matches!(owner, LockOwner::Foreign { .. }) && age < stale {
                    let dead = PidState { exists: false, start_time: None };
                    proptest::prop_assert_eq!(
                        judge(&owner, Duration::from_secs(age), Duration::from_secs(stale), here, dead),
                        Verdict::Keep
                    );
                }
            }
        }
    }

    fn is_root() -> bool {
        fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }
}
