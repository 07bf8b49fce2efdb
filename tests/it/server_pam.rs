//! `auth = pam` against the real Linux-PAM library and real modules: accounts made with
//! useradd/chpasswd, service files written by each test into /etc/pam.d (unique names, removed
//! afterwards), the standalone daemon serving the spool as each user. Covered: good and bad
//! passwords and PAM_RHOST (pam_unix, pam_exec), a pam_listfile deny rule, an expired account
//! (`chage -E 0`, refused by the account stack), a user known only to NSS extrausers
//! (libnss-extrausers; nsswitch.conf is extended for the test and restored), a pam_faillock
//! lockout, and a stack that hangs for one user (pam_exec of a slow script) while others log
//! in. Needs root, the
//! shadow tools and the PAM modules; elsewhere it prints SKIPPED.

use crate::common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::SystemAccount as Account;
use common::*;

/// Where the distribution keeps PAM modules, if `module` is installed.
fn pam_module(module: &str) -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/aarch64-linux-gnu/security",
        "/usr/lib/aarch64-linux-gnu/security",
        "/usr/lib64/security",
        "/lib64/security",
        "/usr/lib/security",
        "/lib/security",
    ]
    .iter()
    .map(|d| Path::new(d).join(module))
    .find(|p| p.is_file())
}

/// A PAM service file in /etc/pam.d, removed on drop. The test runs alone meanwhile: it
/// edits /etc, and several PAM tests bound how long a login may take.
struct PamService {
    name: String,
    _alone: Exclusive,
}

impl PamService {
    fn new(tag: &str, stack: &str) -> PamService {
        let alone = exclusive();
        let name = format!("mboxpopd-test-{tag}-{}", std::process::id());
        fs::write(Path::new("/etc/pam.d").join(&name), stack).expect("write PAM service");
        PamService {
            name,
            _alone: alone,
        }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}

fn mail_gid() -> Option<u32> {
    fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == "mail").then(|| f[2].parse().ok())?
        })
}

fn ready() -> Option<u32> {
    if !is_root() {
        eprintln!("SKIPPED: PAM tests need root (they create accounts and PAM services)");
        return None;
    }
    if !["useradd", "chpasswd", "userdel", "chage"]
        .iter()
        .all(|t| tool(t))
    {
        eprintln!("SKIPPED: useradd/chpasswd/userdel/chage not installed");
        return None;
    }
    if !Path::new("/etc/pam.d").is_dir() {
        eprintln!("SKIPPED: no /etc/pam.d");
        return None;
    }
    for m in ["pam_unix.so", "pam_listfile.so", "pam_exec.so"] {
        if pam_module(m).is_none() {
            eprintln!("SKIPPED: PAM module {m} not installed (libpam-modules)");
            return None;
        }
    }
    let mail = mail_gid();
    if mail.is_none() {
        eprintln!("SKIPPED: no `mail` group");
    }
    mail
}

