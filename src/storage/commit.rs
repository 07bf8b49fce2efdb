//! The crash-safe in-place commit of a QUIT.
//!
//! Deleted messages are removed by shifting every kept byte after the first deleted message to
//! the left, inside the same file (same inode, owner and mode: MDAs may hold it open or locked,
//! and a rename would strand their deliveries in an unlinked file). Only `[start, EOF)` is read
//! and only `[start, new_len)` is written, so deleting the last message of a huge mailbox costs
//! that message, not the mailbox.
//!
//! Steps, each durable before the next: journal the bytes that will be overwritten (body, fsync,
//! header, fsync, directory fsync) → shift → fsync → truncate → fsync → remove the journal
//! (fsync directory). When only the end of the file goes, nothing is overwritten: truncate →
//! fsync, no journal. See `journal` for why any crash between them recovers to the old or the
//! new content.
//!
//! Cost: the journal body and the shift each write `new_len - start` bytes. On a file system
//! that cannot share blocks (ext4) and for a gap (bytes removed) that is small next to what
//! follows it, as when one message is deleted, that is the least a power-loss-safe in-place
//! shift can write: every overwritten byte must survive somewhere until its new place is
//! durable, and a shift that relied on that alone (no journal, the data moved in gap-sized steps
//! each fsynced before the next overwrites its source) would need one fsync per gap-sized step,
//! and a redo recovery that can also move mail delivered after the crash. What is saved is the
//! rest: the journal copy stays in the kernel
//! (copy_file_range; on XFS and btrfs it clones the blocks, so the journal writes no data and
//! the commit writes the tail once), nothing hashes the body, and write-back starts behind the
//! copy and the shift (sync_file_range) so the disk works during the copy instead of only in
//! the fsyncs.
//!
//! The caller holds the dot-lock and the fcntl lock, so no MDA appends during the commit; what
//! was appended before (past the indexed length) is part of `[start, old_len)` and is shifted
//! down with the kept messages.
//!
//! A commit may also insert a few bytes into a kept message (the UIDVALIDITY field carried over
//! to the new first message, see `imapbase`). The insertion point lies after the first deleted
//! range and fewer bytes are inserted than were removed before it, so the output still ends at
//! `new_len < old_len`, every write stays inside `[start, new_len)` (which the journal saves),
//! and the copy never overtakes its source.

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::error::io_error;
use super::fault;
use super::journal::{self, Extent, Journal, Recovery};
use super::StoreError;

/// What the rewrite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RewriteStats {
    /// Bytes written into the mailbox by the shift (`new_len - start`).
    pub rewritten_bytes: u64,
    /// Bytes saved in the journal first (equal to `rewritten_bytes`).
    pub journalled_bytes: u64,
    /// Bytes the file shrank by (removed minus inserted).
    pub removed_bytes: u64,
}

