//! Credentials and account lookups: per-thread and per-process uid/gid switching, getpwnam_r /
//! getgrnam_r. Every `unsafe` block is a single libc call whose arguments are checked here.
//!
//! Why raw syscalls for sessions: on Linux, credentials are per thread in the kernel, but
//! glibc's `setresuid`/`setresgid`/`setgroups` wrappers broadcast the change to every thread
//! of the process (POSIX semantics, via a signal to each thread). Calling the syscalls directly
//! changes only the calling thread, which is what lets a standalone daemon run each session
//! thread as its own user while the listener thread stays root. [`drop_process_to`] uses the
//! wrappers on purpose: there all threads must change.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// 32-bit-id syscall numbers: on 32-bit x86 and ARM the plain numbers are the legacy 16-bit
/// versions.
#[cfg(all(target_os = "linux", any(target_arch = "x86", target_arch = "arm")))]
mod nr {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
    pub const GETRESGID: libc::c_long = libc::SYS_getresgid32;
    pub const GETRESUID: libc::c_long = libc::SYS_getresuid32;
}
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "x86", target_arch = "arm"))
))]
mod nr {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
    pub const GETRESGID: libc::c_long = libc::SYS_getresgid;
    pub const GETRESUID: libc::c_long = libc::SYS_getresuid;
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// (real, effective, saved) ids.
pub type IdTriple = (u32, u32, u32);

/// The calling thread's uids and gids, straight from the kernel.
#[cfg(target_os = "linux")]
pub fn thread_ids() -> io::Result<(IdTriple, IdTriple)> {
    let (mut ru, mut eu, mut su) = (0 as libc::uid_t, 0, 0);
    let (mut rg, mut eg, mut sg) = (0 as libc::gid_t, 0, 0);
    // SAFETY: getresuid/getresgid write one id into each of three valid, exclusively borrowed
    // locals and touch no other memory.
    check(unsafe { libc::syscall(nr::GETRESUID, &mut ru, &mut eu, &mut su) })?;
    // SAFETY: as above.
    check(unsafe { libc::syscall(nr::GETRESGID, &mut rg, &mut eg, &mut sg) })?;
    Ok(((ru, eu, su), (rg, eg, sg)))
}

/// Irreversibly switch the *calling thread* to `uid`/`gid` with exactly the given
/// supplementary groups; other threads keep their credentials.
///
/// Order matters: groups and gid first (changing them needs privilege we lose with the uid),
/// then real, effective and saved uid together, so the thread can never switch back. The
/// result is read back from the kernel and checked.
#[cfg(target_os = "linux")]
pub fn drop_thread_to(uid: u32, gid: u32, supplementary: &[u32]) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = supplementary.to_vec();
    // SAFETY: setgroups reads `groups.len()` gids from a live Vec; it does not keep the pointer.
    check(unsafe { libc::syscall(nr::SETGROUPS, groups.len(), groups.as_ptr()) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(nr::SETRESGID, gid, gid, gid) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(nr::SETRESUID, uid, uid, uid) })?;
    verify_ids(uid, gid)
}

#[cfg(target_os = "linux")]
fn verify_ids(uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = thread_ids()?;
    if u != (uid, uid, uid) || g != (gid, gid, gid) {
        return Err(io::Error::other(format!(
            "credential switch did not stick: uids {u:?}, gids {g:?}, wanted {uid}/{gid}"
        )));
    }
    Ok(())
}

/// Irreversibly switch the whole process (all threads) to `uid`/`gid` and `groups`: inetd
/// mode after the session is authenticated, virtual-user mode right after binding.
#[cfg(target_os = "linux")]
pub fn drop_process_to(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: setgroups reads `groups.len()` gids from a live Vec and does not keep the pointer.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }.into())?;
    // SAFETY: plain integer arguments (glibc applies them to every thread).
    check(unsafe { libc::setresgid(gid, gid, gid) }.into())?;
    // SAFETY: plain integer arguments (glibc applies them to every thread).
    check(unsafe { libc::setresuid(uid, uid, uid) }.into())?;
    verify_ids(uid, gid)
}

