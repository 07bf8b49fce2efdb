//! Files opened relative to a directory descriptor (openat), so that a directory checked
//! once stays the one used, whatever later happens to its path.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;

/// openat(2) of `name` (a single path component) in the directory `dir`, with `flags`
/// (O_CLOEXEC is always added) and `mode` for a created file.
pub fn open_at(dir: &File, name: &std::ffi::OsStr, flags: i32, mode: u32) -> io::Result<File> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let c = CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the directory descriptor is valid for the lifetime of `dir`; `c` is a
    // NUL-terminated string that outlives the call; the mode is passed as the variadic
    // argument openat reads when O_CREAT is set.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}
