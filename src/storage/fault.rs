//! The file operations of a commit and of its recovery (writes, in-kernel copies, fsyncs, the
//! truncate, unlinks), each behind a fault point, so that tests can crash or fail the commit
//! at any step and record what it wrote. The hooks are compiled only with the
//! `fault-injection` feature (the test build enables it; release builds do not have it), where
//! these functions are plain system calls.
//!
//! `MBOXPOPD_FAULT_AT=N` acts at the N-th step (1-based) of journal writes, mailbox writes,
//! copies, fsyncs, the truncate and the unlinks. By default it aborts the process (for the file system
//! the same as SIGKILL); at a write step half of the buffer is written first, to model a torn
//! write. With `MBOXPOPD_FAULT_MODE=enospc` the step fails with ENOSPC instead (after the same
//! half write), to exercise the error paths. `MBOXPOPD_FAULT_CHUNK=B` shrinks the copy buffer
//! so a small mailbox goes through many write steps. `MBOXPOPD_FAULT_LOG=1` prints each step.
//! `MBOXPOPD_FAULT_NO_COPY_RANGE=1` makes every copy take the user-space path that is used
//! where copy_file_range(2) is not supported.
//!
//! [`record`] (feature builds only) runs a closure and returns every completed write, length
//! change, file creation, unlink and fsync it made on this thread: the input of the power-cut
//! test, which replays what a disk may hold when power fails between two of them.
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::sys::file_copy;

#[cfg(feature = "fault-injection")]
pub use imp::{record, Op};

#[cfg(feature = "fault-injection")]
mod imp {
    use std::cell::RefCell;
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static STEP: AtomicU64 = AtomicU64::new(0);

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok()?.parse().ok()
    }

    fn target() -> Option<u64> {
        static T: OnceLock<Option<u64>> = OnceLock::new();
        *T.get_or_init(|| env_u64("MBOXPOPD_FAULT_AT"))
    }

    fn fail_instead() -> bool {
        static M: OnceLock<bool> = OnceLock::new();
        *M.get_or_init(|| std::env::var("MBOXPOPD_FAULT_MODE").is_ok_and(|m| m == "enospc"))
    }

    pub fn no_copy_range() -> bool {
        static N: OnceLock<bool> = OnceLock::new();
        *N.get_or_init(|| std::env::var_os("MBOXPOPD_FAULT_NO_COPY_RANGE").is_some())
    }

    pub fn chunk() -> Option<usize> {
        if let Some(c) = RECORDER.with(|r| r.borrow().as_ref().map(|r| r.chunk)) {
            return Some(c);
        }
        static C: OnceLock<Option<u64>> = OnceLock::new();
        C.get_or_init(|| env_u64("MBOXPOPD_FAULT_CHUNK"))
            .map(|c| c.max(1) as usize)
    }

    /// Count a step; true when this one is to fail.
    pub fn hit(name: &str) -> bool {
        let n = STEP.fetch_add(1, Ordering::SeqCst) + 1;
        static LOG: OnceLock<bool> = OnceLock::new();
        if *LOG.get_or_init(|| std::env::var_os("MBOXPOPD_FAULT_LOG").is_some()) {
            eprintln!("fault step {n}: {name}");
        }
        target() == Some(n)
    }

    /// Crash, or return the error the step fails with.
    pub fn fail(name: &str) -> io::Error {
        let step = STEP.load(Ordering::SeqCst);
        if fail_instead() {
            eprintln!("fault injected at step {step}: {name} fails with ENOSPC");
            return io::Error::from_raw_os_error(libc::ENOSPC);
        }
        eprintln!("fault injected at step {step}: {name}");
        std::process::abort()
    }

    /// One completed operation that changes what a disk holds. Files are named by inode.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Op {
        /// A new directory entry `path` for the (empty) file `ino`.
        Create {
            path: PathBuf,
            ino: u64,
        },
        Write {
            ino: u64,
            offset: u64,
            bytes: Vec<u8>,
        },
        SetLen {
            ino: u64,
            len: u64,
        },
        /// fsync: everything written to `ino` before is durable.
        Fsync {
            ino: u64,
        },
        Unlink {
            path: PathBuf,
        },
        /// fsync of a directory: the entries created or removed in it before are durable.
        DirFsync {
            dir: PathBuf,
        },
    }

    struct Recorder {
        chunk: usize,
        ops: Vec<Op>,
    }

    thread_local! {
        static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
    }

    /// Run `f` with recording on (this thread only, so parallel tests do not mix) and a
    /// copy buffer of `chunk` bytes; return its result and the operations it completed.
    pub fn record<T>(chunk: usize, f: impl FnOnce() -> T) -> (T, Vec<Op>) {
        RECORDER.with(|r| {
            *r.borrow_mut() = Some(Recorder {
                chunk: chunk.max(1),
                ops: Vec::new(),
            })
        });
        let out = f();
        let ops = RECORDER.with(|r| r.borrow_mut().take().map(|r| r.ops).unwrap_or_default());
        (out, ops)
    }

    pub fn recording() -> bool {
        RECORDER.with(|r| r.borrow().is_some())
    }

    pub fn push(op: impl FnOnce() -> Option<Op>) {
        if !recording() {
            return;
        }
        if let Some(op) = op() {
            RECORDER.with(|r| {
                if let Some(r) = r.borrow_mut().as_mut() {
                    r.ops.push(op);
                }
            });
        }
    }

    pub fn ino(file: &File) -> Option<u64> {
        file.metadata().ok().map(|m| m.ino())
    }
}

