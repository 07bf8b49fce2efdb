//! The commit journal: the bytes an in-place rewrite is about to overwrite, saved beside the
//! mailbox (`PATH.mboxpopd-journal`) so a crash at any instant can be undone.
//!
//! A commit removes byte ranges from `[start, old_len)` by shifting the kept bytes left. It only
//! ever *writes* inside `[start, new_len)`, and then truncates to `new_len`. So the journal holds
//! exactly the old bytes `[start, new_len)` (the *body*) plus a digest of the old bytes
//! `[new_len, old_len)`, which the rewrite never writes and only the truncate removes. (When only
//! the end of the file is deleted nothing is overwritten and `commit` writes no journal at all.)
//!
//! Format 2 (written since format 1 below): a header block, then the body at
//! `4096 + start % 4096` (so a file system that shares blocks between files can clone them).
//! The header carries the mailbox's dev/ino, the extent, the body offset, an XXH3-128 digest of
//! the tail and an XXH3-128 checksum of itself. It is written in this order, each step durable
//! before the next:
//! 1. create the journal (`O_EXCL`, mode 0600), copy the body into it (copy_file_range(2) in the
//!    kernel; read/write where that is not supported), fsync;
//! 2. write the header, fsync; fsync the directory. Only now is the mailbox touched.
//!
//! The body needs no checksum: a header that checks out was written after the body was durable,
//! so the body is complete. A crash before step 2 completes leaves no header (zeros), a torn
//! one (checksum fails), or a whole one over a durable body (fine either way: the mailbox was
//! not touched yet, and rolling back writes the bytes it already holds). The file length must be
//! exactly the body's end. The tail digest only tells "truncated" from "not truncated" (no
//! adversary chooses the old tail's bytes before the crash; 128 bits make a chance match
//! negligible), so a fast hash does.
//!
//! Recovery (under the MDA locks, before indexing) therefore sees one of:
//! - no journal, or a torn one (no valid header): the rewrite never started, because the
//!   journal is fsynced (file and directory) before the first byte of the mailbox is touched.
//!   Delete it.
//! - a valid journal and a file whose `[new_len, old_len)` still matches the digest: the
//!   truncate has not happened, so the rewrite may be partial. *Roll back*: write the saved bytes
//!   back at `start`. Anything past `old_len` is mail appended since (by an MDA that took over our
//!   dead locks) and stays where it is. The result is the complete old mailbox plus appended mail.
//! - a valid journal and a file shorter than `old_len` or whose tail no longer matches: the
//!   truncate happened, which we only do after the rewritten bytes are fsynced, so the new content
//!   is complete (possibly followed by appended mail). Nothing to do but delete the journal.
//!
//! Rolling back is idempotent (it writes the same bytes to the same place and never changes the
//! digest region), so a crash during recovery is recovered by the next recovery.
//!
//! Format 1 (`MBOXPOPD-JRNL-1`, earlier versions; still recovered, never written): header,
//! body, and a SHA-256 over both as the trailer, written in one pass and fsynced once, so every
//! byte had to be hashed when written and again when recovered; its tail digest is SHA-256.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use super::fault;

/// Format 2 (written): header block, then the body at `BODY_BASE + start % BLOCK`.
const MAGIC: &[u8; 16] = b"MBOXPOPD-JRNL-2\n";
/// dev, ino, start, new_len, old_len, body offset; tail digest; header checksum.
const HEADER_LEN: u64 = 16 + 6 * 8 + 16 + 16;
/// The body starts in the block after the header's, so writing the header never touches a block
/// that holds body bytes, and at the same offset within a block as in the mailbox, so that a
/// file system that can share blocks between files (copy_file_range as a reflink) may do so.
const BLOCK: u64 = 4096;
const BODY_BASE: u64 = BLOCK;

/// Format 1 (read only, left by earlier versions): header, body, SHA-256 of both.
const MAGIC_V1: &[u8; 16] = b"MBOXPOPD-JRNL-1\n";
const HEADER_LEN_V1: u64 = 16 + 5 * 8 + 32;
const TRAILER_LEN_V1: u64 = 32;

