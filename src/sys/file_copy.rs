//! In-kernel file copies and early write-back, which std does not expose with offsets.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// One copy_file_range(2) call: up to `len` bytes from `src` at `src_off` to `dst` at
/// `dst_off`, without moving either file offset. Returns the bytes copied (0 at the end of
/// `src`); may copy fewer than asked. `Err` with EXDEV, ENOSYS, EOPNOTSUPP or EINVAL means the
/// kernel or file system cannot copy these ranges (the caller copies through user space).
pub fn copy_file_range(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: usize,
) -> io::Result<usize> {
    let to_off =
        |o: u64| libc::loff_t::try_from(o).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let mut off_in = to_off(src_off)?;
    let mut off_out = to_off(dst_off)?;
    // SAFETY: both descriptors are open files borrowed for the duration of the call; the two
    // offset pointers point at exclusively borrowed locals, which the kernel updates in place;
    // flags must be 0.
    let n = unsafe {
        libc::copy_file_range(
            src.as_raw_fd(),
            &mut off_in,
            dst.as_raw_fd(),
            &mut off_out,
            len,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether a copy_file_range error means "not possible here" rather than an I/O failure.
pub fn copy_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

/// Start write-back of `file[off, off + len)` without waiting for it
/// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE). Durability still needs fsync; this only
/// lets the disk work while the caller keeps copying, instead of all at the final fsync.
pub fn start_writeback(file: &File, off: u64, len: u64) -> io::Result<()> {
    let (Ok(off), Ok(len)) = (libc::off64_t::try_from(off), libc::off64_t::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: the descriptor is an open file borrowed for the call; no pointers are passed.
    let r =
        unsafe { libc::sync_file_range(file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn copies_between_offsets_without_moving_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("a"))
            .expect("a");
        a.write_all_at(b"0123456789", 0).expect("write");
        let b = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("b"))
            .expect("b");
        match copy_file_range(&a, 3, &b, 5, 4) {
            Ok(n) => {
                assert_eq!(n, 4);
                let mut got = [0u8; 9];
                b.read_exact_at(&mut got, 0).expect("read");
                assert_eq!(&got, b"\0\0\0\0\x003456");
                // At the end of the source: nothing copied.
                assert_eq!(copy_file_range(&a, 10, &b, 0, 4).expect("eof"), 0);
            }
            Err(e) => assert!(copy_unsupported(&e), "{e}"),
        }
        start_writeback(&b, 0, 9).expect("writeback");
    }
}