/// Sort and merge byte ranges; reject ranges outside `[0, len)`.
fn normalise(ranges: &[Range<u64>], len: u64) -> Result<Vec<Range<u64>>, StoreError> {
    let mut v: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
    for r in v {
        if r.end > len {
            return Err(StoreError::Temporary(format!(
                "range {}..{} lies past the end of the mailbox ({len} bytes)",
                r.start, r.end
            )));
        }
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// Remove `deleted` (byte ranges inside `[0, old_len)`) from `file`, which is open read-write on
/// `path` and is `old_len` bytes long. The caller holds the MDA locks. Durable on `Ok`.
/// `writers`: the uids besides the mailbox's owner and root whose journals recovery applies
/// (see [`journal::trusted`]).
///
/// On an error the mailbox is left with its old content: before the truncate the journal is
/// rolled back at once; if even that fails, the journal stays for the next open to recover.
pub fn remove_ranges(
    file: &File,
    path: &Path,
    deleted: &[Range<u64>],
    old_len: u64,
    writers: &[u32],
) -> Result<RewriteStats, StoreError> {
    rewrite(file, path, deleted, None, old_len, writers)
}

/// Bytes to insert at an offset of the old file, in a kept segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insert<'a> {
    pub at: u64,
    pub bytes: &'a [u8],
}

/// Check `insert` against the (normalised) deleted ranges: it must lie in a kept segment after
/// the first range, and fewer bytes than were removed before it, so that the shift stays
/// behind its source and the file still shrinks.
fn check_insert(ranges: &[Range<u64>], insert: Insert<'_>, old_len: u64) -> Result<(), StoreError> {
    let removed_before: u64 = ranges
        .iter()
        .filter(|r| r.end <= insert.at)
        .map(|r| r.end - r.start)
        .sum();
    let inside = ranges
        .iter()
        .any(|r| r.start < insert.at && insert.at < r.end);
    let after_first = ranges.first().is_some_and(|f| f.end <= insert.at);
    if inside || !after_first || insert.at > old_len || insert.bytes.len() as u64 >= removed_before
    {
        return Err(StoreError::Temporary(format!(
            "cannot insert {} bytes at offset {} in this rewrite",
            insert.bytes.len(),
            insert.at
        )));
    }
    Ok(())
}

/// [`remove_ranges`], and also insert `insert` (see [`check_insert`]) in the same journalled
/// rewrite.
pub fn rewrite(
    file: &File,
    path: &Path,
    deleted: &[Range<u64>],
    insert: Option<Insert<'_>>,
    old_len: u64,
    writers: &[u32],
) -> Result<RewriteStats, StoreError> {
    let ranges = normalise(deleted, old_len)?;
    let Some(first) = ranges.first() else {
        return Ok(RewriteStats::default());
    };
    if let Some(ins) = insert {
        check_insert(&ranges, ins, old_len)?;
    }
    let inserted = insert.map_or(0, |i| i.bytes.len() as u64);
    let removed: u64 = ranges.iter().map(|r| r.end - r.start).sum::<u64>() - inserted;
    let extent = Extent {
        start: first.start,
        new_len: old_len - removed,
        old_len,
    };

    // A journal left by a crash must be resolved before a new one can be written; normally
    // `Mailbox::open` already did this.
    if let Recovery::Ignored { owner_uid, .. } = recover_logged(file, path, writers)? {
        clear_untrusted(path, owner_uid)?;
    }

    if extent.start == extent.new_len {
        // Only the tail goes: nothing is overwritten, and a truncate either happened or did
        // not, so no journal is needed. This also works on a completely full disk.
        fault::set_len(file, extent.new_len).map_err(|e| io_error("cannot truncate", path, &e))?;
        fault::sync(file, "mailbox fsync after truncate")
            .map_err(|e| io_error("cannot fsync", path, &e))?;
        return Ok(RewriteStats {
            rewritten_bytes: 0,
            journalled_bytes: 0,
            removed_bytes: removed,
        });
    }

    check_writer_trusted(file, path, writers)?;
    let journal =
        Journal::write(file, path, extent).map_err(|e| io_error("cannot journal", path, &e))?;

    if let Err(e) = shift(file, &ranges, insert, extent)
        .and_then(|()| fault::sync(file, "mailbox fsync after shift"))
    {
        return Err(undo(file, path, journal, "rewrite", &e));
    }
    let truncated = fault::set_len(file, extent.new_len);
    if let Err(e) = truncated {
        return Err(undo(file, path, journal, "truncate", &e));
    }
    // Past the truncate there is no way back (the removed bytes were never journalled): a
    // failing fsync here reports an error although the new content is in place.
    fault::sync(file, "mailbox fsync after truncate")
        .map_err(|e| io_error("cannot fsync", path, &e))?;
    // The commit is durable now; a failure to remove the journal only leaves work for the next
    // recovery, which will find the truncate done and delete it.
    if let Err(e) = journal.remove() {
        log::warn!(
            "{}: commit done but its journal could not be removed: {e}",
            path.display()
        );
    }
    Ok(RewriteStats {
        rewritten_bytes: extent.new_len - extent.start,
        journalled_bytes: extent.new_len - extent.start,
        removed_bytes: removed,
    })
}

/// Bytes the shift writes between two write-back starts.
const WRITEBACK_STEP: u64 = 16 << 20;

/// Copy each kept segment after `extent.start` to its new place, writing `insert` when the copy
/// reaches its offset. The destination is always at or before the source (`check_insert`), so
/// a forward copy never reads a byte it has already overwritten.
fn shift(
    file: &File,
    ranges: &[Range<u64>],
    mut insert: Option<Insert<'_>>,
    extent: Extent,
) -> io::Result<()> {
    let mut buf = vec![0u8; journal::chunk_size()];
    let mut dst = extent.start;
    // Start write-back every few MiB, so the disk works while the copy goes on rather than
    // only in the fsync after it.
    let mut unsent = dst;
    for (i, r) in ranges.iter().enumerate() {
        let kept_end = ranges.get(i + 1).map_or(extent.old_len, |n| n.start);
        let mut src = r.end;
        loop {
            if let Some(ins) = insert.filter(|ins| ins.at == src) {
                fault::write_at(file, ins.bytes, dst)?;
                dst += ins.bytes.len() as u64;
                insert = None;
            }
            if src >= kept_end {
                break;
            }
            // Stop a chunk at the insertion point.
            let until = insert.map_or(kept_end, |ins| {
                if ins.at > src {
                    ins.at.min(kept_end)
                } else {
                    kept_end
                }
            });
            let n = buf.len().min((until - src) as usize);
            file.read_exact_at(&mut buf[..n], src)?;
            fault::write_at(file, &buf[..n], dst)?;
            src += n as u64;
            dst += n as u64;
            if dst - unsent >= WRITEBACK_STEP {
                fault::writeback(file, unsent, dst - unsent);
                unsent = dst;
            }
        }
    }
    debug_assert!(insert.is_none());
    debug_assert_eq!(dst, extent.new_len);
    Ok(())
}

/// Put the old content back after a failed rewrite, and report the original failure.
fn undo(file: &File, path: &Path, journal: Journal, step: &str, e: &io::Error) -> StoreError {
    let err = io_error(&format!("{step} failed on"), path, e);
    match journal.roll_back(file) {
        Ok(()) => {
            if let Err(e2) = journal.remove() {
                log::warn!(
                    "{}: journal not removed after roll-back: {e2}",
                    path.display()
                );
            }
            log::error!(
                "{}: commit failed, old content restored: {err}",
                path.display()
            );
        }
        Err(e2) => log::error!(
            "{}: commit failed ({err}) and the roll-back too ({e2}); the journal is kept and \
             the next open will restore the mailbox",
            path.display()
        ),
    }
    err
}

/// Run journal recovery, mapping errors. A rejected or ignored journal is not an error for the
/// caller: the mailbox was left as it is and will be indexed afresh.
pub fn recover_logged(file: &File, path: &Path, writers: &[u32]) -> Result<Recovery, StoreError> {
    journal::recover(file, path, writers)
        .map_err(|e| io_error("cannot recover the commit journal of", path, &e))
}

/// The journal path holds a file recovery ignored (not ours). A new journal cannot be created
/// there, so remove it if this session may (the session is the user, and it sits in the
/// user's spool slot); otherwise refuse the commit, changing nothing.
fn clear_untrusted(path: &Path, owner_uid: u32) -> Result<(), StoreError> {
    let jpath = journal::journal_path(path);
    match fs::remove_file(&jpath) {
        Ok(()) => {
            log::warn!(
                "{}: removed {} (owner uid {owner_uid}), which was not a journal of ours",
                path.display(),
                jpath.display()
            );
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            let msg = format!(
                "{}: commit refused, the mailbox is unchanged: {} (owner uid {owner_uid}) is \
                 in the way of the commit journal and cannot be removed: {e}",
                path.display(),
                jpath.display()
            );
            log::error!("{msg}");
            Err(StoreError::Temporary(msg))
        }
    }
}

/// A journal this process writes is owned by its file-system uid; if recovery would not trust
/// that owner, a crash would leave a journal nobody applies and a torn mailbox. Refuse first.
fn check_writer_trusted(file: &File, path: &Path, writers: &[u32]) -> Result<(), StoreError> {
    let owner = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, &e))?
        .uid();
    let me = crate::sys::credentials::fs_uid();
    if journal::trusted(me, owner, writers) {
        return Ok(());
    }
    let msg = format!(
        "{}: commit refused, the mailbox is unchanged: its journal would be written as uid {me}, \
         which crash recovery does not trust (mailbox owner {owner}; set `user =` to the uid \
         the daemon writes as)",
        path.display()
    );
    log::error!("{msg}");
    Err(StoreError::Permanent(msg))
}