/// The journal path for a mailbox.
pub fn journal_path(mailbox: &Path) -> PathBuf {
    let mut p = mailbox.as_os_str().to_owned();
    p.push(".mboxpopd-journal");
    PathBuf::from(p)
}

/// What one rewrite will do, as recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First byte the rewrite writes (the first deleted message).
    pub start: u64,
    /// Length after the commit.
    pub new_len: u64,
    /// Length before the commit (including mail appended since login).
    pub old_len: u64,
}

impl Extent {
    fn sane(&self) -> bool {
        self.start <= self.new_len && self.new_len < self.old_len
    }
}

/// The digest of the old bytes `[new_len, old_len)`, by journal format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TailDigest {
    Sha256([u8; 32]),
    Xxh3([u8; 16]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    dev: u64,
    ino: u64,
    extent: Extent,
    tail_digest: TailDigest,
    /// Where the saved bytes `[start, new_len)` begin in the journal.
    body_offset: u64,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn xxh3_128(b: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(b).to_le_bytes()
}

fn body_offset_for(start: u64) -> u64 {
    BODY_BASE + start % BLOCK
}

impl Header {
    /// Format 2 header, checksummed (a torn header write fails the checksum).
    fn encode(&self) -> Vec<u8> {
        let TailDigest::Xxh3(tail) = self.tail_digest else {
            unreachable!("only format 2 is written")
        };
        let mut v = Vec::with_capacity(HEADER_LEN as usize);
        v.extend_from_slice(MAGIC);
        for n in [
            self.dev,
            self.ino,
            self.extent.start,
            self.extent.new_len,
            self.extent.old_len,
            self.body_offset,
        ] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(&tail);
        let sum = xxh3_128(&v);
        v.extend_from_slice(&sum);
        v
    }

    fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN as usize || &b[..16] != MAGIC {
            return None;
        }
        let (fields, sum) = b[..HEADER_LEN as usize].split_at(HEADER_LEN as usize - 16);
        if xxh3_128(fields) != sum {
            return None;
        }
        let extent = Extent {
            start: le_u64(b, 32),
            new_len: le_u64(b, 40),
            old_len: le_u64(b, 48),
        };
        let mut tail = [0u8; 16];
        tail.copy_from_slice(&b[64..80]);
        let body_offset = le_u64(b, 56);
        (extent.sane() && body_offset == body_offset_for(extent.start)).then_some(Header {
            dev: le_u64(b, 16),
            ino: le_u64(b, 24),
            extent,
            tail_digest: TailDigest::Xxh3(tail),
            body_offset,
        })
    }

    fn decode_v1(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN_V1 as usize || &b[..16] != MAGIC_V1 {
            return None;
        }
        let mut tail = [0u8; 32];
        tail.copy_from_slice(&b[56..88]);
        let extent = Extent {
            start: le_u64(b, 32),
            new_len: le_u64(b, 40),
            old_len: le_u64(b, 48),
        };
        extent.sane().then_some(Header {
            dev: le_u64(b, 16),
            ino: le_u64(b, 24),
            extent,
            tail_digest: TailDigest::Sha256(tail),
            body_offset: HEADER_LEN_V1,
        })
    }

    fn body_len(&self) -> u64 {
        self.extent.new_len - self.extent.start
    }
}

/// A written, durable journal. Remove it only once the mailbox itself is durable.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    header: Header,
}

/// Buffer size for streaming mailbox bytes; overridable under fault injection so small test
/// mailboxes still pass through many write steps.
pub(crate) fn chunk_size() -> usize {
    fault::chunk_size().unwrap_or(1 << 20)
}

/// Feed `file[from, to)` to `update`, read in large chunks.
fn read_range(file: &File, from: u64, to: u64, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; chunk_size().min((to - from) as usize).max(1)];
    let mut pos = from;
    while pos < to {
        let n = buf.len().min((to - pos) as usize);
        file.read_exact_at(&mut buf[..n], pos)?;
        update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}

