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

/// The names in the directory `dir` (not "." or ".."), read through the descriptor, so the
/// directory listed is the one opened whatever its path now names.
pub fn names(dir: &File) -> io::Result<Vec<std::ffi::OsString>> {
    std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// unlinkat(2) of the file `name` (a single path component) in the directory `dir`.
pub fn remove_at(dir: &File, name: &std::ffi::OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let c = CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the directory descriptor is valid for the lifetime of `dir`; `c` is a
    // NUL-terminated string that outlives the call.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_removes_through_the_descriptor() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join("a"), b"x").expect("write");
        std::fs::write(t.path().join("b"), b"y").expect("write");
        let dir = File::open(t.path()).expect("open");
        // The path now names another directory: the descriptor still lists the first.
        let moved = t.path().with_extension("moved");
        std::fs::rename(t.path(), &moved).expect("rename");
        std::fs::create_dir(t.path()).expect("mkdir");
        let mut got = names(&dir).expect("names");
        got.sort();
        assert_eq!(got, ["a", "b"]);
        remove_at(&dir, "a".as_ref()).expect("remove");
        assert_eq!(names(&dir).expect("names"), ["b"]);
        assert!(remove_at(&dir, "../b".as_ref()).is_err());
        assert!(remove_at(&dir, "..".as_ref()).is_err());
        std::fs::remove_dir_all(&moved).expect("clean");
    }
}
