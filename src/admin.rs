//! Account administration from the command line: `mboxpopd user add|passwd|del|list` for
//! `auth = passwd-file`, and `mboxpopd pw`, which only prints a hash (like `doveadm pw`).
//!
//! Every change rewrites the passwd-file atomically: a temporary file in the same directory
//! with the original's owner and mode, fsync, rename over the original, fsync of the
//! directory. A reader (the running daemon re-reads the file when its inode changes) sees the
//! old or the new file, never half of one. Changes are serialised by an exclusive lock on
//! `PASSWD_FILE.lock`, a separate file that is never removed or replaced: the passwd-file's
//! own inode changes with every rename, so a lock on it would not exclude the next admin.
//! Lines the command does not change are kept byte for byte (comments included).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::auth::hash::Secret;
use crate::auth::username;
use crate::config::{AuthBackend, Config};

/// Why a command failed; `Usage` exits with status 2, the others with 1.
#[derive(Debug)]
pub enum AdminError {
    Usage(String),
    Config(String),
    /// `auth = system`: accounts are not ours to manage.
    SystemAccounts,
    Refused(String),
    Io {
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Usage(m) | AdminError::Config(m) | AdminError::Refused(m) => f.write_str(m),
            AdminError::SystemAccounts => f.write_str(
                "auth = system or pam: POP3 accounts are the system's accounts; create them with \
                 useradd(8) and set their passwords with passwd(8) (or set auth = passwd-file)",
            ),
            AdminError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for AdminError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AdminError + '_ {
    move |err| AdminError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The hash schemes `-s` accepts: those the server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Yescrypt,
    Sha512Crypt,
    Sha256Crypt,
    Bcrypt,
    Md5Crypt,
    /// `{PLAIN}`: needed for APOP and CRAM-MD5, readable by whoever reads the file.
    Plain,
}

impl Scheme {
    pub fn parse(name: &str) -> Result<Scheme, AdminError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "yescrypt" | "y" => Scheme::Yescrypt,
            "sha512-crypt" | "sha512" => Scheme::Sha512Crypt,
            "sha256-crypt" | "sha256" => Scheme::Sha256Crypt,
            "bcrypt" | "blf-crypt" => Scheme::Bcrypt,
            "md5-crypt" | "md5" => Scheme::Md5Crypt,
            "plain" => Scheme::Plain,
            _ => {
                return Err(AdminError::Usage(format!(
                    "unknown scheme `{name}` (yescrypt, sha512-crypt, sha256-crypt, bcrypt, \
                     md5-crypt, plain)"
                )))
            }
        })
    }
}

/// Hash `password` with `scheme`, and check that the server would accept it.
pub fn hash_password(password: &[u8], scheme: Scheme) -> Result<String, AdminError> {
    let failed = |e: String| AdminError::Refused(format!("cannot hash the password: {e}"));
    let stored = match scheme {
        Scheme::Yescrypt => {
            use yescrypt::PasswordHasher;
            // The crate's default parameters are Debian's (`$y$j9T$`, as mkpasswd and
            // chpasswd write them).
            yescrypt::Yescrypt::default()
                .hash_password(password)
                .map_err(|e| failed(e.to_string()))?
                .as_str()
                .to_owned()
        }
        Scheme::Sha512Crypt => {
            pwhash::sha512_crypt::hash(password).map_err(|e| failed(e.to_string()))?
        }
        // pwhash discourages these two for new passwords; they stay selectable because the
        // issue asks for every scheme the server verifies (another tool may have to read the
        // file too). The man page recommends the default.
        #[allow(deprecated)]
        Scheme::Sha256Crypt => {
            pwhash::sha256_crypt::hash(password).map_err(|e| failed(e.to_string()))?
        }
        Scheme::Bcrypt => pwhash::bcrypt::hash(password).map_err(|e| failed(e.to_string()))?,
        #[allow(deprecated)]
        Scheme::Md5Crypt => pwhash::md5_crypt::hash(password).map_err(|e| failed(e.to_string()))?,
        Scheme::Plain => {
            let text = std::str::from_utf8(password)
                .map_err(|_| failed(String::from("{PLAIN} needs a UTF-8 password")))?;
            if text.contains(':') {
                return Err(failed(String::from(
                    "a {PLAIN} password cannot contain `:` (the field separator)",
                )));
            }
            format!("{{PLAIN}}{text}")
        }
    };
    let secret = Secret::parse(&stored).map_err(|e| failed(e.to_string()))?;
    if !secret.verify(password) {
        return Err(failed(String::from("the new hash does not verify")));
    }
    Ok(stored)
}

