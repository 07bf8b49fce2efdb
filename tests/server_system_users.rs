//! `auth = system` with a real account: created with useradd, its password set by chpasswd
//! (Debian's default hash, yescrypt), looked up in the real /etc/passwd and /etc/shadow. The
//! session must run as that user (the mailbox keeps its owner and mode through a commit, the
//! dot-lock is created in a `root:mail 2775`-style spool), in the standalone daemon (per-thread
//! credentials) and under inetd (the whole process drops). Needs root and the shadow tools;
//! elsewhere it prints SKIPPED. The account is removed again, whatever the outcome.

mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::process::Command;

use common::*;

fn tool(name: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(name).is_file())
}

/// A throwaway system account, deleted on drop.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    fn create(tag: &str, password: &str) -> Account {
        // useradd and chpasswd fail rather than wait when another holds /etc/passwd's lock.
        static SHADOW_TOOLS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SHADOW_TOOLS.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("mbxt{}{}", tag, std::process::id() % 100_000);
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "-d", "/nonexistent", &name])
            .status()
            .expect("useradd")
            .success();
        assert!(ok, "useradd {name}");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("write");
        assert!(chpasswd.wait().expect("wait").success(), "chpasswd");
        let line = fs::read_to_string("/etc/passwd")
            .expect("passwd")
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .expect("account in /etc/passwd")
            .to_string();
        let f: Vec<&str> = line.split(':').collect();
        Account {
            name,
            uid: f[2].parse().expect("uid"),
            gid: f[3].parse().expect("gid"),
        }
    }

    fn shadow_hash(&self) -> String {
        fs::read_to_string("/etc/shadow")
            .expect("shadow")
            .lines()
            .find(|l| l.starts_with(&format!("{}:", self.name)))
            .and_then(|l| l.split(':').nth(1).map(str::to_string))
            .expect("shadow entry")
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        for _ in 0..20 {
            match Command::new("userdel").arg(&self.name).status() {
                Ok(st) if st.success() => return,
                // Exit 10: /etc/passwd is locked by a concurrent useradd; try again.
                _ => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
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

/// A spool like Debian's (`root:mail 2775`) holding `user:mail 0660` mailboxes.
fn debian_spool(f: &mut Fixture, mail: u32, users: &[&Account]) {
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let spool = f.path().join("spool");
    chown(&spool, Some(0), Some(mail)).expect("chown spool");
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).expect("chmod spool");
    for u in users {
        f.write_mbox(&u.name, &mbox(&[MSG1, MSG2, MSG3]));
        chown(f.mailbox(&u.name), Some(u.uid), Some(mail)).expect("chown mbox");
        fs::set_permissions(f.mailbox(&u.name), fs::Permissions::from_mode(0o660))
            .expect("chmod mbox");
    }
    f.config("auth = system");
    f.config("spool_group = mail");
}

fn ready() -> Option<u32> {
    if !is_root() {
        eprintln!("SKIPPED: system-user tests need root (they create accounts)");
        return None;
    }
    if !["useradd", "chpasswd", "userdel"].iter().all(|t| tool(t)) {
        eprintln!("SKIPPED: useradd/chpasswd/userdel not installed");
        return None;
    }
    let mail = mail_gid();
    if mail.is_none() {
        eprintln!("SKIPPED: no `mail` group");
    }
    mail
}

fn check_after_dele_1(f: &Fixture, a: &Account, mail: u32) {
    assert_eq!(show(&f.read_mbox(&a.name)), show(&mbox(&[MSG2, MSG3])));
    let meta = fs::metadata(f.mailbox(&a.name)).expect("meta");
    assert_eq!((meta.uid(), meta.gid()), (a.uid, mail), "owner kept");
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode kept");
    let others: Vec<String> = f
        .spool_leftovers()
        .into_iter()
        .filter(|n| !n.starts_with("mbxt") || n.contains('.'))
        .collect();
    assert_eq!(others, Vec::<String>::new(), "no lock or journal left");
}

#[test]
fn standalone_daemon_serves_real_accounts_with_their_own_credentials() {
    let Some(mail) = ready() else { return };
    let alice = Account::create("a", "Correct horse 1");
    let bob = Account::create("b", "Battery staple 2");
    assert!(
        alice.shadow_hash().starts_with('$'),
        "a crypt hash: {}",
        alice.shadow_hash()
    );
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&alice, &bob]);
    let server = f.standalone();

    // Two users at once, each in a thread with their own uid.
    let mut a = server.connect();
    a.login(&alice.name, "Correct horse 1");
    let mut b = server.connect();
    b.login(&bob.name, "Battery staple 2");
    assert_eq!(
        a.ok("STAT"),
        format!(
            "+OK 3 {}",
            [MSG1, MSG2, MSG3]
                .map(|m| content(m).len())
                .iter()
                .sum::<usize>()
        )
    );
    a.ok("DELE 1");
    a.quit();
    check_after_dele_1(&f, &alice, mail);
    b.quit();
    assert_eq!(
        show(&f.read_mbox(&bob.name)),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );

    // A wrong password and an unknown user get the same answer.
    let mut c = server.connect();
    c.ok(&format!("USER {}", alice.name));
    let wrong = c.err("PASS wrong");
    c.ok("USER nosuchuser");
    let unknown = c.err("PASS wrong");
    assert_eq!(wrong, unknown);
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
}

#[test]
fn inetd_session_drops_the_process_to_the_account() {
    let Some(mail) = ready() else { return };
    let carol = Account::create("c", "Tr0ub4dor&3");
    let mut f = Fixture::new();
    debian_spool(&mut f, mail, &[&carol]);
    let mut c = f.inetd();
    c.login(&carol.name, "Tr0ub4dor&3");
    // Logged in: the whole process now runs as carol, with `mail` as a supplementary group.
    let status = fs::read_to_string(format!("/proc/{}/status", c.server_pid().expect("pid")))
        .expect("status");
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), vec![carol.uid; 4], "{status}");
    assert_eq!(field("Gid:"), vec![carol.gid; 4], "{status}");
    assert!(field("Groups:").contains(&mail), "{status}");
    c.ok("DELE 1");
    c.quit();
    check_after_dele_1(&f, &carol, mail);

    // A locked account no longer logs in.
    assert!(Command::new("usermod")
        .args(["-L", &carol.name])
        .status()
        .expect("usermod")
        .success());
    let mut c = f.inetd();
    c.ok(&format!("USER {}", carol.name));
    let reply = c.err("PASS Tr0ub4dor&3");
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
}
