//! Credentials and account lookups: per-thread file-system identities and capability sets,
//! the per-process drop, getpwnam_r / getgrnam_r. Every `unsafe` block is a single libc call
//! whose arguments are checked here.
//!
//! Why raw syscalls for sessions: on Linux, credentials are per thread in the kernel, but
//! glibc's `setresuid`/`setresgid`/`setgroups` wrappers broadcast the change to every thread
//! of the process (POSIX semantics, via a signal to each thread). Calling the syscalls directly
//! changes only the calling thread. [`drop_process_to`] uses the wrappers on purpose: there all
//! threads must change.
//!
//! Why the file-system ids and not the real/effective/saved uids: the kernel checks `kill`,
//! `prlimit` and `ptrace` against the *target thread's* real/effective/saved uids, while the
//! effect (a stop, a kill, a descriptor limit) hits the whole process. A session thread that
//! took the user's uids could be stopped or killed by that user. So a session thread keeps
//! uid 0 in those three slots, takes the user only as its fsuid/fsgid (which alone decide file
//! access) and supplementary groups, and gives up every capability. Such a thread opens and
//! creates files exactly as the user, and nothing the user runs can act on it.

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
    pub const GETRESGID: libc::c_long = libc::SYS_getresgid32;
    pub const GETRESUID: libc::c_long = libc::SYS_getresuid32;
    pub const SETFSUID: libc::c_long = libc::SYS_setfsuid32;
    pub const SETFSGID: libc::c_long = libc::SYS_setfsgid32;
}
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "x86", target_arch = "arm"))
))]
mod nr {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const GETRESGID: libc::c_long = libc::SYS_getresgid;
    pub const GETRESUID: libc::c_long = libc::SYS_getresuid;
    pub const SETFSUID: libc::c_long = libc::SYS_setfsuid;
    pub const SETFSGID: libc::c_long = libc::SYS_setfsgid;
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

/// Capability numbers (linux/capability.h) the session threads keep before login.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Set the calling thread's effective and permitted capabilities to `caps` (a bit mask over
/// capability numbers below 32), inheritable to none.
#[cfg(target_os = "linux")]
fn set_thread_caps(caps: u32) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: caps,
            permitted: caps,
            inheritable: 0,
        },
        CapData::default(),
    ];
    // SAFETY: capset reads one header and the two data words version 3 requires, all live
    // locals of the layout linux/capability.h defines; pid 0 is the calling thread.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) })
}

/// The calling thread's (effective, permitted) capability masks, both 64-bit.
#[cfg(target_os = "linux")]
pub fn thread_caps() -> io::Result<(u64, u64)> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes the two version-3 data words into a live, exclusively borrowed
    // local array and reads the header.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// The calling thread's file-system (uid, gid). setfsuid/setfsgid with an invalid id change
/// nothing and return the current value.
#[cfg(target_os = "linux")]
pub fn thread_fs_ids() -> (u32, u32) {
    // SAFETY: an invalid id (-1) makes setfsuid a pure query; integer argument only.
    let uid = unsafe { libc::syscall(nr::SETFSUID, -1 as libc::c_long) };
    // SAFETY: as above, for the gid.
    let gid = unsafe { libc::syscall(nr::SETFSGID, -1 as libc::c_long) };
    (uid as u32, gid as u32)
}

/// Set the calling thread's file-system ids and supplementary groups, then read them back.
#[cfg(target_os = "linux")]
fn set_thread_fs_identity(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: setgroups reads `groups.len()` gids from a live Vec; it does not keep the pointer.
    check(unsafe { libc::syscall(nr::SETGROUPS, groups.len(), groups.as_ptr()) })?;
    // setfsgid/setfsuid report no error; the read-back below is the check.
    // SAFETY: integer argument only.
    unsafe { libc::syscall(nr::SETFSGID, libc::c_long::from(gid)) };
    // SAFETY: integer argument only.
    unsafe { libc::syscall(nr::SETFSUID, libc::c_long::from(uid)) };
    let now = thread_fs_ids();
    if now != (uid, gid) {
        return Err(io::Error::other(format!(
            "file-system identity switch did not stick: fsuid/fsgid {now:?}, wanted {uid}/{gid}"
        )));
    }
    Ok(())
}

