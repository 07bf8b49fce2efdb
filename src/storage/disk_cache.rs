//! Indexes that outlive the process: one file per mailbox in a private cache directory
//! (`index_cache_dir`), for inetd mode (a process per session) and a restarted daemon.
//!
//! Why no user can plant or alter a cache file: the directory belongs to the server's own
//! uid (root, normally) and nobody else may enter it ([`CacheDir::prepare`] refuses it
//! otherwise); a session opens its mailbox's cache file *before* it takes the user's identity
//! (as root, O_NOFOLLOW, relative to the directory descriptor checked at start-up) and only
//! keeps the descriptor. The file is reused only under the rules of the in-memory cache
//! (`cache::verdict`, then the caller's From_ line and tail checks against the mailbox itself).
//!
//! File layout (little-endian): magic, format version, the server version, mbox format and
//! UIDL scheme, the mailbox path, its [`Stamp`], the tail fingerprint, the index
//! (`index::persist`), and an XXH3-64 checksum over everything before it. It is rewritten in
//! place (one write, then cut to length): a torn write, a crash or a power cut leaves a file
//! whose checksum fails, which counts as no cache. Writes happen while the session holds
//! the mailbox's session lock, so sessions of one mailbox never write it concurrently.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::cache::{self, Lookup, Stamp, Verdict};
use crate::storage::format::{MboxFormat, UidlFormat};
use crate::storage::index::persist::{self, Invalid, Reader};
use crate::storage::index::Index;
use crate::sys::{credentials, dir};

const MAGIC: &[u8; 16] = b"mboxpopd-index\n\0";
/// Bumped whenever the layout changes; the server version is recorded besides, so an index
/// made by another build (whose UIDLs or splits might differ) is never reused.
const VERSION: u32 = 3;
/// No cache file larger than this is read (about 16 million messages).
pub const MAX_FILE: u64 = 1 << 30;

/// Why the cache directory is not used.
#[derive(Debug)]
pub enum DirError {
    /// It does not exist and cannot be created.
    Create(io::Error),
    Open(io::Error),
    /// A symbolic link, not a directory, someone else's, or open to group or others.
    Unsafe(String),
}