/// Where the password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordSource {
    /// Twice from the controlling terminal, without echo.
    Terminal,
    /// One line from standard input (scripts).
    Stdin,
}

fn read_password(source: PasswordSource) -> Result<Vec<u8>, AdminError> {
    let pw = match source {
        PasswordSource::Stdin => {
            let mut line = Vec::new();
            io::stdin()
                .lock()
                .read_until(b'\n', &mut line)
                .map_err(io_err(Path::new("standard input")))?;
            strip_line_end(&mut line);
            line
        }
        PasswordSource::Terminal => {
            let tty_path = Path::new("/dev/tty");
            let tty = OpenOptions::new()
                .read(true)
                .write(true)
                .open(tty_path)
                .map_err(|e| {
                    AdminError::Refused(format!(
                        "no terminal to read the password from ({e}); use --stdin"
                    ))
                })?;
            let first = prompt(&tty, "New password: ")?;
            let second = prompt(&tty, "Retype new password: ")?;
            if first != second {
                return Err(AdminError::Refused(String::from(
                    "the passwords do not match",
                )));
            }
            first
        }
    };
    if pw.is_empty() {
        return Err(AdminError::Refused(String::from("empty password refused")));
    }
    if pw.contains(&0) {
        return Err(AdminError::Refused(String::from(
            "password contains a NUL byte",
        )));
    }
    Ok(pw)
}

fn prompt(tty: &File, text: &str) -> Result<Vec<u8>, AdminError> {
    use std::os::fd::AsFd;
    let path = Path::new("/dev/tty");
    let mut out = tty;
    out.write_all(text.as_bytes()).map_err(io_err(path))?;
    out.flush().map_err(io_err(path))?;
    let _quiet = crate::sys::terminal::echo_off(tty.as_fd()).map_err(io_err(path))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut input = tty;
    // Byte by byte: nothing after the line end may be consumed.
    loop {
        match input.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path)(e)),
        }
        if line.len() > 4096 {
            return Err(AdminError::Refused(String::from("password too long")));
        }
    }
    strip_line_end(&mut line);
    Ok(line)
}

fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
}

/// The fields `user add` writes besides name and hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAccount {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
    pub mailbox: Option<String>,
}

/// The passwd-file line for a new account.
pub fn account_line(name: &str, hash: &str, a: &NewAccount) -> String {
    let id = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut fields = vec![
        name.to_string(),
        hash.to_string(),
        id(a.uid),
        id(a.gid),
        String::new(),
        a.home.clone().unwrap_or_default(),
        String::new(),
        a.mailbox
            .as_ref()
            .map(|m| format!("mail={m}"))
            .unwrap_or_default(),
    ];
    while fields.len() > 2 && fields.last().is_some_and(String::is_empty) {
        fields.pop();
    }
    fields.join(":")
}

fn line_name(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || line.starts_with(b"#") {
        return None;
    }
    Some(line.split(|&b| b == b':').next().unwrap_or(line))
}

/// The edits a command makes to the file's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Add(String, String),
    SetPassword(String, String),
    Delete(String),
}

/// Apply `edit` to the file's text; the new text, or why not.
pub fn apply_edit(text: &[u8], edit: &Edit) -> Result<Vec<u8>, AdminError> {
    let mut lines: Vec<Vec<u8>> = text
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let find = |lines: &[Vec<u8>], name: &str| {
        lines
            .iter()
            .position(|l| line_name(l.strip_suffix(b"\n").unwrap_or(l)) == Some(name.as_bytes()))
    };
    match edit {
        Edit::Add(name, line) => {
            if find(&lines, name).is_some() {
                return Err(AdminError::Refused(format!("user {name} already exists")));
            }
            if lines.last().is_some_and(|l| !l.ends_with(b"\n")) {
                if let Some(l) = lines.last_mut() {
                    l.push(b'\n');
                }
            }
            lines.push(format!("{line}\n").into_bytes());
        }
        Edit::SetPassword(name, hash) => {
            let i =
                find(&lines, name).ok_or_else(|| AdminError::Refused(format!("no user {name}")))?;
            let old = &lines[i];
            let ending: &[u8] = if old.ends_with(b"\r\n") {
                b"\r\n"
            } else if old.ends_with(b"\n") {
                b"\n"
            } else {
                b""
            };
            let body = &old[..old.len() - ending.len()];
            let mut fields: Vec<&[u8]> = body.split(|&b| b == b':').collect();
            if fields.len() < 2 {
                fields.push(b"");
            }
            fields[1] = hash.as_bytes();
            let mut new = fields.join(&b':');
            new.extend_from_slice(ending);
            lines[i] = new;
        }
        Edit::Delete(name) => {
            let i =
                find(&lines, name).ok_or_else(|| AdminError::Refused(format!("no user {name}")))?;
            lines.remove(i);
        }
    }
    Ok(lines.concat())
}