/// Before login: the calling session thread touches files only as `uid`/`gid` (an
/// unprivileged account such as nobody), with no supplementary groups, and keeps just the
/// capabilities the login step needs (CAP_SETUID, CAP_SETGID, CAP_SETPCAP). Its real,
/// effective and saved uids stay 0, so no local user can signal or trace it.
#[cfg(target_os = "linux")]
pub fn restrict_thread_before_login(uid: u32, gid: u32) -> io::Result<()> {
    set_thread_fs_identity(uid, gid, &[])?;
    set_thread_caps((1 << CAP_SETUID) | (1 << CAP_SETGID) | (1 << CAP_SETPCAP))
}

/// Run `f` (the password check) with file-system uid and gid 0, so it can read /etc/shadow or
/// a root-only passwd-file, then return to the unprivileged identity the thread had. No
/// capability is gained: access is what root's owner and group bits allow.
#[cfg(target_os = "linux")]
pub fn with_root_files<T>(f: impl FnOnce() -> T) -> T {
    let (uid, gid) = thread_fs_ids();
    if (uid, gid) == (0, 0) {
        return f();
    }
    // SAFETY: integer arguments only; fs id 0 is allowed because the real uid is 0.
    unsafe {
        libc::syscall(nr::SETFSGID, 0 as libc::c_long);
        libc::syscall(nr::SETFSUID, 0 as libc::c_long);
    }
    let out = f();
    // SAFETY: integer arguments only; back to the ids read above.
    unsafe {
        libc::syscall(nr::SETFSUID, libc::c_long::from(uid));
        libc::syscall(nr::SETFSGID, libc::c_long::from(gid));
    }
    out
}

/// At login: bind the calling thread to the user for good. File access becomes exactly the
/// user's (`uid`, `gid`, `supplementary`, typically the spool group for dot-locks); then every
/// capability is dropped and the securebits are locked so that neither an execve as uid 0 nor
/// an ambient raise could return one. Other threads keep their credentials.
#[cfg(target_os = "linux")]
pub fn bind_thread_to(uid: u32, gid: u32, supplementary: &[u32]) -> io::Result<()> {
    set_thread_fs_identity(uid, gid, supplementary)?;
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: prctl with integer arguments only; PR_SET_SECUREBITS changes the calling
    // thread's credentials.
    check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) }.into())?;
    set_thread_caps(0)?;
    verify_bound(uid, gid)
}