impl std::fmt::Display for DirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirError::Create(e) => write!(f, "cannot create it: {e}"),
            DirError::Open(e) => write!(f, "cannot open it: {e}"),
            DirError::Unsafe(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DirError {}

/// The checked cache directory, held open.
#[derive(Debug)]
pub struct CacheDir {
    dir: File,
    path: PathBuf,
    /// The server's uid, which owns the directory and every file in it.
    owner: u32,
}

/// Create `path` (mode 0700) owned by `uid`:`gid` if it does not exist; `Ok(false)` when it
/// already exists (then [`CacheDir::prepare`] judges it). For a server that starts as root and
/// keeps another identity (`user =`): the directory must belong to that identity. The new
/// directory is opened without following links and changed through that descriptor, so a
/// link planted in its place between the two steps is refused, never chowned.
pub fn create_owned(path: &Path, uid: u32, gid: u32) -> io::Result<bool> {
    if !make_private_dir(path)? {
        return Ok(false);
    }
    std::os::unix::fs::fchown(open_dir(path)?, Some(uid), Some(gid))?;
    Ok(true)
}

/// mkdir with mode 0700; `Ok(false)` when something (a link included) is already there.
fn make_private_dir(path: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The directory itself, never what a symbolic link in its place points to.
fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl CacheDir {
    /// Check (creating it, mode 0700, if missing) the directory at `path` for the calling
    /// thread's file-system uid: it must be a directory, not a symbolic link, owned by that
    /// uid, with no permission for group or others.
    pub fn prepare(path: &Path) -> Result<CacheDir, DirError> {
        let owner = credentials::fs_uid();
        if let Err(e) = fs::symlink_metadata(path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(DirError::Open(e));
            }
            if make_private_dir(path).map_err(DirError::Create)? {
                log::info!("created the index cache directory {}", path.display());
            }
        }
        let dir = open_dir(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                DirError::Unsafe(String::from("it is a symbolic link or not a directory"))
            }
            _ => DirError::Open(e),
        })?;
        let meta = dir.metadata().map_err(DirError::Open)?;
        if meta.uid() != owner {
            return Err(DirError::Unsafe(format!(
                "it is owned by uid {}, not by the server's uid {owner}",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(DirError::Unsafe(format!(
                "its mode is {:04o}; it must be 0700 (no access for group or others)",
                meta.mode() & 0o7777
            )));
        }
        Ok(CacheDir {
            dir,
            path: path.to_owned(),
            owner,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the cache files that no login will use again: those whose mailbox no longer
    /// exists, and those another layout or server version wrote, damaged or misnamed ones
    /// (a login would rewrite those, but only if it ever comes). Names not ending in `.idx`
    /// are left alone. A file is judged by its head alone; one removed while a session of
    /// another process writes it costs that mailbox one index at its next login.
    pub fn sweep(&self) -> io::Result<Swept> {
        let mut done = Swept::default();
        let mut head = Vec::with_capacity(HEAD_MAX);
        for name in dir::names(&self.dir)? {
            if !name.as_encoded_bytes().ends_with(b".idx") {
                continue;
            }
            let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
            let owner = match dir::open_at(&self.dir, &name, flags, 0) {
                Ok(f) if f.metadata().is_ok_and(|m| m.file_type().is_file()) => {
                    head.clear();
                    // Unreadable counts as unusable, like damage.
                    match (&f).take(HEAD_MAX as u64).read_to_end(&mut head) {
                        Ok(_) => owner_mailbox(&head, &name),
                        Err(_) => None,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // A symbolic link (ELOOP), a FIFO or another non-file: not a cache file.
                _ => None,
            };
            let remove = match &owner {
                None => {
                    done.unusable += 1;
                    true
                }
                Some(mailbox) => match fs::symlink_metadata(mailbox) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        done.gone += 1;
                        true
                    }
                    // Present, or not known to be absent (no search permission): kept.
                    _ => {
                        done.kept += 1;
                        false
                    }
                },
            };
            if remove {
                match dir::remove_at(&self.dir, &name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }

    /// The cache file of `mailbox` read with `format`/`uidl`, created empty if missing. Call
    /// as the server's uid (before the session takes the user's identity): the descriptor is
    /// what the session keeps.
    pub fn open(&self, mailbox: &Path, format: MboxFormat, uidl: UidlFormat) -> io::Result<Slot> {
        let name = file_name(mailbox, format, uidl);
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let file = dir::open_at(&self.dir, &name, flags, 0o600)?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file()
            || meta.uid() != self.owner
            || meta.mode() & 0o077 != 0
            || meta.nlink() != 1
        {
            return Err(io::Error::other(format!(
                "{}: not a private regular file of uid {}",
                self.path.join(&name).display(),
                self.owner
            )));
        }
        Ok(Slot {
            file,
            mailbox: mailbox.to_owned(),
            format,
            uidl,
        })
    }
}

/// The cache file's name: a digest of everything that decides the index, so mailboxes and
/// settings never share a file (the file repeats them, and they are compared on reading).
fn file_name(mailbox: &Path, format: MboxFormat, uidl: UidlFormat) -> OsString {
    name_of(
        mailbox.as_os_str().as_encoded_bytes(),
        format_code(format),
        uidl_code(uidl),
    )
}

fn name_of(mailbox: &[u8], format: u8, uidl: u8) -> OsString {
    let mut key = Vec::with_capacity(mailbox.len() + 3);
    key.extend_from_slice(mailbox);
    key.extend_from_slice(&[0, format, uidl]);
    let h = xxhash_rust::xxh3::xxh3_128(&key);
    OsString::from(format!("{h:032x}.idx"))
}

/// What [`CacheDir::sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub kept: usize,
    /// Files of mailboxes that no longer exist.
    pub gone: usize,
    /// Files no login can use: another layout or server version, damaged, or misnamed.
    pub unusable: usize,
}

/// The start of a cache file: everything up to and including the mailbox path.
const HEAD_MAX: usize = MAGIC.len() + 4 + 1 + 255 + 2 + 4 + 4096;

/// The mailbox a cache file is for, if its head is this layout and server version's and its
/// name is the one that mailbox and settings give.
fn owner_mailbox(head: &[u8], name: &OsStr) -> Option<PathBuf> {
    let mut r = Reader::new(head);
    if r.take(MAGIC.len()).ok()? != MAGIC || r.u32().ok()? != VERSION {
        return None;
    }
    let n = r.u8().ok()?;
    if r.take(usize::from(n)).ok()? != env!("CARGO_PKG_VERSION").as_bytes() {
        return None;
    }
    let (format, uidl) = (r.u8().ok()?, r.u8().ok()?);
    let n = r.u32().ok()? as usize;
    let path = r.take(n).ok()?;
    if name_of(path, format, uidl) != name {
        return None;
    }
    Some(PathBuf::from(OsStr::from_bytes(path)))
}

fn format_code(f: MboxFormat) -> u8 {
    match f {
        MboxFormat::Mboxo => 0,
        MboxFormat::Mboxrd => 1,
    }
}

fn uidl_code(u: UidlFormat) -> u8 {
    match u {
        UidlFormat::Native => 0,
        UidlFormat::Popa3d => 1,
        UidlFormat::XUidl => 2,
        UidlFormat::Imap => 3,
        UidlFormat::DovecotMd5 => 4,
        UidlFormat::DovecotUid => 5,
    }
}

/// One mailbox's cache file, opened for the session.
#[derive(Debug)]
pub struct Slot {
    file: File,
    mailbox: PathBuf,
    format: MboxFormat,
    uidl: UidlFormat,
}

impl Slot {
    /// What the file holds for the mailbox in state `now` (see `cache::lookup`). A file that
    /// is empty, damaged, or for other settings is a miss.
    pub fn lookup(&self, now: &Stamp) -> Lookup {
        let bytes = match self.read() {
            Ok(Some(b)) => b,
            Ok(None) => return Lookup::Miss,
            Err(e) => {
                log::warn!(
                    "{}: cannot read its index cache: {e}",
                    self.mailbox.display()
                );
                return Lookup::Miss;
            }
        };
        let (stamp, tail, index) = match decode_file(&bytes, &self.mailbox, self.format, self.uidl)
        {
            Ok(v) => v,
            Err(why) => {
                log::debug!("{}: index cache not used ({why})", self.mailbox.display());
                return Lookup::Miss;
            }
        };
        let made = (self.format, self.uidl);
        match cache::verdict(&stamp, made, &index, made, now) {
            Verdict::Unchanged => Lookup::Unchanged(Arc::new(index), tail),
            Verdict::Grown => Lookup::Grown(Arc::new(index), tail),
            Verdict::Stale => Lookup::Miss,
        }
    }

    fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let len = self.file.metadata()?.len();
        if len == 0 || len > MAX_FILE {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len as usize];
        match self.file.read_exact_at(&mut bytes, 0) {
            Ok(()) => Ok(Some(bytes)),
            // Truncated meanwhile: nothing usable.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace the file's contents with `index` of the mailbox in state `stamp`.
    pub fn store(&self, stamp: &Stamp, tail: u64, index: &Index) {
        let bytes = encode_file(&self.mailbox, self.format, self.uidl, stamp, tail, index);
        if bytes.len() as u64 > MAX_FILE {
            self.clear();
            return;
        }
        // Overwritten in place, then cut to length: truncating to zero first would make ext4
        // flush the file on close (its replace-via-truncate heuristic), tens of milliseconds.
        // A write cut short leaves old bytes after new ones, which fails the checksum.
        let written = self
            .file
            .write_all_at(&bytes, 0)
            .and_then(|()| self.file.set_len(bytes.len() as u64));
        if let Err(e) = written {
            log::warn!(
                "{}: cannot write its index cache: {e}",
                self.mailbox.display()
            );
            self.clear();
        }
    }

    /// Forget what the file holds (before the mailbox is rewritten): its magic is zeroed, so
    /// it fails its checksum.
    pub fn clear(&self) {
        let len = self.file.metadata().map_or(0, |m| m.len());
        let zeros = [0u8; MAGIC.len()];
        let n = len.min(zeros.len() as u64) as usize;
        if let Err(e) = self.file.write_all_at(&zeros[..n], 0) {
            log::warn!(
                "{}: cannot clear its index cache: {e}",
                self.mailbox.display()
            );
        }
    }
}

/// The bytes of a cache file.
pub fn encode_file(
    mailbox: &Path,
    format: MboxFormat,
    uidl: UidlFormat,
    stamp: &Stamp,
    tail: u64,
    index: &Index,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(256 + index.messages.len() * 48);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&VERSION.to_le_bytes());
    let build = env!("CARGO_PKG_VERSION").as_bytes();
    v.push(build.len() as u8);
    v.extend_from_slice(build);
    v.push(format_code(format));
    v.push(uidl_code(uidl));
    let path = mailbox.as_os_str().as_encoded_bytes();
    v.extend_from_slice(&(path.len() as u32).to_le_bytes());
    v.extend_from_slice(path);
    v.extend_from_slice(&stamp.dev.to_le_bytes());
    v.extend_from_slice(&stamp.ino.to_le_bytes());
    v.extend_from_slice(&stamp.len.to_le_bytes());
    for (s, ns) in [stamp.mtime, stamp.ctime] {
        v.extend_from_slice(&s.to_le_bytes());
        v.extend_from_slice(&ns.to_le_bytes());
    }
    v.extend_from_slice(&tail.to_le_bytes());
    persist::encode(index, &mut v);
    let sum = xxhash_rust::xxh3::xxh3_64(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// The stamp, tail fingerprint and index in a cache file, if it is intact and was made for
/// `mailbox` with these settings by this server version.
pub fn decode_file(
    bytes: &[u8],
    mailbox: &Path,
    format: MboxFormat,
    uidl: UidlFormat,
) -> Result<(Stamp, u64, Index), Invalid> {
    let Some(body_len) = bytes.len().checked_sub(8) else {
        return Err(Invalid("truncated"));
    };
    let (body, sum) = bytes.split_at(body_len);
    let mut s = [0u8; 8];
    s.copy_from_slice(sum);
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(s) {
        return Err(Invalid("checksum mismatch"));
    }
    let mut r = Reader::new(body);
    if r.take(MAGIC.len())? != MAGIC {
        return Err(Invalid("not an index cache file"));
    }
    if r.u32()? != VERSION {
        return Err(Invalid("another layout version"));
    }
    let n = r.u8()?;
    if r.take(usize::from(n))? != env!("CARGO_PKG_VERSION").as_bytes() {
        return Err(Invalid("made by another server version"));
    }
    if (r.u8()?, r.u8()?) != (format_code(format), uidl_code(uidl)) {
        return Err(Invalid("made with other settings"));
    }
    let n = r.u32()? as usize;
    if r.take(n)? != mailbox.as_os_str().as_encoded_bytes() {
        return Err(Invalid("made for another mailbox"));
    }
    let stamp = Stamp {
        dev: r.u64()?,
        ino: r.u64()?,
        len: r.u64()?,
        mtime: (r.i64()?, r.i64()?),
        ctime: (r.i64()?, r.i64()?),
    };
    let tail = r.u64()?;
    let index = persist::decode(&mut r)?;
    if r.remaining() != 0 {
        return Err(Invalid("trailing bytes"));
    }
    if index.length != stamp.len {
        return Err(Invalid("indexed length"));
    }
    Ok((stamp, tail, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::index::{index_mbox, IndexOptions};
    use std::os::unix::fs::PermissionsExt;

    const MBOX: &[u8] = b"From a@b Thu Nov 26 03:32:14 2026\nSubject: x\n\nhello\n\n\
                          From c@d Thu Nov 26 03:32:14 2026\nSubject: y\n\nbye\n";

    fn index() -> Index {
        let o = IndexOptions {
            format: MboxFormat::Mboxo,
            uidl: UidlFormat::Native,
        };
        index_mbox(MBOX, &o).expect("indexes")
    }

    fn stamp(len: u64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            len,
            mtime: (3, 4),
            ctime: (5, 6),
        }
    }

    #[test]
    fn the_sweep_removes_files_of_gone_mailboxes_and_unusable_ones() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = CacheDir::prepare(&t.path().join("cache")).expect("cache dir");
        let (here, gone) = (t.path().join("here"), t.path().join("gone"));
        fs::write(&here, MBOX).expect("mailbox");
        let ix = index();
        let (f, u) = (MboxFormat::Mboxo, UidlFormat::Native);
        let put =
            |name: &OsStr, bytes: &[u8]| fs::write(dir.path().join(name), bytes).expect("put");
        for m in [&here, &gone] {
            put(
                &file_name(m, f, u),
                &encode_file(m, f, u, &stamp(ix.length), 0, &ix),
            );
        }
        // The same mailbox under other settings: a file of its own, also kept.
        let rd = file_name(&here, MboxFormat::Mboxrd, u);
        put(
            &rd,
            &encode_file(&here, MboxFormat::Mboxrd, u, &stamp(ix.length), 0, &ix),
        );
        // Unusable: another layout version, a file under another mailbox's name, junk.
        let mut old = encode_file(&here, f, UidlFormat::Popa3d, &stamp(ix.length), 0, &ix);
        old[MAGIC.len()] = 2;
        put(&file_name(&here, f, UidlFormat::Popa3d), &old);
        put(
            &file_name(&t.path().join("other"), f, u),
            &encode_file(&here, f, u, &stamp(ix.length), 0, &ix),
        );
        put(OsStr::new("junk.idx"), b"not a cache file");
        std::os::unix::fs::symlink(&here, dir.path().join("link.idx")).expect("symlink");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("fifo.idx"))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        put(OsStr::new("notes.txt"), b"left alone");

        let swept = dir.sweep().expect("sweep");
        assert_eq!(
            swept,
            Swept {
                kept: 2,
                gone: 1,
                unusable: 5
            }
        );
        let mut left: Vec<OsString> = dir::names(&dir.dir).expect("names");
        left.sort();
        let mut want = vec![file_name(&here, f, u), rd, OsString::from("notes.txt")];
        want.sort();
        assert_eq!(left, want);
        assert_eq!(
            fs::read(&here).expect("mailbox"),
            MBOX,
            "a link's target is untouched"
        );
        // Nothing more to do the second time.
        assert_eq!(
            dir.sweep().expect("sweep"),
            Swept {
                kept: 2,
                gone: 0,
                unusable: 0
            }
        );
    }

    #[test]
    fn a_file_round_trips_and_every_damage_is_refused() {
        let mbox = Path::new("/var/mail/alice");
        let ix = index();
        let st = stamp(ix.length);
        let (f, u) = (MboxFormat::Mboxo, UidlFormat::Native);
        let bytes = encode_file(mbox, f, u, &st, 77, &ix);
        assert_eq!(decode_file(&bytes, mbox, f, u), Ok((st, 77, ix.clone())));
        for n in 0..bytes.len() {
            assert!(decode_file(&bytes[..n], mbox, f, u).is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_file(&b, mbox, f, u).is_err(), "flip at {i}");
        }
        let other = Path::new("/var/mail/bob");
        assert_eq!(
            decode_file(&bytes, other, f, u).err(),
            Some(Invalid("made for another mailbox"))
        );
        assert_eq!(
            decode_file(&bytes, mbox, MboxFormat::Mboxrd, u).err(),
            Some(Invalid("made with other settings"))
        );
        let mut old = bytes.clone();
        old[16] = 0; // the layout version, with a checksum that matches
        let n = old.len() - 8;
        let sum = xxhash_rust::xxh3::xxh3_64(&old[..n]);
        old[n..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            decode_file(&old, mbox, f, u).err(),
            Some(Invalid("another layout version"))
        );
    }

    #[test]
    fn names_differ_by_mailbox_and_settings() {
        let a = file_name(
            Path::new("/var/mail/a"),
            MboxFormat::Mboxo,
            UidlFormat::Native,
        );
        let b = file_name(
            Path::new("/var/mail/b"),
            MboxFormat::Mboxo,
            UidlFormat::Native,
        );
        let c = file_name(
            Path::new("/var/mail/a"),
            MboxFormat::Mboxrd,
            UidlFormat::Native,
        );
        let d = file_name(
            Path::new("/var/mail/a"),
            MboxFormat::Mboxo,
            UidlFormat::Popa3d,
        );
        assert!(a != b && a != c && a != d && c != d);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn the_directory_must_be_private_to_the_server() {
        let t = tempfile::tempdir().expect("tempdir");
        let created = t.path().join("cache");
        let dir = CacheDir::prepare(&created).expect("created");
        let meta = fs::metadata(&created).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o700);
        drop(dir);
        fs::set_permissions(&created, fs::Permissions::from_mode(0o770)).expect("chmod");
        assert!(matches!(
            CacheDir::prepare(&created),
            Err(DirError::Unsafe(_))
        ));
        fs::set_permissions(&created, fs::Permissions::from_mode(0o700)).expect("chmod");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&created, &link).expect("symlink");
        assert!(matches!(CacheDir::prepare(&link), Err(DirError::Unsafe(_))));
        let file = t.path().join("file");
        fs::write(&file, b"").expect("file");
        assert!(matches!(CacheDir::prepare(&file), Err(DirError::Unsafe(_))));
        if credentials::fs_uid() == 0 {
            std::os::unix::fs::chown(&created, Some(65534), None).expect("chown");
            let e = CacheDir::prepare(&created).expect_err("someone else's");
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn a_slot_stores_looks_up_and_refuses_planted_files() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = CacheDir::prepare(&t.path().join("cache")).expect("dir");
        let mbox = t.path().join("alice");
        let (f, u) = (MboxFormat::Mboxo, UidlFormat::Native);
        let slot = dir.open(&mbox, f, u).expect("slot");
        let ix = index();
        let st = stamp(ix.length);
        assert!(matches!(slot.lookup(&st), Lookup::Miss));
        slot.store(&st, 9, &ix);
        match slot.lookup(&st) {
            Lookup::Unchanged(got, 9) => assert_eq!(*got, ix),
            other => panic!("{other:?}"),
        }
        let grown = Stamp {
            len: st.len + 10,
            ..st
        };
        assert!(matches!(slot.lookup(&grown), Lookup::Grown(_, 9)));
        let replaced = Stamp { ino: 99, ..st };
        assert!(matches!(slot.lookup(&replaced), Lookup::Miss));
        slot.clear();
        assert!(matches!(slot.lookup(&st), Lookup::Miss));
        // A symbolic link or a hard link in its place is never opened.
        let name = file_name(&mbox, f, u);
        fs::remove_file(t.path().join("cache").join(&name)).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("cache").join(&name))
            .expect("symlink");
        assert!(dir.open(&mbox, f, u).is_err());
        fs::remove_file(t.path().join("cache").join(&name)).expect("rm");
        fs::write(t.path().join("x"), b"").expect("x");
        fs::hard_link(t.path().join("x"), t.path().join("cache").join(&name)).expect("link");
        assert!(dir.open(&mbox, f, u).is_err());
    }
}