/// A fault point before a non-write step.
#[inline]
pub(crate) fn point(_name: &str) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if imp::hit(_name) {
        return Err(imp::fail(_name));
    }
    Ok(())
}

/// `write_all_at`, with a fault point that leaves a torn write.
#[inline]
pub(crate) fn write_at(file: &File, buf: &[u8], off: u64) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if imp::hit("write") {
        let _ = file.write_all_at(&buf[..buf.len() / 2], off);
        return Err(imp::fail("write"));
    }
    file.write_all_at(buf, off)?;
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::Write {
            ino: imp::ino(file)?,
            offset: off,
            bytes: buf.to_vec(),
        })
    });
    Ok(())
}

/// fsync(2) of a file, after the fault point `name`.
pub(crate) fn sync(file: &File, name: &str) -> io::Result<()> {
    point(name)?;
    file.sync_all()?;
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::Fsync {
            ino: imp::ino(file)?,
        })
    });
    Ok(())
}

/// ftruncate(2), after the fault point "truncate".
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    point("truncate")?;
    file.set_len(len)?;
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::SetLen {
            ino: imp::ino(file)?,
            len,
        })
    });
    Ok(())
}

/// Record that `file` was just created at `path` (a new directory entry).
pub(crate) fn created(_path: &Path, _file: &File) {
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::Create {
            path: _path.to_owned(),
            ino: imp::ino(_file)?,
        })
    });
}

/// unlink(2), after the fault point `name`.
pub(crate) fn unlink(path: &Path, name: &str) -> io::Result<()> {
    point(name)?;
    std::fs::remove_file(path)?;
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::Unlink {
            path: path.to_owned(),
        })
    });
    Ok(())
}

/// fsync(2) of the directory holding `path`, after the fault point `name`.
pub(crate) fn sync_dir(path: &Path, name: &str) -> io::Result<()> {
    point(name)?;
    sync_dir_of(path)?;
    #[cfg(feature = "fault-injection")]
    imp::push(|| {
        Some(imp::Op::DirFsync {
            dir: path.parent()?.to_owned(),
        })
    });
    Ok(())
}

/// fsync the directory holding `path`, so a created or removed name is durable.
pub fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Bytes per copy_file_range call: large enough that the calls cost nothing, small enough that
/// write-back can start behind each one.
const KERNEL_COPY_CHUNK: usize = 16 << 20;

/// Copy `len` bytes from `src` at `src_off` to `dst` at `dst_off` (two files, or disjoint
/// ranges of one), in the kernel where it can (copy_file_range(2): no user-space copy, and a
/// file system may share or offload the blocks), else through `buf`. Each chunk is one write
/// step for the fault hooks (a torn step copies half of its chunk). Starts write-back behind
/// each chunk, so that the fsync that follows finds most of the data already on its way.
pub(crate) fn copy_range(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut kernel = kernel_copy_allowed();
    let chunk = chunk_size().unwrap_or(if kernel { KERNEL_COPY_CHUNK } else { buf.len() });
    let mut done = 0u64;
    while done < len {
        let s = src_off + done;
        let n = (piece_end(s, src_off + len, chunk as u64) - s) as usize;
        let d = dst_off + done;
        #[cfg(feature = "fault-injection")]
        if imp::hit("copy") {
            let _ = copy_chunk(src, s, dst, d, n / 2, &mut kernel, buf);
            return Err(imp::fail("copy"));
        }
        copy_chunk(src, s, dst, d, n, &mut kernel, buf)?;
        #[cfg(feature = "fault-injection")]
        imp::push(|| {
            let mut bytes = vec![0u8; n];
            dst.read_exact_at(&mut bytes, d).ok()?;
            Some(imp::Op::Write {
                ino: imp::ino(dst)?,
                offset: d,
                bytes,
            })
        });
        if n >= 1 << 20 {
            writeback(dst, d, n as u64);
        }
        done += n as u64;
    }
    Ok(())
}