/// The digest of `file[from, to)` in the algorithm of `like`.
fn tail_digest(file: &File, from: u64, to: u64, like: TailDigest) -> io::Result<TailDigest> {
    Ok(match like {
        TailDigest::Sha256(_) => {
            let mut h = Sha256::new();
            read_range(file, from, to, |b| h.update(b))?;
            TailDigest::Sha256(h.finalize().into())
        }
        TailDigest::Xxh3(_) => {
            let mut h = Xxh3::new();
            read_range(file, from, to, |b| h.update(b))?;
            TailDigest::Xxh3(h.digest128().to_le_bytes())
        }
    })
}

impl Journal {
    /// Save `mailbox[start, new_len)` and the tail digest: copy the body, fsync, write the
    /// header that makes it valid, fsync, fsync the directory. On error the partial journal is
    /// removed (it would be discarded as torn anyway).
    pub fn write(mailbox: &File, mailbox_path: &Path, extent: Extent) -> io::Result<Journal> {
        let meta = mailbox.metadata()?;
        let header = Header {
            dev: meta.dev(),
            ino: meta.ino(),
            extent,
            tail_digest: tail_digest(
                mailbox,
                extent.new_len,
                extent.old_len,
                TailDigest::Xxh3([0; 16]),
            )?,
            body_offset: body_offset_for(extent.start),
        };
        let path = journal_path(mailbox_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        fault::created(&path, &file);
        let result = Self::fill(&file, mailbox, &header);
        if let Err(e) = result {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        if let Err(e) = fault::sync_dir(&path, "journal directory fsync") {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Journal { path, file, header })
    }

    /// The body first, durable, and only then the header: a journal whose header checks out
    /// has a complete body, so the body needs no checksum of its own.
    fn fill(file: &File, mailbox: &File, header: &Header) -> io::Result<()> {
        let mut buf = vec![0u8; chunk_size()];
        fault::copy_range(
            mailbox,
            header.extent.start,
            file,
            header.body_offset,
            header.body_len(),
            &mut buf,
        )?;
        fault::sync(file, "journal body fsync")?;
        fault::write_at(file, &header.encode(), 0)?;
        fault::sync(file, "journal fsync")
    }

    /// Bytes saved in the journal.
    pub fn saved_bytes(&self) -> u64 {
        self.header.body_len()
    }

    /// Undo a (possibly partial) rewrite that has not been truncated yet.
    pub fn roll_back(&self, mailbox: &File) -> io::Result<()> {
        roll_back(&self.file, &self.header, mailbox)
    }

    /// Delete the journal once the mailbox is durable, and fsync the directory. Should a crash
    /// resurrect the journal anyway, recovery sees the truncate done (the tail digest no longer
    /// matches) and only deletes it.
    pub fn remove(self) -> io::Result<()> {
        fault::unlink(&self.path, "journal unlink")?;
        fault::sync_dir(&self.path, "directory fsync after unlink")
    }
}

/// Copy the saved bytes back to `start`. Reads the journal by position through the handle that
/// was verified, never by name again.
fn roll_back(journal: &File, header: &Header, mailbox: &File) -> io::Result<()> {
    let mut buf = vec![0u8; chunk_size()];
    fault::copy_range(
        journal,
        header.body_offset,
        mailbox,
        header.extent.start,
        header.body_len(),
        &mut buf,
    )?;
    fault::sync(mailbox, "mailbox fsync after roll-back")
}

/// Read and verify an open journal of either format. `Ok(None)`: torn or not a journal.
fn read_valid(f: &File) -> io::Result<Option<Header>> {
    let len = f.metadata()?.len();
    let mut head = vec![0u8; HEADER_LEN.max(HEADER_LEN_V1).min(len) as usize];
    f.read_exact_at(&mut head, 0)?;
    if head.starts_with(MAGIC_V1) {
        return read_valid_v1(f, len);
    }
    // The header is written only after the body is durable: a valid header vouches for it.
    Ok(Header::decode(&head).filter(|h| len == h.body_offset + h.body_len()))
}

/// Format 1: the SHA-256 trailer covers header and body.
fn read_valid_v1(f: &File, len: u64) -> io::Result<Option<Header>> {
    if len < HEADER_LEN_V1 + TRAILER_LEN_V1 {
        return Ok(None);
    }
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut head = vec![0u8; HEADER_LEN_V1 as usize];
    r.read_exact(&mut head)?;
    let Some(header) = Header::decode_v1(&head) else {
        return Ok(None);
    };
    if len != HEADER_LEN_V1 + header.body_len() + TRAILER_LEN_V1 {
        return Ok(None);
    }
    let mut h = Sha256::new();
    h.update(&head);
    let mut body = (&mut r).take(len - HEADER_LEN_V1 - TRAILER_LEN_V1);
    let mut hw = HashWriter(&mut h);
    io::copy(&mut body, &mut BufWriter::new(&mut hw))?;
    let mut sum = [0u8; 32];
    r.read_exact(&mut sum)?;
    let computed: [u8; 32] = h.finalize().into();
    Ok((computed == sum).then_some(header))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What recovery found and did; logged by the caller and returned for tests and start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No journal: the last commit (if any) finished.
    Clean,
    /// A torn journal: the crash came before the rewrite started. Journal deleted.
    DiscardedTorn,
    /// The rewrite was interrupted: the old bytes were restored. Journal deleted.
    RolledBack { restored_bytes: u64 },
    /// The rewrite and truncate had finished; only the journal was left. Journal deleted.
    AlreadyComplete,
    /// A journal we wrote, but it does not describe this file (other inode, or the file is
    /// shorter than the commit could have left it): another program replaced or cut the
    /// mailbox since. Nothing was written; the journal was moved to a fresh
    /// `…-journal.rejected[.N]` name for the administrator (or left in place if none was free).
    Rejected { reason: String },
    /// Something at the journal path that we did not write: owned by an untrusted uid, or not
    /// a regular file. Never applied, renamed or removed by recovery; the mailbox is served as
    /// it is.
    Ignored { reason: String, owner_uid: u32 },
}

/// Whether recovery applies a journal owned by `uid` to a mailbox owned by `owner`: the
/// mailbox's owner, root, and `writers` (the uids this daemon writes journals as) may write
/// one. Anyone else could only have planted it, and applying it would write their bytes into
/// the mailbox.
pub fn trusted(uid: u32, owner: u32, writers: &[u32]) -> bool {
    uid == owner || uid == 0 || writers.contains(&uid)
}

/// A name for a rejected journal that does not exist yet: link(2) never replaces a file.
fn set_aside(path: &Path) -> io::Result<Option<PathBuf>> {
    for n in 0..100u32 {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".rejected");
        if n > 0 {
            aside.push(format!(".{n}"));
        }
        let aside = PathBuf::from(aside);
        match fs::hard_link(path, &aside) {
            Ok(()) => {
                fs::remove_file(path)?;
                fault::sync_dir_of(path)?;
                return Ok(Some(aside));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Remove `path` if it still is the file `meta` describes (the name may have been replaced
/// since it was opened; never remove something we did not look at).
fn remove_verified(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if (m.dev(), m.ino()) == (meta.dev(), meta.ino()) => fs::remove_file(path),
        Ok(_) => Err(io::Error::other(
            "the journal was replaced while recovering",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Recover an interrupted commit. The caller holds the MDA locks, and `mailbox` is open for
/// writing on `mailbox_path`. `writers`: see [`trusted`].
pub fn recover(mailbox: &File, mailbox_path: &Path, writers: &[u32]) -> io::Result<Recovery> {
    let path = journal_path(mailbox_path);
    let meta = mailbox.metadata()?;
    let ignore = |reason: String, owner_uid: u32| -> io::Result<Recovery> {
        log::error!(
            "{}: ignoring {} (owner uid {owner_uid}): {reason}; not applied, the mailbox is \
             served as it is",
            mailbox_path.display(),
            path.display()
        );
        Ok(Recovery::Ignored { reason, owner_uid })
    };
    // Recovery may run with more privileges than the user (the daemon at start-up), and in a
    // spool others can create files in (mode 1777) the name may hold anything: look before
    // opening, never follow a symlink, never block on a FIFO, and trust only the owners above.
    let lmeta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovery::Clean),
        Err(e) => return Err(e),
    };
    if !lmeta.file_type().is_file() {
        return ignore(String::from(kind_of(&lmeta)), lmeta.uid());
    }
    if !trusted(lmeta.uid(), meta.uid(), writers) {
        return ignore(
            format!("written by an untrusted uid (mailbox owner {})", meta.uid()),
            lmeta.uid(),
        );
    }
    let journal = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovery::Clean),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return ignore(String::from("a symbolic link"), lmeta.uid())
        }
        Err(e) => return Err(e),
    };
    // What was opened is what counts (the name may have been swapped since the lstat).
    let jmeta = journal.metadata()?;
    if !jmeta.file_type().is_file() {
        return ignore(String::from(kind_of(&jmeta)), jmeta.uid());
    }
    if !trusted(jmeta.uid(), meta.uid(), writers) {
        return ignore(
            format!("written by an untrusted uid (mailbox owner {})", meta.uid()),
            jmeta.uid(),
        );
    }
    let reject = |reason: String| -> io::Result<Recovery> {
        match set_aside(&path)? {
            Some(aside) => log::error!(
                "{}: commit journal not applied ({reason}); mailbox left as it is, journal \
                 kept as {}",
                mailbox_path.display(),
                aside.display()
            ),
            None => log::error!(
                "{}: commit journal not applied ({reason}); mailbox left as it is, journal \
                 left at {} (no free name to move it to)",
                mailbox_path.display(),
                path.display()
            ),
        }
        Ok(Recovery::Rejected { reason })
    };
    let Some(header) = read_valid(&journal)? else {
        // Written by a trusted uid and torn (or never filled): the crash came before the
        // journal was durable, so before the first byte of the mailbox was touched.
        remove_verified(&path, &jmeta)?;
        fault::sync_dir_of(&path)?;
        log::warn!(
            "{}: removed a torn commit journal; the mailbox was not yet modified",
            mailbox_path.display()
        );
        return Ok(Recovery::DiscardedTorn);
    };
    let Extent {
        start,
        new_len,
        old_len,
    } = header.extent;
    if (meta.dev(), meta.ino()) != (header.dev, header.ino) {
        return reject(String::from("the mailbox was replaced by another file"));
    }
    let len = meta.len();
    if len < new_len {
        return reject(format!(
            "the mailbox is {len} bytes, expected at least {new_len}"
        ));
    }
    let untruncated = len >= old_len
        && tail_digest(mailbox, new_len, old_len, header.tail_digest)? == header.tail_digest;
    let outcome = if untruncated {
        roll_back(&journal, &header, mailbox)?;
        log::warn!(
            "{}: an interrupted commit was rolled back ({} bytes restored at offset {start}); \
             no message was deleted",
            mailbox_path.display(),
            new_len - start
        );
        Recovery::RolledBack {
            restored_bytes: new_len - start,
        }
    } else {
        log::warn!(
            "{}: a commit had completed before a crash; removed its leftover journal",
            mailbox_path.display()
        );
        Recovery::AlreadyComplete
    };
    fault::point("journal unlink after recovery")?;
    remove_verified(&path, &jmeta)?;
    fault::sync_dir(&path, "directory fsync after recovery")?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(content: &[u8]) -> (tempfile::TempDir, PathBuf, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("mbox");
        fs::write(&p, content).expect("write");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .expect("open");
        (dir, p, f)
    }

    #[test]
    fn header_round_trips_and_rejects_nonsense() {
        let h = Header {
            dev: 1,
            ino: 2,
            extent: Extent {
                start: 3,
                new_len: 4,
                old_len: 5,
            },
            tail_digest: TailDigest::Xxh3([7; 16]),
            body_offset: body_offset_for(3),
        };
        let bytes = h.encode();
        assert_eq!(bytes.len() as u64, HEADER_LEN);
        assert_eq!(Header::decode(&bytes), Some(h.clone()));
        let mut bad = h.clone();
        bad.extent.new_len = 5; // nothing removed: never journalled
        assert_eq!(Header::decode(&bad.encode()), None);
        // Any torn or flipped byte fails the header checksum.
        for i in 0..bytes.len() {
            let mut torn = bytes.clone();
            torn[i] ^= 0x40;
            assert_eq!(Header::decode(&torn), None, "byte {i}");
            assert_eq!(Header::decode(&bytes[..i]), None, "cut at {i}");
        }
    }

    /// A format-1 journal as the previous version wrote it: header, body, SHA-256 of both.
    fn v1_journal(mailbox: &File, extent: Extent) -> Vec<u8> {
        let meta = mailbox.metadata().expect("stat");
        let mut old = vec![0u8; extent.old_len as usize];
        mailbox.read_exact_at(&mut old, 0).expect("read");
        let mut v = MAGIC_V1.to_vec();
        for n in [
            meta.dev(),
            meta.ino(),
            extent.start,
            extent.new_len,
            extent.old_len,
        ] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        let tail: [u8; 32] =
            Sha256::digest(&old[extent.new_len as usize..extent.old_len as usize]).into();
        v.extend_from_slice(&tail);
        v.extend_from_slice(&old[extent.start as usize..extent.new_len as usize]);
        let sum: [u8; 32] = Sha256::digest(&v).into();
        v.extend_from_slice(&sum);
        v
    }

    #[test]
    fn a_format_1_journal_is_still_recovered() {
        let old = b"0123456789abcdefghij".to_vec();
        let extent = Extent {
            start: 5,
            new_len: 15,
            old_len: 20,
        };
        // Interrupted shift: rolled back.
        let (_d, p, f) = setup(&old);
        fs::write(journal_path(&p), v1_journal(&f, extent)).expect("journal");
        f.write_all_at(b"XXXX", 5).expect("write");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::RolledBack { restored_bytes: 10 }
        );
        assert_eq!(fs::read(&p).expect("read"), old);
        assert!(!journal_path(&p).exists());
        // Truncate done: complete.
        let j = v1_journal(&f, extent);
        fs::write(journal_path(&p), &j).expect("journal");
        f.write_all_at(b"56789fghijXXXXX", 5).expect("write");
        f.set_len(15).expect("truncate");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::AlreadyComplete
        );
        assert_eq!(fs::read(&p).expect("read"), b"0123456789fghij");
        // Torn (a body byte flipped): discarded, the mailbox untouched.
        let mut torn = j.clone();
        torn[HEADER_LEN_V1 as usize + 2] ^= 1;
        fs::write(journal_path(&p), &torn).expect("journal");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::DiscardedTorn
        );
        assert_eq!(fs::read(&p).expect("read"), b"0123456789fghij");
    }

    #[test]
    fn the_body_lies_block_aligned_like_the_mailbox_and_the_header_validates_it() {
        let old: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (_d, p, f) = setup(&old);
        let extent = Extent {
            start: 5_000,
            new_len: 9_000,
            old_len: 10_000,
        };
        drop(Journal::write(&f, &p, extent).expect("journal"));
        let j = fs::read(journal_path(&p)).expect("read");
        let at = (BODY_BASE + 5_000 % BLOCK) as usize;
        assert_eq!(j.len(), at + 4_000);
        assert_eq!(&j[at..], &old[5_000..9_000]);
        // Crash after the body, before the header: zeros where the header goes, discarded.
        let mut no_header = j.clone();
        no_header[..HEADER_LEN as usize].fill(0);
        fs::write(journal_path(&p), &no_header).expect("write");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::DiscardedTorn
        );
        // A torn header (half written over zeros, or garbage): discarded too.
        let mut half = no_header.clone();
        half[..HEADER_LEN as usize / 2].copy_from_slice(&j[..HEADER_LEN as usize / 2]);
        for bad in [half, [&b"garbage"[..], &j[7..]].concat()] {
            fs::write(journal_path(&p), &bad).expect("write");
            assert_eq!(
                recover(&f, &p, &[]).expect("recover"),
                Recovery::DiscardedTorn
            );
        }
        // A valid header over a body cut short (the file length disagrees): discarded.
        fs::write(journal_path(&p), &j[..j.len() - 1]).expect("write");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::DiscardedTorn
        );
        assert_eq!(fs::read(&p).expect("read"), old);
    }

    #[test]
    fn rollback_restores_a_partially_rewritten_file() {
        let old = b"0123456789abcdefghij".to_vec();
        let (_d, p, f) = setup(&old);
        let extent = Extent {
            start: 5,
            new_len: 15,
            old_len: 20,
        };
        let j = Journal::write(&f, &p, extent).expect("journal");
        assert_eq!(j.saved_bytes(), 10);
        // A partial shift, then a crash.
        f.write_all_at(b"XXXX", 5).expect("write");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::RolledBack { restored_bytes: 10 }
        );
        assert_eq!(fs::read(&p).expect("read"), old);
        assert!(!journal_path(&p).exists());
        assert_eq!(recover(&f, &p, &[]).expect("again"), Recovery::Clean);
    }

    #[test]
    fn rollback_keeps_mail_appended_after_the_crash() {
        let old = b"0123456789abcdefghij".to_vec();
        let (_d, p, f) = setup(&old);
        let extent = Extent {
            start: 0,
            new_len: 10,
            old_len: 20,
        };
        let _j = Journal::write(&f, &p, extent).expect("journal");
        f.write_all_at(b"abcdefghij", 0).expect("write");
        f.write_all_at(b"APPENDED", 20).expect("append");
        assert!(matches!(
            recover(&f, &p, &[]),
            Ok(Recovery::RolledBack { .. })
        ));
        assert_eq!(fs::read(&p).expect("read"), b"0123456789abcdefghijAPPENDED");
    }

    #[test]
    fn truncated_file_means_the_commit_completed_even_with_appended_mail() {
        let (_d, p, f) = setup(b"0123456789abcdefghij");
        let extent = Extent {
            start: 0,
            new_len: 10,
            old_len: 20,
        };
        let _j = Journal::write(&f, &p, extent).expect("journal");
        f.write_all_at(b"abcdefghij", 0).expect("write");
        f.set_len(10).expect("truncate");
        // An MDA appends more than was removed: the length alone would look untruncated.
        f.write_all_at(b"NEW MAIL ARRIVED", 10).expect("append");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::AlreadyComplete
        );
        assert_eq!(fs::read(&p).expect("read"), b"abcdefghijNEW MAIL ARRIVED");
    }

    #[test]
    fn torn_journal_is_discarded_without_touching_the_mailbox() {
        let (_d, p, f) = setup(b"0123456789abcdefghij");
        let extent = Extent {
            start: 0,
            new_len: 10,
            old_len: 20,
        };
        drop(Journal::write(&f, &p, extent).expect("journal"));
        let jp = journal_path(&p);
        let mut bytes = fs::read(&jp).expect("read");
        bytes[20] ^= 1;
        fs::write(&jp, &bytes).expect("corrupt");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::DiscardedTorn
        );
        assert_eq!(fs::read(&p).expect("read"), b"0123456789abcdefghij");
        // A journal cut short is torn too.
        drop(Journal::write(&f, &p, extent).expect("journal"));
        fs::write(&jp, &bytes[..40]).expect("cut");
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::DiscardedTorn
        );
    }

    #[test]
    fn journal_of_another_file_is_rejected_and_kept() {
        let (d, p, f) = setup(b"0123456789abcdefghij");
        let extent = Extent {
            start: 0,
            new_len: 10,
            old_len: 20,
        };
        drop(Journal::write(&f, &p, extent).expect("journal"));
        drop(f);
        // Another program replaces the mailbox by rename.
        let other = d.path().join("other");
        fs::write(&other, b"From x\n\nreplaced\n").expect("write");
        fs::rename(&other, &p).expect("rename");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .expect("open");
        // An earlier rejected journal is never replaced.
        let mut aside = journal_path(&p).into_os_string();
        aside.push(".rejected");
        fs::write(&aside, b"earlier").expect("write");
        assert!(matches!(
            recover(&f, &p, &[]),
            Ok(Recovery::Rejected { .. })
        ));
        assert_eq!(fs::read(&p).expect("read"), b"From x\n\nreplaced\n");
        assert!(!journal_path(&p).exists());
        assert_eq!(fs::read(&aside).expect("read"), b"earlier");
        aside.push(".1");
        assert!(Path::new(&aside).exists());
    }

    #[test]
    fn a_journal_not_written_by_the_mailbox_owner_is_not_applied() {
        let old = b"0123456789abcdefghij".to_vec();
        let (d, p, f) = setup(&old);
        let extent = Extent {
            start: 0,
            new_len: 10,
            old_len: 20,
        };
        // A well-formed journal for this very mailbox, but planted by someone else (here: a
        // different owner), with bytes of their choosing.
        let planted = d.path().join("planted");
        // Its tail matches the victim's, so the tail digest would not give it away.
        fs::write(&planted, b"EVILEVILEVabcdefghij").expect("write");
        let pf = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&planted)
            .expect("open");
        drop(Journal::write(&pf, &planted, extent).expect("journal"));
        let mut bytes = fs::read(journal_path(&planted)).expect("read");
        let meta = f.metadata().expect("stat");
        // Re-target the header at the victim's inode and fix the checksum.
        bytes[16..24].copy_from_slice(&meta.dev().to_le_bytes());
        bytes[24..32].copy_from_slice(&meta.ino().to_le_bytes());
        let sum = xxh3_128(&bytes[..HEADER_LEN as usize - 16]);
        bytes[HEADER_LEN as usize - 16..HEADER_LEN as usize].copy_from_slice(&sum);
        fs::write(journal_path(&p), &bytes).expect("plant");
        let other_uid = meta.uid() + 1;
        if std::os::unix::fs::chown(journal_path(&p), Some(other_uid), None).is_err() {
            eprintln!("skipped: cannot chown (not root)");
            return;
        }
        let planted_uid = meta.uid() + 1;
        assert_eq!(
            recover(&f, &p, &[]).expect("recover"),
            Recovery::Ignored {
                reason: format!("written by an untrusted uid (mailbox owner {})", meta.uid()),
                owner_uid: planted_uid,
            }
        );
        assert_eq!(fs::read(&p).expect("read"), old);
        // Ignored means left alone: not applied, not renamed, not removed.
        assert!(journal_path(&p).exists());
        assert_eq!(fs::read_dir(d.path()).expect("ls").count(), 4);
        // The uid the daemon writes as (virtual-user mode) is trusted: the same journal would
        // be applied, so the test above is not vacuous.
        assert!(matches!(
            recover(&f, &p, &[planted_uid]),
            Ok(Recovery::RolledBack { .. })
        ));
        assert_eq!(&fs::read(&p).expect("read")[..10], b"EVILEVILEV");
    }

    #[test]
    fn trust_rule() {
        assert!(trusted(1000, 1000, &[]));
        assert!(trusted(0, 1000, &[]));
        assert!(trusted(65534, 1000, &[65534]));
        assert!(!trusted(1001, 1000, &[65534]));
    }

    #[test]
    fn a_fifo_at_the_journal_path_is_ignored_without_blocking() {
        let (_d, p, f) = setup(b"0123456789abcdefghij");
        let made = std::process::Command::new("mkfifo")
            .arg(journal_path(&p))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert!(matches!(recover(&f, &p, &[]), Ok(Recovery::Ignored { .. })));
        assert!(journal_path(&p).exists());
        assert_eq!(fs::read(&p).expect("read"), b"0123456789abcdefghij");
    }

    #[test]
    fn a_symlinked_journal_is_not_followed() {
        let (d, p, f) = setup(b"0123456789abcdefghij");
        let target = d.path().join("elsewhere");
        fs::write(&target, b"secret").expect("write");
        std::os::unix::fs::symlink(&target, journal_path(&p)).expect("symlink");
        assert!(matches!(recover(&f, &p, &[]), Ok(Recovery::Ignored { .. })));
        assert_eq!(fs::read(&target).expect("read"), b"secret");
        assert_eq!(fs::read(&p).expect("read"), b"0123456789abcdefghij");
    }
}