/// Hold the edit lock of `passwd` (waits for another admin's edit to finish).
fn lock(passwd: &Path) -> Result<File, AdminError> {
    let mut name = passwd.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    fs2::FileExt::lock_exclusive(&f).map_err(io_err(&path))?;
    Ok(f)
}

/// Replace `path` by `text` atomically, keeping its owner and mode (0600 for a new file:
/// it holds password hashes).
pub fn replace_file(path: &Path, text: &[u8]) -> Result<(), AdminError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(path)(e)),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.mboxpopd-{}.tmp", std::process::id()));
    let mode = meta.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        if let Some(m) = &meta {
            // Only root can give a file away; anyone else keeps the file theirs, which it
            // already is if they can edit it.
            match std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        }
        // After fchown, which clears set-id bits.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(&tmp))?;
        f.write_all(text).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Lock, read, edit, replace.
pub fn edit_file(passwd: &Path, edit: &Edit) -> Result<(), AdminError> {
    let _lock = lock(passwd)?;
    let text = match fs::read(passwd) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && matches!(edit, Edit::Add(..)) => {
            Vec::new()
        }
        Err(e) => return Err(io_err(passwd)(e)),
    };
    let new = apply_edit(&text, edit)?;
    replace_file(passwd, &new)
}

fn user_usage(opts: &getopts::Options) -> String {
    opts.usage(
        "Usage: mboxpopd user add NAME [--uid N] [--gid N] [--home DIR] [--mailbox PATH] \
         [-s SCHEME] [--stdin] [-c FILE]\n       \
         mboxpopd user passwd NAME [-s SCHEME] [--stdin] [-c FILE]\n       \
         mboxpopd user del NAME [-c FILE]\n       \
         mboxpopd user list [-c FILE]\n       \
         mboxpopd pw [-s SCHEME] [--stdin]\n\n\
         Manages the accounts of auth = passwd-file. The password is read twice from the \
         terminal without echo, or as one line from standard input with --stdin. \
         Schemes: yescrypt (default), sha512-crypt, sha256-crypt, bcrypt, md5-crypt, plain.",
    )
}

