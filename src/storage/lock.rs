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

use crate::sys::file_lock as sys;
use std::fs::{self, File, OpenOptions};
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
}

/// A dot-lock file `PATH.lock` containing our pid. Removed on drop if it is still ours.
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
                    if !take_over_if_stale(&path, opts.stale_age)? {
                        return Ok(Attempt::Busy);
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
    // Same format as procmail/Dovecot/mutt: the pid in decimal and a newline.
    format!("{}\n", std::process::id())
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
    let host = hostname();
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

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', '.'], "_"))
        .unwrap_or_else(|_| String::from("localhost"))
}

/// Remove `path` if it is a stale dot-lock: older than `stale_age` and its owner pid is not a
/// live process on this host. Returns whether it was removed.
///
/// Both conditions are required: the age alone would break a slow but live delivery, the pid
/// alone would trust a pid from another NFS client or a reused one.
fn take_over_if_stale(path: &Path, stale_age: Duration) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    if age < stale_age {
        return Ok(false);
    }
    let owner = read_pid(path);
    if let Some(pid) = owner {
        if sys::process_alive(pid) {
            return Ok(false);
        }
    }
    // Re-check the identity right before removing, so a lock that was taken over and recreated
    // by someone else in the meantime survives (the window that remains is the classic one every
    // dot-locking program has).
    match fs::symlink_metadata(path) {
        Ok(m) if m.ino() == meta.ino() && m.dev() == meta.dev() => {}
        _ => return Ok(false),
    }
    fs::remove_file(path)?;
    log::warn!(
        "took over stale dot-lock {} (age {}s, owner pid {})",
        path.display(),
        age.as_secs(),
        owner.map_or_else(|| String::from("unknown"), |p| p.to_string())
    );
    Ok(true)
}

fn read_pid(path: &Path) -> Option<i32> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(64)
        .read_to_string(&mut s)
        .ok()?;
    s.trim().parse::<i32>().ok().filter(|p| *p > 0)
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
        let dot_lock = loop {
            match DotLock::try_once(mailbox, dot) {
                Ok(Attempt::Acquired(l)) => break Some(l),
                Ok(Attempt::Busy) => {}
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
            assert_eq!(content, format!("{}\n", std::process::id()));
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
        fs::write(DotLock::path_for(&p), lock_contents()).expect("write");
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

    fn is_root() -> bool {
        fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }
}