/// A Debian-like spool (`root:mail 2775`) with `uid:mail 0660` mailboxes, served by `auth =
/// backend` (with the PAM service `service` for `pam`).
fn pam_spool(
    f: &mut Fixture,
    mail: u32,
    users: &[(&str, u32)],
    backend: &str,
    service: &PamService,
) {
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let spool = f.path().join("spool");
    chown(&spool, Some(0), Some(mail)).expect("chown spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).expect("chmod spool");
    for (name, uid) in users {
        f.write_mbox(name, &mbox(&[MSG1, MSG2, MSG3]));
        chown(f.mailbox(name), Some(*uid), Some(mail)).expect("chown mbox");
        fs::set_permissions(f.mailbox(name), fs::Permissions::from_mode(0o660))
            .expect("chmod mbox");
    }
    f.config(&format!("auth = {backend}"));
    f.config(&format!("pam_service = {}", service.name));
    f.config("spool_group = mail");
}

fn stat_line() -> String {
    let octets: usize = [MSG1, MSG2, MSG3].map(|m| content(m).len()).iter().sum();
    format!("+OK 3 {octets}")
}

fn plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// A shell script in the fixture directory (root-owned, 0755), for pam_exec.
fn script(f: &Fixture, name: &str, body: &str) -> PathBuf {
    let p = f.path().join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod script");
    p
}

#[test]
fn pam_unix_listfile_and_account_expiry() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("a", "Correct horse 1");
    let denied = Account::create("d", "Battery staple 2");
    let expired = Account::create("e", "Tr0ub4dor&3");
    assert!(Command::new("chage")
        .args(["-E", "0", &expired.name])
        .status()
        .expect("chage")
        .success());

    let mut f = Fixture::new();
    let deny_list = f.path().join("pop-deny");
    fs::write(&deny_list, format!("{}\n", denied.name)).expect("deny list");
    let seen = f.path().join("seen");
    let record = script(
        &f,
        "record.sh",
        &format!(
            "echo \"$PAM_SERVICE $PAM_TYPE $PAM_USER $PAM_RHOST\" >> {}",
            seen.display()
        ),
    );
    let service = PamService::new(
        "unix",
        &format!(
            "auth     optional pam_exec.so quiet {record}\n\
             auth     required pam_listfile.so item=user sense=deny file={deny} onerr=succeed\n\
             auth     required pam_unix.so\n\
             account  required pam_unix.so\n",
            record = record.display(),
            deny = deny_list.display()
        ),
    );
    pam_spool(
        &mut f,
        mail,
        &[
            (alice.name.as_str(), alice.uid),
            (denied.name.as_str(), denied.uid),
            (expired.name.as_str(), expired.uid),
        ],
        "pam",
        &service,
    );
    f.config("apop = yes");
    let server = f.standalone();

    // Good password: served as the account, with only what PAM can do on offer.
    let mut c = server.connect();
    let caps = {
        c.send(b"CAPA\r\n");
        assert!(c.line().starts_with("+OK"));
        String::from_utf8(c.multi()).expect("utf8")
    };
    assert!(caps.contains("SASL PLAIN LOGIN\r\n"), "{caps}");
    assert!(!caps.contains("CRAM-MD5"), "{caps}");
    c.err("AUTH CRAM-MD5");
    c.err(&format!(
        "APOP {} 0123456789abcdef0123456789abcdef",
        alice.name
    ));
    c.login(&alice.name, "Correct horse 1");
    assert_eq!(c.ok("STAT"), stat_line());
    c.ok("DELE 1");
    c.quit();
    assert_eq!(show(&f.read_mbox(&alice.name)), show(&mbox(&[MSG2, MSG3])));
    let meta = fs::metadata(f.mailbox(&alice.name)).expect("meta");
    assert_eq!((meta.uid(), meta.gid()), (alice.uid, mail), "owner kept");
    let seen_text = fs::read_to_string(&seen).expect("pam_exec ran");
    assert!(
        seen_text.contains(&format!("{} auth {} 127.0.0.1", service.name, alice.name)),
        "PAM_SERVICE, PAM_USER and PAM_RHOST: {seen_text}"
    );

    // SASL PLAIN goes through PAM too.
    let mut c = server.connect();
    c.ok(&format!(
        "AUTH PLAIN {}",
        plain(&alice.name, "Correct horse 1")
    ));
    c.quit();

    // Under inetd (no peer address over pipes) the process drops to the account after PAM.
    let mut c = f.inetd();
    c.login(&alice.name, "Correct horse 1");
    let status = fs::read_to_string(format!("/proc/{}/status", c.server_pid().expect("pid")))
        .expect("status");
    let uids = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        vec![alice.uid.to_string(); 4],
        "{status}"
    );
    c.quit();

    // Refusals: all the same `-ERR [AUTH]` as an unknown user.
    let mut c = server.connect();
    c.ok("USER mbxpnosuchuser");
    let unknown = c.err("PASS Correct horse 1");
    assert!(unknown.starts_with("-ERR [AUTH]"), "{unknown}");
    for (user, pass) in [
        (&alice.name, "correct horse 1"),
        (&denied.name, "Battery staple 2"),
        (&expired.name, "Tr0ub4dor&3"),
    ] {
        let mut c = server.connect();
        c.ok(&format!("USER {user}"));
        assert_eq!(c.err(&format!("PASS {pass}")), unknown, "{user}");
    }
    let log = server.log();
    assert!(
        log.contains(&format!("account refused \"{}\"", expired.name)),
        "the account stack refused the expired account:\n{log}"
    );
    assert!(
        log.contains(&format!("authentication refused \"{}\"", denied.name)),
        "pam_listfile refused in the auth stack:\n{log}"
    );
    // Neither got near their mailbox.
    assert_eq!(
        show(&f.read_mbox(&denied.name)),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
}