/// Whether the calling thread's effective uid is 0 (per thread: a session thread that dropped
/// is no longer root even though the process's other threads are).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The calling thread's file-system uid: the owner of the files it creates.
#[cfg(target_os = "linux")]
pub fn fs_uid() -> u32 {
    // SAFETY: setfsuid with an invalid uid (-1) changes nothing and returns the current fsuid;
    // plain integer argument.
    unsafe { libc::setfsuid(u32::MAX) as u32 }
}

/// The process's effective uid when it started (recorded by [`record_start_euid`] before any
/// privilege change; otherwise the calling thread's euid at the first call).
pub fn start_euid() -> u32 {
    *START_EUID.get_or_init(current_euid)
}

/// Remember the effective uid the process started with; call first thing in `main`.
pub fn record_start_euid() -> u32 {
    start_euid()
}

static START_EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

fn current_euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// CPU time used by the calling thread (CLOCK_THREAD_CPUTIME_ID). Unlike wall time it does
/// not grow while the thread waits or is preempted: what timing-equality tests measure.
pub fn thread_cpu_time() -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid, exclusively borrowed local.
    check(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }.into())?;
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Grow-on-ERANGE buffer loop shared by the `get*_r` lookups.
fn with_buffer<T>(
    mut attempt: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>,
) -> Option<T> {
    let mut len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match attempt(&mut buf) {
            Ok(v) => return v,
            Err(libc::ERANGE) if len < (1 << 20) => len *= 4,
            Err(libc::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// (uid, gid, home) of a user, via getpwnam_r (NSS: files, LDAP, ...).
pub fn lookup_user(name: &str) -> Option<(u32, u32, PathBuf)> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: all-zero is a valid `passwd` (integers and null pointers).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live local or to `buf` with its true length; on
        // success `result` points at `pw`, whose strings point into `buf`.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pw.pw_dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: non-null pw_dir is a NUL-terminated string inside `buf`, still alive.
            let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
            PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
        };
        Ok(Some((pw.pw_uid, pw.pw_gid, home)))
    })
}