/// `mboxpopd user ...` / `mboxpopd pw ...`; `command` is `user` or `pw`.
pub fn main(command: &str, args: &[String], default_config: &Path) -> ExitCode {
    let mut opts = getopts::Options::new();
    opts.optopt("c", "", "configuration file", "FILE");
    opts.optopt(
        "s",
        "scheme",
        "password hash scheme (default yescrypt)",
        "SCHEME",
    );
    opts.optflag(
        "",
        "stdin",
        "read the password as one line from standard input",
    );
    opts.optopt("", "uid", "add: the account's uid", "N");
    opts.optopt("", "gid", "add: the account's gid", "N");
    opts.optopt("", "home", "add: the home directory (for %h)", "DIR");
    opts.optopt(
        "",
        "mailbox",
        "add: the mbox path (else the mailbox template)",
        "PATH",
    );
    opts.optflag("h", "help", "print this help");
    let result = opts
        .parse(args)
        .map_err(|e| AdminError::Usage(e.to_string()))
        .and_then(|m| {
            if m.opt_present("h") {
                print!("{}", user_usage(&opts));
                return Ok(());
            }
            run(command, &m, default_config)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(AdminError::Usage(m)) => {
            eprintln!("mboxpopd {command}: {m}\n\n{}", user_usage(&opts));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("mboxpopd {command}: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse_id(m: &getopts::Matches, opt: &str) -> Result<Option<u32>, AdminError> {
    match m.opt_str(opt) {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(0) => Err(AdminError::Usage(format!(
                "--{opt} 0 (root) is not allowed: the server refuses it"
            ))),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(AdminError::Usage(format!("--{opt} `{v}` is not a number"))),
        },
    }
}

/// A value for a passwd-file field: no separators, no line ends, no blanks (extra fields are
/// blank-separated).
fn field_value(m: &getopts::Matches, opt: &str) -> Result<Option<String>, AdminError> {
    let Some(v) = m.opt_str(opt) else {
        return Ok(None);
    };
    if v.chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(AdminError::Usage(format!(
            "--{opt} cannot contain `:`, blanks or control characters"
        )));
    }
    let absolute = v.starts_with('/') || (opt == "mailbox" && v.starts_with("~/"));
    if !absolute {
        return Err(AdminError::Usage(format!(
            "--{opt} must be an absolute path"
        )));
    }
    Ok(Some(v))
}

fn run(command: &str, m: &getopts::Matches, default_config: &Path) -> Result<(), AdminError> {
    let scheme = match m.opt_str("s") {
        Some(s) => Scheme::parse(&s)?,
        None => Scheme::Yescrypt,
    };
    let source = if m.opt_present("stdin") {
        PasswordSource::Stdin
    } else {
        PasswordSource::Terminal
    };
    if command == "pw" {
        if let Some(extra) = m.free.first() {
            return Err(AdminError::Usage(format!("unexpected argument `{extra}`")));
        }
        let pw = read_password(source)?;
        println!("{}", hash_password(&pw, scheme)?);
        return Ok(());
    }
    let (action, rest) = match m.free.split_first() {
        Some((a, rest)) => (a.as_str(), rest),
        None => return Err(AdminError::Usage(String::from("add, passwd, del or list?"))),
    };
    let config = match m.opt_str("c") {
        Some(path) => {
            Config::load(Path::new(&path)).map_err(|e| AdminError::Config(e.to_string()))?
        }
        None => match fs::metadata(default_config) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Config::default(),
            _ => Config::load(default_config).map_err(|e| AdminError::Config(e.to_string()))?,
        },
    };
    if matches!(config.auth, AuthBackend::System | AuthBackend::Pam) {
        return Err(AdminError::SystemAccounts);
    }
    let passwd = config
        .passwd_file
        .clone()
        .ok_or_else(|| AdminError::Config(String::from("auth = passwd-file needs passwd_file")))?;
    let name = || -> Result<String, AdminError> {
        let [name] = rest else {
            return Err(AdminError::Usage(format!("{action} takes one user name")));
        };
        username::validate(name)
            .map(str::to_owned)
            .map_err(|e| AdminError::Refused(format!("invalid user name {name:?}: {e}")))
    };
    let only = |allowed: &[&str]| -> Result<(), AdminError> {
        for opt in ["uid", "gid", "home", "mailbox", "s", "stdin"] {
            if m.opt_present(opt) && !allowed.contains(&opt) {
                let dash = if opt.len() == 1 { "-" } else { "--" };
                return Err(AdminError::Usage(format!(
                    "{dash}{opt} does not apply to `user {action}`"
                )));
            }
        }
        Ok(())
    };
    match action {
        "add" => {
            only(&["uid", "gid", "home", "mailbox", "s", "stdin"])?;
            let name = name()?;
            let account = NewAccount {
                uid: parse_id(m, "uid")?,
                gid: parse_id(m, "gid")?,
                home: field_value(m, "home")?,
                mailbox: field_value(m, "mailbox")?,
            };
            // Refuse a duplicate before asking for a password nobody will use.
            if let Ok(text) = fs::read(&passwd) {
                apply_edit(&text, &Edit::Add(name.clone(), String::new()))?;
            }
            let hash = hash_password(&read_password(source)?, scheme)?;
            edit_file(
                &passwd,
                &Edit::Add(name.clone(), account_line(&name, &hash, &account)),
            )?;
            eprintln!("mboxpopd user: added {name} to {}", passwd.display());
        }
        "passwd" => {
            only(&["s", "stdin"])?;
            let name = name()?;
            let text = fs::read(&passwd).map_err(io_err(&passwd))?;
            apply_edit(&text, &Edit::SetPassword(name.clone(), String::new()))?;
            let hash = hash_password(&read_password(source)?, scheme)?;
            edit_file(&passwd, &Edit::SetPassword(name.clone(), hash))?;
            eprintln!("mboxpopd user: changed the password of {name}");
        }
        "del" => {
            only(&[])?;
            let name = name()?;
            edit_file(&passwd, &Edit::Delete(name.clone()))?;
            eprintln!("mboxpopd user: deleted {name} (the mailbox is left in place)");
        }
        "list" => {
            only(&[])?;
            if !rest.is_empty() {
                return Err(AdminError::Usage(String::from("list takes no user name")));
            }
            let text = fs::read(&passwd).map_err(io_err(&passwd))?;
            let parsed = crate::auth::passwd_file::parse(&text);
            let show = |v: Option<String>| v.unwrap_or_else(|| String::from("-"));
            for e in parsed.entries {
                let a = e.account;
                println!(
                    "{}\tuid={}\tgid={}\thome={}\tmailbox={}",
                    a.name,
                    show(a.uid.map(|u| u.to_string())),
                    show(a.gid.map(|g| g.to_string())),
                    show(a.home.map(|h| h.display().to_string())),
                    show(a.mailbox.map(|p| p.display().to_string())),
                );
            }
            for w in parsed.warnings {
                eprintln!("{}:{}: {}", passwd.display(), w.line, w.message);
            }
        }
        other => {
            return Err(AdminError::Usage(format!(
                "unknown action `{other}` (add, passwd, del, list)"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_hashes_what_the_server_verifies() {
        for (scheme, prefix) in [
            (Scheme::Yescrypt, "$y$j9T$"),
            (Scheme::Sha512Crypt, "$6$"),
            (Scheme::Sha256Crypt, "$5$"),
            (Scheme::Bcrypt, "$2"),
            (Scheme::Md5Crypt, "$1$"),
            (Scheme::Plain, "{PLAIN}"),
        ] {
            let h = hash_password("pässwörd 1".as_bytes(), scheme).expect("hash");
            assert!(h.starts_with(prefix), "{h}");
            let secret = Secret::parse(&h).expect("parses");
            assert!(secret.verify("pässwörd 1".as_bytes()));
            assert!(!secret.verify(b"wrong"));
        }
        assert!(hash_password(b"a:b", Scheme::Plain).is_err());
        assert_eq!(
            Scheme::parse("SHA512-CRYPT").ok(),
            Some(Scheme::Sha512Crypt)
        );
        assert!(Scheme::parse("des").is_err());
    }

    #[test]
    fn lines_and_edits() {
        let a = NewAccount {
            uid: Some(1001),
            gid: None,
            home: Some("/home/c".into()),
            mailbox: Some("/var/mail/c".into()),
        };
        assert_eq!(
            account_line("c", "H", &a),
            "c:H:1001:::/home/c::mail=/var/mail/c"
        );
        assert_eq!(account_line("d", "H", &NewAccount::default()), "d:H");
        let text = b"# users\nalice:{PLAIN}x:1001:1001::/home/alice\r\nbob:H\n".to_vec();
        let added = apply_edit(&text, &Edit::Add("c".into(), "c:H2".into())).expect("add");
        assert!(added.ends_with(b"bob:H\nc:H2\n"));
        assert!(matches!(
            apply_edit(&added, &Edit::Add("alice".into(), "alice:y".into())),
            Err(AdminError::Refused(_))
        ));
        let changed = apply_edit(&added, &Edit::SetPassword("alice".into(), "$6$new".into()))
            .expect("passwd");
        assert_eq!(
            changed,
            b"# users\nalice:$6$new:1001:1001::/home/alice\r\nbob:H\nc:H2\n".to_vec()
        );
        let deleted = apply_edit(&changed, &Edit::Delete("bob".into())).expect("del");
        assert_eq!(
            deleted,
            b"# users\nalice:$6$new:1001:1001::/home/alice\r\nc:H2\n".to_vec()
        );
        assert!(apply_edit(&deleted, &Edit::Delete("bob".into())).is_err());
        // A missing final newline is repaired before appending.
        let added = apply_edit(b"x:H", &Edit::Add("y".into(), "y:H".into())).expect("add");
        assert_eq!(added, b"x:H\ny:H\n".to_vec());
    }

    #[test]
    fn replace_keeps_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("passwd");
        fs::write(&p, "a:H\n").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).expect("chmod");
        edit_file(&p, &Edit::Add("b".into(), "b:H".into())).expect("edit");
        assert_eq!(fs::read_to_string(&p).expect("read"), "a:H\nb:H\n");
        assert_eq!(fs::metadata(&p).expect("meta").mode() & 0o777, 0o640);
        let fresh = dir.path().join("new");
        edit_file(&fresh, &Edit::Add("a".into(), "a:H".into())).expect("create");
        assert_eq!(fs::metadata(&fresh).expect("meta").mode() & 0o777, 0o600);
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }
}