#[cfg(target_os = "linux")]
fn verify_bound(uid: u32, gid: u32) -> io::Result<()> {
    let caps = thread_caps()?;
    let fs = thread_fs_ids();
    if caps != (0, 0) || fs != (uid, gid) {
        return Err(io::Error::other(format!(
            "credential switch did not stick: capabilities {caps:x?}, fsuid/fsgid {fs:?}, \
             wanted no capabilities and {uid}/{gid}"
        )));
    }
    Ok(())
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

/// Whether the calling thread may still switch identities: it holds CAP_SETUID. The daemon's
/// main threads do; a session thread bound to its user, or any thread of a process that
/// dropped root, does not.
pub fn can_switch_identity() -> bool {
    thread_caps().is_ok_and(|(eff, _)| eff & (1 << CAP_SETUID) != 0)
}

/// Make the process non-dumpable: /proc/PID files become root's, and no core file or ptrace
/// attach by a user is possible even through a thread's identity.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) }.into())
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
    thread_fs_ids().0
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

/// Grow-on-ERANGE buffer loop shared by the `get*_r` lookups. `Err` carries the errno of a
/// lookup that failed (as opposed to finding nothing).
fn try_with_buffer<T>(
    mut attempt: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>,
) -> Result<Option<T>, i32> {
    let mut len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match attempt(&mut buf) {
            Ok(v) => return Ok(v),
            Err(libc::ERANGE) if len < (1 << 20) => len *= 4,
            Err(libc::EINTR) => {}
            // getpwnam(3): some NSS modules report "no such entry" as an error.
            Err(libc::ENOENT | libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn with_buffer<T>(attempt: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, i32>) -> Option<T> {
    try_with_buffer(attempt).ok().flatten()
}

/// A NUL-terminated string from a `get*_r` result as an owned `String`; null or non-UTF-8
/// becomes `None`.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays alive during the call.
unsafe fn owned_str(p: *const libc::c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, per this function's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().ok().map(str::to_string)
}

/// A passwd entry as NSS returns it (files, extrausers, LDAP, sssd, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NssUser {
    /// The name as the source spells it.
    pub name: String,
    /// The passwd field: `x` when the hash lives in the shadow database.
    pub passwd: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// The passwd entry of `name` via getpwnam_r. `Ok(None)`: no such user (or a name with a NUL
/// or non-UTF-8 fields); `Err`: a source could not be consulted.
pub fn getpwnam(name: &str) -> io::Result<Option<NssUser>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    try_with_buffer(|buf| {
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
        // SAFETY: the strings of a successful lookup are null or NUL-terminated in `buf`,
        // which is alive here.
        let (name, passwd) = unsafe { (owned_str(pw.pw_name), owned_str(pw.pw_passwd)) };
        let home = if pw.pw_dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: non-null pw_dir is a NUL-terminated string inside `buf`, still alive.
            let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
            PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
        };
        Ok(name.map(|name| NssUser {
            name,
            passwd: passwd.unwrap_or_default(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home,
        }))
    })
    .map_err(io::Error::from_raw_os_error)
}

/// (uid, gid, home) of a user, via getpwnam_r (NSS: files, LDAP, ...).
pub fn lookup_user(name: &str) -> Option<(u32, u32, PathBuf)> {
    getpwnam(name)
        .ok()
        .flatten()
        .map(|u| (u.uid, u.gid, u.home))
}

/// A shadow entry as NSS returns it. Day counts are `None` where the field is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NssShadow {
    pub hash: String,
    pub last_change: Option<i64>,
    pub max_days: Option<i64>,
    pub inactive_days: Option<i64>,
    pub expire: Option<i64>,
}

/// The shadow entry of `name` via getspnam_r: /etc/shadow through the files module needs
/// file-system uid 0 (see [`with_root_files`]); `Err` when a source could not be read.
#[cfg(target_os = "linux")]
pub fn getspnam(name: &str) -> io::Result<Option<NssShadow>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    // glibc fills empty numeric fields with -1. (`c_long` is i32 on 32-bit targets.)
    #[allow(clippy::useless_conversion)]
    let day = |v: libc::c_long| (v >= 0).then_some(i64::from(v));
    try_with_buffer(|buf| {
        // SAFETY: all-zero is a valid `spwd` (integers and null pointers).
        let mut sp: libc::spwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::spwd = std::ptr::null_mut();
        // SAFETY: as in getpwnam: live locals and `buf` with its true length.
        let rc = unsafe {
            libc::getspnam_r(
                cname.as_ptr(),
                &mut sp,
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
        // SAFETY: sp_pwdp of a successful lookup is null or NUL-terminated in `buf`.
        let hash = unsafe { owned_str(sp.sp_pwdp) }.unwrap_or_default();
        Ok(Some(NssShadow {
            hash,
            last_change: day(sp.sp_lstchg),
            max_days: day(sp.sp_max),
            inactive_days: day(sp.sp_inact),
            expire: day(sp.sp_expire),
        }))
    })
    .map_err(io::Error::from_raw_os_error)
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

    /// The thread's capability lines (CapEff, CapPrm) from /proc.
    fn proc_caps(path: &str) -> (u64, u64) {
        let status = std::fs::read_to_string(path).unwrap();
        let field = |key: &str| {
            let hex = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
            u64::from_str_radix(hex.trim(), 16).unwrap()
        };
        (field("CapEff:"), field("CapPrm:"))
    }

    #[test]
    fn bound_thread_has_the_users_file_identity_and_no_capabilities() {
        let (uid, gid) = nobody();
        let main_before = proc_ids("/proc/thread-self/status");
        let was_root = can_switch_identity();
        let handle = std::thread::spawn(move || {
            let before = restrict_thread_before_login(uid, gid).map_err(|e| e.raw_os_error());
            let pre_login = (proc_ids("/proc/thread-self/status"), thread_caps().unwrap());
            // The password check alone sees root's files.
            let shadow_readable = with_root_files(|| {
                std::fs::metadata("/etc/shadow").is_ok()
                    && std::fs::File::open("/etc/shadow").is_ok()
            });
            let shadow_after = std::fs::File::open("/etc/shadow").is_ok();
            let r = bind_thread_to(uid, gid, &[gid, 8]).map_err(|e| e.raw_os_error());
            let ids = proc_ids("/proc/thread-self/status");
            let caps = proc_caps("/proc/thread-self/status");
            // Regaining anything must be impossible now.
            let regain = set_thread_caps(1 << CAP_SETUID).is_ok();
            let regroup = set_thread_fs_identity(0, 0, &[]).is_ok();
            (
                before,
                pre_login,
                shadow_readable,
                shadow_after,
                r,
                ids,
                caps,
                regain,
                regroup,
                can_switch_identity(),
            )
        });
        let (
            before,
            pre_login,
            shadow_readable,
            shadow_after,
            r,
            ids,
            caps,
            regain,
            regroup,
            still,
        ) = handle.join().unwrap();
        if !was_root {
            // Unprivileged: the switch must fail loudly, not half-happen.
            assert!(before.is_err() || r.is_err());
            return;
        }
        assert_eq!(before, Ok(()));
        // Before login: uid 0 in the real/effective/saved slots, nobody for files.
        assert_eq!(pre_login.0 .0, vec![0, 0, 0, uid]);
        assert_eq!(pre_login.0 .1, vec![0, 0, 0, gid]);
        assert!(
            pre_login.0 .2.is_empty(),
            "no supplementary groups before login"
        );
        assert_eq!(
            pre_login.1 .0,
            (1 << CAP_SETUID) | (1 << CAP_SETGID) | (1 << CAP_SETPCAP)
        );
        if std::path::Path::new("/etc/shadow").exists() {
            assert!(shadow_readable, "the password check reads /etc/shadow");
            assert!(!shadow_after, "nothing else before login does");
        }
        assert_eq!(r, Ok(()));
        assert_eq!(ids.0, vec![0, 0, 0, uid], "uid real/effective/saved/fs");
        assert_eq!(ids.1, vec![0, 0, 0, gid]);
        let mut groups = ids.2.clone();
        groups.sort();
        assert_eq!(groups, {
            let mut g = vec![8, gid];
            g.sort();
            g
        });
        assert_eq!(caps, (0, 0), "no capability left");
        assert!(!regain && !still);
        // Without CAP_SETGID the groups cannot be reset (the fsuid alone could go back to 0,
        // which is why no capability, and so no override of file modes, remains).
        assert!(!regroup);
        // The main thread (and process) are untouched.
        assert_eq!(proc_ids("/proc/thread-self/status"), main_before);
        assert!(can_switch_identity());
        assert_eq!(proc_ids("/proc/self/status").0, vec![0; 4]);
    }

    #[test]
    fn many_threads_each_as_their_own_user() {
        if !can_switch_identity() {
            return assert!(bind_thread_to(1, 1, &[]).is_err());
        }
        let handles: Vec<_> = (0..4u32)
            .map(|i| {
                std::thread::spawn(move || {
                    let id = 20_000 + i;
                    bind_thread_to(id, id, &[]).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    proc_ids("/proc/thread-self/status")
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let (u, g, groups) = h.join().unwrap();
            assert_eq!(u, vec![0, 0, 0, 20_000 + i as u32]);
            assert_eq!(g, vec![0, 0, 0, 20_000 + i as u32]);
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
        let root = getpwnam("root").unwrap().unwrap();
        assert_eq!((root.name.as_str(), root.uid), ("root", 0));
        assert_eq!(getpwnam("mboxpopd-no-such-user").unwrap(), None);
        if is_root() && std::path::Path::new("/etc/shadow").exists() {
            assert!(getspnam("root").unwrap().is_some());
            assert_eq!(getspnam("mboxpopd-no-such-user").unwrap(), None);
        }
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