/// The gid of a group, via getgrnam_r.
pub fn lookup_group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: all-zero is a valid `group` (integers and null pointers).
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in lookup_user.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        Ok((!result.is_null()).then_some(gr.gr_gid))
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// (Uid line, Gid line, Groups line) of a thread, from the kernel's point of view.
    fn proc_ids(path: &str) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let status = std::fs::read_to_string(path).unwrap();
        let field = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or("")
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        };
        (field("Uid:"), field("Gid:"), field("Groups:"))
    }

    fn nobody() -> (u32, u32) {
        let (uid, _, _) = lookup_user("nobody").unwrap_or((65534, 65534, PathBuf::new()));
        let gid = lookup_group("nogroup").unwrap_or(65534);
        (uid, gid)
    }

    #[test]
    fn per_thread_drop_changes_only_that_thread() {
        let (uid, gid) = nobody();
        let main_before = proc_ids("/proc/thread-self/status");
        let was_root = is_root();
        let handle = std::thread::spawn(move || {
            let r = drop_thread_to(uid, gid, &[gid, 8]);
            let ids = proc_ids("/proc/thread-self/status");
            // Regaining root must be impossible now.
            // SAFETY (test): plain integer syscall arguments.
            let regain = unsafe { libc::syscall(nr::SETRESUID, 0, 0, 0) };
            (r.map_err(|e| e.raw_os_error()), ids, regain, is_root())
        });
        let (r, ids, regain, thread_root) = handle.join().unwrap();
        if was_root {
            assert_eq!(r, Ok(()));
            assert_eq!(ids.0, vec![uid; 4], "uid real/effective/saved/fs");
            assert_eq!(ids.1, vec![gid; 4]);
            let mut groups = ids.2.clone();
            groups.sort();
            assert_eq!(groups, {
                let mut g = vec![8, gid];
                g.sort();
                g
            });
            assert_eq!(regain, -1);
            assert!(!thread_root);
            // The main thread (and process) are untouched.
            assert_eq!(proc_ids("/proc/thread-self/status"), main_before);
            assert!(is_root());
            assert_eq!(proc_ids("/proc/self/status").0, vec![0; 4]);
        } else {
            // Unprivileged: the switch must fail loudly, not half-happen.
            assert_eq!(r, Err(Some(libc::EPERM)));
            assert_eq!(proc_ids("/proc/thread-self/status"), main_before);
        }
    }

    #[test]
    fn many_threads_each_as_their_own_user() {
        if !is_root() {
            return assert!(drop_thread_to(1, 1, &[]).is_err());
        }
        let handles: Vec<_> = (0..4u32)
            .map(|i| {
                std::thread::spawn(move || {
                    let id = 20_000 + i;
                    drop_thread_to(id, id, &[]).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    proc_ids("/proc/thread-self/status")
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (u, g, groups) = h.join().unwrap();
            assert_eq!(u, vec![20_000 + i as u32; 4]);
            assert_eq!(g, vec![20_000 + i as u32; 4]);
            assert!(groups.is_empty());
        }
        assert!(is_root());
    }

    /// Runs in a child process started by `process_drop_changes_every_thread` (it would drop
    /// the whole test runner otherwise): does nothing unless that test set the variable.
    #[test]
    #[ignore = "helper: run in a child process by process_drop_changes_every_thread"]
    fn process_drop_child() {
        if std::env::var_os("MBOXPOPD_PRIV_CHILD").is_none() {
            return;
        }
        let (uid, gid) = nobody();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || {
            // SAFETY (test): gettid has no arguments.
            tx.send(unsafe { libc::gettid() }).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        drop_process_to(uid, gid, &[gid]).unwrap();
        let helper_ids = proc_ids(&format!("/proc/self/task/{tid}/status"));
        let main_ids = proc_ids("/proc/thread-self/status");
        done_tx.send(()).unwrap();
        helper.join().unwrap();
        assert_eq!(helper_ids.0, vec![uid; 4]);
        assert_eq!(main_ids.0, vec![uid; 4]);
        assert_eq!(helper_ids.1, vec![gid; 4]);
        assert_eq!(main_ids.2, vec![gid]);
        assert!(
            drop_process_to(0, 0, &[]).is_err(),
            "root must be gone for good"
        );
        println!("CHILD-OK uid={uid}");
    }

    #[test]
    fn process_drop_changes_every_thread() {
        if !is_root() {
            return assert!(drop_process_to(1, 1, &[]).is_err());
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::credentials::tests::process_drop_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MBOXPOPD_PRIV_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("CHILD-OK"), "{stdout}");
    }

    #[test]
    fn lookups() {
        let (uid, gid, home) = lookup_user("root").unwrap();
        assert_eq!((uid, gid), (0, 0));
        assert_eq!(home, PathBuf::from("/root"));
        assert_eq!(lookup_group("root"), Some(0));
        assert!(lookup_user("mboxpopd-no-such-user").is_none());
        assert!(lookup_group("mboxpopd-no-such-group").is_none());
        assert!(lookup_user("ro\0ot").is_none());
        // Debian's spool group.
        let mail = std::fs::read_to_string("/etc/group")
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("mail:x:")
                    .map(|r| r.split(':').next().unwrap().parse::<u32>().unwrap())
            });
        assert_eq!(lookup_group("mail"), mail);
    }

    #[test]
    fn thread_cpu_time_counts_work_not_sleep() {
        let t0 = thread_cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let t1 = thread_cpu_time().unwrap();
        assert!(
            t1 - t0 < Duration::from_millis(20),
            "sleep counted: {:?}",
            t1 - t0
        );
        let mut x = 0u64;
        while thread_cpu_time().unwrap() - t1 < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_time().unwrap() > t1);
    }

    #[test]
    fn thread_ids_match_proc() {
        let ((ru, eu, su), (rg, eg, sg)) = thread_ids().unwrap();
        let (u, g, _) = proc_ids("/proc/thread-self/status");
        assert_eq!(vec![ru, eu, su], u[..3].to_vec());
        assert_eq!(vec![rg, eg, sg], g[..3].to_vec());
    }
}