/// File-system block size assumed for aligning copies.
const BLOCK: u64 = 4096;

/// Where the copy piece starting at source offset `s` ends, for a copy ending at `end`: at the
/// next multiple of `chunk`, and, for block-sized chunks, also at the first block boundary
/// after an unaligned start and at the last one before an unaligned end. The journal keeps its
/// body at the mailbox's offset within a block, so every piece but the first and the last is
/// block-aligned at both ends: a file system that can share blocks (XFS, btrfs) clones such a
/// piece instead of copying it.
fn piece_end(s: u64, end: u64, chunk: u64) -> u64 {
    let mut e = (s / chunk + 1) * chunk;
    if chunk >= BLOCK && s % BLOCK != 0 {
        e = e.min(s.div_ceil(BLOCK) * BLOCK);
    }
    if e >= end {
        e = end;
        let last_block = end / BLOCK * BLOCK;
        if chunk >= BLOCK && last_block > s {
            e = last_block;
        }
    }
    e
}

fn kernel_copy_allowed() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        !imp::no_copy_range()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        true
    }
}

/// Copy exactly `n` bytes; on the first "not supported here" from the kernel, switch to the
/// user-space copy for the rest of this copy (`kernel` is cleared).
fn copy_chunk(
    src: &File,
    mut s: u64,
    dst: &File,
    mut d: u64,
    mut n: usize,
    kernel: &mut bool,
    buf: &mut [u8],
) -> io::Result<()> {
    while n > 0 {
        if *kernel {
            match file_copy::copy_file_range(src, s, dst, d, n) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the source ended early",
                    ))
                }
                Ok(k) => {
                    s += k as u64;
                    d += k as u64;
                    n -= k;
                    continue;
                }
                Err(e) if file_copy::copy_unsupported(&e) => *kernel = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let k = n.min(buf.len());
        src.read_exact_at(&mut buf[..k], s)?;
        dst.write_all_at(&buf[..k], d)?;
        s += k as u64;
        d += k as u64;
        n -= k;
    }
    Ok(())
}

/// Start write-back of what was just written (see [`file_copy::start_writeback`]). Only a
/// hint: a failure here is found again by the fsync that must follow.
pub(crate) fn writeback(file: &File, off: u64, len: u64) {
    let _ = file_copy::start_writeback(file, off, len);
}

pub(crate) fn chunk_size() -> Option<usize> {
    #[cfg(feature = "fault-injection")]
    {
        imp::chunk()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(start: u64, end: u64, chunk: u64) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        let mut s = start;
        while s < end {
            let e = piece_end(s, end, chunk);
            assert!(e > s && e <= end, "{s}..{e} of {start}..{end}");
            v.push((s, e));
            s = e;
        }
        v
    }

    #[test]
    fn copy_pieces_are_block_aligned_inside() {
        let mib = 1 << 20;
        assert_eq!(
            pieces(5000, 3 * mib + 100, mib),
            [
                (5000, 8192),
                (8192, mib),
                (mib, 2 * mib),
                (2 * mib, 3 * mib),
                (3 * mib, 3 * mib + 100)
            ]
        );
        assert_eq!(
            pieces(4096, 20_000, mib),
            [(4096, 16_384), (16_384, 20_000)]
        );
        assert_eq!(pieces(10, 20, mib), [(10, 20)]);
        assert_eq!(pieces(4000, 4200, mib), [(4000, 4096), (4096, 4200)]);
        // Small test chunks: plain multiples of the chunk.
        assert_eq!(pieces(100, 700, 256), [(100, 256), (256, 512), (512, 700)]);
    }

    proptest::proptest! {
        #[test]
        fn copy_pieces_cover_the_range_in_order(
            start in 0u64..100_000,
            len in 1u64..100_000,
            chunk in 1u64..20_000,
        ) {
            let p = pieces(start, start + len, chunk);
            proptest::prop_assert_eq!(p.first().map(|x| x.0), Some(start));
            proptest::prop_assert_eq!(p.last().map(|x| x.1), Some(start + len));
            for w in p.windows(2) {
                proptest::prop_assert_eq!(w[0].1, w[1].0);
            }
            for &(s, e) in &p {
                proptest::prop_assert!(e - s <= chunk);
                if chunk % BLOCK == 0 && s % BLOCK == 0 && e % BLOCK != 0 {
                    proptest::prop_assert_eq!(e, start + len);
                }
            }
        }
    }
}