#[cfg(test)]
// One-range slices are deliberate: they are byte ranges to delete, not vectors of bytes.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn file_with(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("mbox");
        fs::write(&p, content).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).expect("chmod");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .expect("open");
        (dir, p, f)
    }

    #[test]
    fn removes_ranges_in_place_and_keeps_inode_and_mode() {
        let old = b"AAAAbbbCCCCdddEEEE".to_vec();
        let (_d, p, f) = file_with(&old);
        let ino = fs::metadata(&p).expect("stat").ino();
        let stats = remove_ranges(&f, &p, &[14..18, 4..7, 11..14], 18, &[]).expect("commit");
        assert_eq!(fs::read(&p).expect("read"), b"AAAACCCC");
        assert_eq!(
            stats,
            RewriteStats {
                rewritten_bytes: 4,
                journalled_bytes: 4,
                removed_bytes: 10
            }
        );
        let m = fs::metadata(&p).expect("stat");
        assert_eq!(m.ino(), ino);
        assert_eq!(m.mode() & 0o777, 0o640);
        assert!(!journal::journal_path(&p).exists());
    }

    #[test]
    fn deleting_the_tail_journals_and_rewrites_nothing() {
        let (_d, p, f) = file_with(b"keep this, drop that");
        let stats = remove_ranges(&f, &p, &[10..20], 20, &[]).expect("commit");
        assert_eq!(stats.rewritten_bytes, 0);
        assert_eq!(stats.journalled_bytes, 0);
        assert_eq!(fs::read(&p).expect("read"), b"keep this,");
    }

    #[test]
    fn nothing_deleted_writes_nothing() {
        let (_d, p, f) = file_with(b"content");
        let before = fs::metadata(&p).expect("stat").modified().expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            remove_ranges(&f, &p, &[], 7, &[]).expect("commit"),
            RewriteStats::default()
        );
        let after = fs::metadata(&p).expect("stat").modified().expect("mtime");
        assert_eq!(before, after);
        assert!(!journal::journal_path(&p).exists());
    }

    #[test]
    fn bytes_past_the_indexed_length_are_kept_and_shifted() {
        // old_len covers mail appended after indexing; only indexed ranges are deleted.
        let (_d, p, f) = file_with(b"m1m2m3APPENDED");
        remove_ranges(&f, &p, &[2..4], 14, &[]).expect("commit");
        assert_eq!(fs::read(&p).expect("read"), b"m1m3APPENDED");
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        let (_d, p, f) = file_with(b"short");
        assert!(matches!(
            remove_ranges(&f, &p, &[2..9], 5, &[]),
            Err(StoreError::Temporary(_))
        ));
        assert_eq!(fs::read(&p).expect("read"), b"short");
    }

    #[test]
    fn an_untrusted_file_at_the_journal_path_is_removed_or_refuses_the_commit() {
        if !crate::sys::credentials::is_root() {
            eprintln!("skipped: needs root (chown, and a thread switched to other uids)");
            return;
        }
        let (d, p, f) = file_with(b"m1m2m3m4");
        let jp = journal::journal_path(&p);
        fs::write(&jp, b"planted").expect("plant");
        std::os::unix::fs::chown(&jp, Some(12345), None).expect("chown");
        // Removable (we are root): removed, and the commit goes ahead.
        remove_ranges(&f, &p, &[2..4], 8, &[]).expect("commit");
        assert_eq!(fs::read(&p).expect("read"), b"m1m3m4");
        assert!(!jp.exists());

        // A sticky, world-writable spool, a session running as nobody: the planted file is
        // not removable, so the commit is refused and nothing changes.
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).expect("chown");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&jp, b"planted").expect("plant");
        std::os::unix::fs::chown(&jp, Some(12345), None).expect("chown");
        let (p2, jp2) = (p.clone(), jp.clone());
        std::thread::spawn(move || {
            crate::sys::credentials::bind_thread_to(65534, 65534, &[]).expect("drop");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p2)
                .expect("open");
            let r = remove_ranges(&f, &p2, &[0..2], 6, &[]);
            assert!(matches!(r, Err(StoreError::Temporary(_))), "{r:?}");
            assert_eq!(fs::read(&p2).expect("read"), b"m1m3m4");
            assert!(jp2.exists());
            fs::remove_file(&jp2).expect_err("still not removable");
        })
        .join()
        .expect("thread");
        fs::remove_file(&jp).expect("cleanup");

        // The mailbox owned by someone else, writable to nobody: nobody's journal would not be
        // trusted by recovery, so the commit is refused unless nobody is a configured writer.
        std::os::unix::fs::chown(&p, Some(12345), Some(65534)).expect("chown");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).expect("chmod");
        std::thread::spawn(move || {
            crate::sys::credentials::bind_thread_to(65534, 65534, &[]).expect("drop");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .expect("open");
            let r = remove_ranges(&f, &p, &[0..2], 6, &[]);
            assert!(matches!(r, Err(StoreError::Permanent(_))), "{r:?}");
            assert_eq!(fs::read(&p).expect("read"), b"m1m3m4");
            assert!(!jp.exists());
            remove_ranges(&f, &p, &[0..2], 6, &[65534]).expect("trusted writer");
            assert_eq!(fs::read(&p).expect("read"), b"m3m4");
        })
        .join()
        .expect("thread");
    }

    proptest::proptest! {
        #[test]
        fn removal_equals_filtering(
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..400),
            cuts in proptest::collection::vec((0usize..400, 0usize..40), 0..6),
        ) {
            let len = content.len();
            let ranges: Vec<Range<u64>> = cuts
                .iter()
                .map(|&(s, l)| {
                    let s = s % len;
                    s as u64..(s + l).min(len) as u64
                })
                .collect();
            let expected: Vec<u8> = content
                .iter()
                .enumerate()
                .filter(|(i, _)| !ranges.iter().any(|r| r.contains(&(*i as u64))))
                .map(|(_, b)| *b)
                .collect();
            let (_d, p, f) = file_with(&content);
            remove_ranges(&f, &p, &ranges, len as u64, &[]).expect("commit");
            proptest::prop_assert_eq!(fs::read(&p).expect("read"), expected);
        }

        #[test]
        fn removal_with_insertion_equals_the_model(
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 2..400),
            cuts in proptest::collection::vec((0usize..400, 1usize..40), 1..6),
            at in 0usize..400,
            insert_len in 0usize..40,
            chunk in 1usize..64,
        ) {
            let len = content.len();
            let raw: Vec<Range<u64>> = cuts
                .iter()
                .map(|&(s, l)| {
                    let s = s % len;
                    s as u64..(s + l).min(len) as u64
                })
                .collect();
            let ranges = normalise(&raw, len as u64).expect("ranges");
            let at = (at % (len + 1)) as u64;
            let bytes = vec![b'#'; insert_len];
            let ins = Insert { at, bytes: &bytes };
            let (_d, p, f) = file_with(&content);
            if check_insert(&ranges, ins, len as u64).is_err() {
                // Refused before anything is written.
                proptest::prop_assert!(rewrite(&f, &p, &raw, Some(ins), len as u64, &[]).is_err());
                proptest::prop_assert_eq!(fs::read(&p).expect("read"), content);
                return Ok(());
            }
            let mut expected = Vec::new();
            for (i, b) in content.iter().enumerate() {
                if i as u64 == at {
                    expected.extend_from_slice(&bytes);
                }
                if !ranges.iter().any(|r| r.contains(&(i as u64))) {
                    expected.push(*b);
                }
            }
            if at == len as u64 {
                expected.extend_from_slice(&bytes);
            }
            // Small copy chunks: many reads and writes around the insertion point.
            let extent = Extent {
                start: ranges[0].start,
                new_len: expected.len() as u64,
                old_len: len as u64,
            };
            proptest::prop_assert!(extent.new_len < extent.old_len);
            let mut buf_file = content.clone();
            shift_model(&mut buf_file, &ranges, ins, chunk);
            proptest::prop_assert_eq!(&buf_file[..expected.len()], &expected[..]);
            let stats = rewrite(&f, &p, &raw, Some(ins), len as u64, &[]).expect("commit");
            proptest::prop_assert_eq!(stats.rewritten_bytes, extent.new_len - extent.start);
            proptest::prop_assert_eq!(fs::read(&p).expect("read"), expected);
        }
    }

    /// The shift's copy order on a byte vector with a given chunk size: proves the in-place
    /// forward copy never reads a byte it already overwrote, whatever the chunking.
    fn shift_model(file: &mut [u8], ranges: &[Range<u64>], ins: Insert<'_>, chunk: usize) {
        let old_len = file.len() as u64;
        let mut dst = ranges[0].start as usize;
        let mut pending = Some(ins);
        for (i, r) in ranges.iter().enumerate() {
            let kept_end = ranges.get(i + 1).map_or(old_len, |n| n.start) as usize;
            let mut src = r.end as usize;
            loop {
                if let Some(ins) = pending.filter(|ins| ins.at as usize == src) {
                    assert!(
                        dst + ins.bytes.len() <= src,
                        "insertion overtakes its source"
                    );
                    file[dst..dst + ins.bytes.len()].copy_from_slice(ins.bytes);
                    dst += ins.bytes.len();
                    pending = None;
                }
                if src >= kept_end {
                    break;
                }
                let until = pending.map_or(kept_end, |p| {
                    if p.at as usize > src {
                        (p.at as usize).min(kept_end)
                    } else {
                        kept_end
                    }
                });
                let n = chunk.min(until - src);
                let piece = file[src..src + n].to_vec();
                assert!(dst <= src);
                file[dst..dst + n].copy_from_slice(&piece);
                src += n;
                dst += n;
            }
        }
    }

    #[test]
    fn insertion_rewrites_in_place_and_bad_insertions_are_refused() {
        // Delete the first "message", insert into the second; the journal covers [0, new_len).
        let old = b"FIRST:base\nsecond\nthird\n".to_vec();
        let (_d, p, f) = file_with(&old);
        let stats = rewrite(
            &f,
            &p,
            &[0..11],
            Some(Insert {
                at: 18,
                bytes: b"base\n",
            }),
            old.len() as u64,
            &[],
        )
        .expect("commit");
        assert_eq!(fs::read(&p).expect("read"), b"second\nbase\nthird\n");
        assert_eq!(stats.rewritten_bytes, 18);
        assert_eq!(stats.removed_bytes, 6);
        // Refused: inside a deleted range, before the first one, or as long as what goes.
        let (_d, p, f) = file_with(&old);
        for (at, bytes) in [(5, &b"x"[..]), (0, b"x"), (18, b"01234567890")] {
            assert!(rewrite(&f, &p, &[0..11], Some(Insert { at, bytes }), 24, &[]).is_err());
        }
        assert_eq!(fs::read(&p).expect("read"), old);
    }
}