#[test]
fn a_hung_pam_module_does_not_stop_other_logins() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("h", "Correct horse 1");
    let slow = Account::create("s", "Battery staple 2");
    let mut f = Fixture::new();
    // The stack blocks for `slow` alone, well past pam_timeout.
    let hang = script(
        &f,
        "hang.sh",
        &format!("[ \"$PAM_USER\" = {} ] && sleep 6\nexit 0", slow.name),
    );
    let service = PamService::new(
        "hang",
        &format!(
            "auth     requisite pam_exec.so quiet {}\n\
             auth     required  pam_unix.so\n\
             account  required  pam_unix.so\n",
            hang.display()
        ),
    );
    pam_spool(
        &mut f,
        mail,
        &[
            (alice.name.as_str(), alice.uid),
            (slow.name.as_str(), slow.uid),
        ],
        "pam",
        &service,
    );
    f.config("pam_timeout = 2s");
    f.config("pam_max_concurrent = 2");
    // All clients come from 127.0.0.1 here; in life they are different addresses.
    f.config("max_auth_checks_per_client = 8");
    let server = f.standalone();

    let t0 = Instant::now();
    let mut s1 = server.connect();
    s1.ok(&format!("USER {}", slow.name));
    s1.send(b"PASS Battery staple 2\r\n");
    std::thread::sleep(Duration::from_millis(300));

    // Meanwhile, another user logs in at once.
    let t = Instant::now();
    let mut a = server.connect();
    a.login(&alice.name, "Correct horse 1");
    assert_eq!(a.ok("STAT"), stat_line());
    let quick = t.elapsed();
    assert!(quick < Duration::from_millis(1500), "login took {quick:?}");
    a.quit();

    // The hung conversation is abandoned after pam_timeout.
    let reply = s1.line();
    let waited = t0.elapsed();
    assert!(reply.starts_with("-ERR [SYS/TEMP]"), "{reply}");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );

    // It still holds its slot; a second hung one takes the other, and with both taken the
    // next login waits pam_timeout for a slot, then fails: the bound holds.
    let mut s2 = server.connect();
    s2.ok(&format!("USER {}", slow.name));
    s2.send(b"PASS Battery staple 2\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let mut b = server.connect();
    b.ok(&format!("USER {}", alice.name));
    let busy = b.err("PASS Correct horse 1");
    assert!(busy.starts_with("-ERR [SYS/TEMP]"), "{busy}");
    assert!(s2.line().starts_with("-ERR [SYS/TEMP]"));

    // Once the modules return, the slots are free again.
    let back = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = server.connect();
        c.ok(&format!("USER {}", alice.name));
        let r = c.cmd("PASS Correct horse 1");
        if r.starts_with("+OK") {
            c.quit();
            break;
        }
        assert!(Instant::now() < back, "slots never came back: {r}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = server.log();
    assert!(log.contains("took longer than 2s"), "{log}");
    assert!(log.contains("PAM conversations busy"), "{log}");
}

/// nsswitch.conf with `extrausers` after the passwd, group and shadow sources, and an account
/// in /var/lib/extrausers; both restored on drop.
struct ExtraUser {
    name: String,
    uid: u32,
    saved: Vec<(PathBuf, Option<Vec<u8>>)>,
    // Dropped after `saved` is restored: nsswitch.conf is rewritten in place, and every
    // user lookup on the machine reads it.
    _alone: Exclusive,
}

impl ExtraUser {
    fn create(password: &str) -> Option<ExtraUser> {
        let alone = exclusive();
        let name = format!("mbxpx{}", std::process::id() % 100_000);
        // An id no other account or group uses (getent exits 2 for "not found").
        let taken = |db: &str, id: u32| {
            Command::new("getent")
                .args([db, &id.to_string()])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| s.code() != Some(2))
        };
        let uid = (47_000..48_000).find(|&id| !taken("passwd", id) && !taken("group", id))?;
        let hash = Command::new("openssl")
            .args(["passwd", "-6", password])
            .output()
            .ok()?;
        let hash = String::from_utf8(hash.stdout).ok()?.trim().to_string();
        assert!(hash.starts_with("$6$"), "openssl passwd: {hash}");
        let mut me = ExtraUser {
            name,
            uid,
            saved: Vec::new(),
            _alone: alone,
        };
        let dir = Path::new("/var/lib/extrausers");
        fs::create_dir_all(dir).expect("extrausers dir");
        let n = me.name.clone();
        let day = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            / 86_400;
        me.append(
            &dir.join("passwd"),
            &format!("{n}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"),
            0o644,
        );
        me.append(&dir.join("group"), &format!("{n}:x:{uid}:\n"), 0o644);
        me.append(
            &dir.join("shadow"),
            &format!("{n}:{hash}:{day}:0:99999:7:::\n"),
            0o640,
        );
        let conf = Path::new("/etc/nsswitch.conf");
        let text = fs::read_to_string(conf).expect("nsswitch.conf");
        me.saved
            .push((conf.to_path_buf(), Some(text.clone().into_bytes())));
        let edited: String = text
            .lines()
            .map(|l| {
                let db = l.split(':').next().unwrap_or("").trim();
                if ["passwd", "group", "shadow"].contains(&db) && !l.contains("extrausers") {
                    format!("{l} extrausers\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(conf, edited).expect("write nsswitch.conf");
        Some(me)
    }

    fn append(&mut self, path: &Path, line: &str, mode: u32) {
        let old = fs::read(path).ok();
        self.saved.push((path.to_path_buf(), old.clone()));
        let mut new = old.unwrap_or_default();
        new.extend_from_slice(line.as_bytes());
        fs::write(path, new).expect("write extrausers file");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

impl Drop for ExtraUser {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            let _ = match old {
                Some(bytes) => fs::write(path, bytes),
                None => fs::remove_file(path),
            };
        }
    }
}

#[test]
fn a_user_known_only_to_nss_extrausers_is_served() {
    let Some(mail) = ready() else { return };
    let have_nss = [
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
    ]
    .iter()
    .any(|d| Path::new(d).join("libnss_extrausers.so.2").is_file());
    if !have_nss || !tool("openssl") || !tool("getent") {
        eprintln!("SKIPPED: libnss-extrausers, openssl or getent not installed");
        return;
    }
    let Some(user) = ExtraUser::create("Extra 3 users") else {
        eprintln!("SKIPPED: no free uid for the extrausers account");
        return;
    };
    let getent = Command::new("getent")
        .args(["passwd", &user.name])
        .output()
        .expect("getent");
    assert!(
        String::from_utf8_lossy(&getent.stdout).contains(&format!(":{}:", user.uid)),
        "NSS resolves the extrausers account"
    );
    assert!(!fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .contains(&user.name));
    // Ubuntu ships pam_extrausers; Debian's pam_unix reads the account through NSS (getpwnam
    // and, as root, getspnam), which covers extrausers as well.
    let module = if pam_module("pam_extrausers.so").is_some() {
        "pam_extrausers.so"
    } else {
        "pam_unix.so"
    };
    let service = PamService::new(
        "extra",
        &format!("auth required {module}\naccount required {module}\n"),
    );
    for backend in ["pam", "system"] {
        let mut f = Fixture::new();
        pam_spool(
            &mut f,
            mail,
            &[(user.name.as_str(), user.uid)],
            backend,
            &service,
        );
        let server = f.standalone();
        let mut c = server.connect();
        c.login(&user.name, "Extra 3 users");
        assert_eq!(c.ok("STAT"), stat_line(), "auth = {backend}");
        c.ok("DELE 3");
        c.quit();
        assert_eq!(show(&f.read_mbox(&user.name)), show(&mbox(&[MSG1, MSG2])));
        let meta = fs::metadata(f.mailbox(&user.name)).expect("meta");
        assert_eq!((meta.uid(), meta.gid()), (user.uid, mail), "owner kept");
        let mut c = server.connect();
        c.ok(&format!("USER {}", user.name));
        assert!(c.err("PASS extra 3 users").starts_with("-ERR [AUTH]"));
    }
}

#[test]
fn the_shipped_service_file_uses_the_system_policy() {
    let Some(mail) = ready() else { return };
    if !Path::new("/etc/pam.d/common-auth").is_file() {
        eprintln!("SKIPPED: no /etc/pam.d/common-auth (not a Debian-style PAM setup)");
        return;
    }
    let user = Account::create("p", "Correct horse 1");
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/pam.d/mboxpopd"))
            .expect("etc/pam.d/mboxpopd");
    let service = PamService::new("shipped", &shipped);
    let mut f = Fixture::new();
    pam_spool(
        &mut f,
        mail,
        &[(user.name.as_str(), user.uid)],
        "pam",
        &service,
    );
    let server = f.standalone();
    let mut c = server.connect();
    c.login(&user.name, "Correct horse 1");
    assert_eq!(c.ok("STAT"), stat_line());
    c.quit();
    let mut c = server.connect();
    c.ok(&format!("USER {}", user.name));
    assert!(c.err("PASS Correct horse 2").starts_with("-ERR [AUTH]"));
}

#[test]
fn a_pam_faillock_lockout_refuses_the_right_password() {
    let Some(mail) = ready() else { return };
    if pam_module("pam_faillock.so").is_none() {
        eprintln!("SKIPPED: pam_faillock not installed");
        return;
    }
    let user = Account::create("f", "Correct horse 1");
    let mut f = Fixture::new();
    // The tally lives in the fixture, not in the machine's /run/faillock; root writes it with
    // nothing but file-system uid 0 (no CAP_DAC_OVERRIDE) while PAM runs.
    let tally = f.path().join("faillock");
    let opts = format!("deny=2 unlock_time=600 dir={}", tally.display());
    let service = PamService::new(
        "faillock",
        &format!(
            "auth     required                pam_faillock.so preauth {opts}\n\
             auth     [success=1 default=bad] pam_unix.so\n\
             auth     [default=die]           pam_faillock.so authfail {opts}\n\
             auth     sufficient              pam_faillock.so authsucc {opts}\n\
             auth     required                pam_deny.so\n\
             account  required                pam_faillock.so\n\
             account  required                pam_unix.so\n"
        ),
    );
    pam_spool(
        &mut f,
        mail,
        &[(user.name.as_str(), user.uid)],
        "pam",
        &service,
    );
    let server = f.standalone();
    let mut c = server.connect();
    c.login(&user.name, "Correct horse 1");
    c.quit();
    for _ in 0..2 {
        let mut c = server.connect();
        c.ok(&format!("USER {}", user.name));
        assert!(c.err("PASS wrong").starts_with("-ERR [AUTH]"));
    }
    assert!(
        tally.join(&user.name).is_file(),
        "pam_faillock kept a tally"
    );
    let mut c = server.connect();
    c.ok(&format!("USER {}", user.name));
    let locked = c.err("PASS Correct horse 1");
    assert!(locked.starts_with("-ERR [AUTH]"), "{locked}");
}
