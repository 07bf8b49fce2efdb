//! `make install` into a staging directory (DESTDIR, PREFIX=/usr as a package would):
//! the files, their modes, man pages that render, the example configuration that passes
//! `mboxpopd -t`, and /etc/mboxpopd.conf installed only when there is none.
//!
//! `CARGO=true BIN=<binary under test>` keeps make from starting a release build. Needs
//! `make` (and `man` from man-db for the rendering check); otherwise `SKIPPED: ...`.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn make_install(destdir: &Path, prefix: &str) -> (bool, String) {
    let (st, out, err) = run(Command::new("make")
        .arg("-C")
        .arg(REPO)
        .arg("--no-print-directory")
        .arg("install")
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("PREFIX={prefix}"))
        .arg("CARGO=true")
        .arg(format!("BIN={}", binary().display())));
    (st.success(), format!("{out}{err}"))
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn staged_install_files_modes_and_config_kept() {
    if require("make").is_none() {
        return;
    }
    let stage = tempfile::tempdir().expect("tempdir");
    let d = stage.path();
    let (ok, out) = make_install(d, "/usr");
    assert!(ok, "make install failed:\n{out}");
    assert!(out.contains("installed"), "{out}");

    let expect = [
        ("usr/sbin/mboxpopd", 0o755),
        ("usr/share/man/man8/mboxpopd.8", 0o644),
        ("usr/share/man/man5/mboxpopd.conf.5", 0o644),
        ("usr/share/doc/mboxpopd/README.md", 0o644),
        ("usr/share/doc/mboxpopd/examples/mboxpopd.conf", 0o644),
        ("usr/share/doc/mboxpopd/examples/passwd.example", 0o644),
        ("usr/share/doc/mboxpopd/examples/inetd.conf", 0o644),
        ("usr/share/doc/mboxpopd/examples/xinetd.d/pop3", 0o644),
        (
            "usr/share/doc/mboxpopd/examples/systemd/mboxpopd.service",
            0o644,
        ),
        (
            "usr/share/doc/mboxpopd/examples/systemd/mboxpopd.socket",
            0o644,
        ),
        (
            "usr/share/doc/mboxpopd/examples/systemd/mboxpopd@.service",
            0o644,
        ),
        ("usr/share/doc/mboxpopd/examples/pam.d/mboxpopd", 0o644),
        ("etc/mboxpopd.conf", 0o644),
        ("etc/pam.d/mboxpopd", 0o644),
    ];
    for (f, m) in expect {
        assert_eq!(mode(&d.join(f)), m, "mode of {f}");
    }
    assert_eq!(
        fs::read(d.join("etc/mboxpopd.conf")).unwrap(),
        fs::read(Path::new(REPO).join("etc/mboxpopd.conf")).unwrap()
    );

    // The installed example configuration (every key commented) is valid as it stands.
    let (st, out, err) = run(Command::new(d.join("usr/sbin/mboxpopd"))
        .arg("-t")
        .arg("-c")
        .arg(d.join("etc/mboxpopd.conf")));
    assert!(
        st.success(),
        "mboxpopd -t on the installed config: {out}{err}"
    );
    assert!(out.contains("configuration OK"), "{out}");

    assert_eq!(
        fs::read(d.join("etc/pam.d/mboxpopd")).unwrap(),
        fs::read(Path::new(REPO).join("etc/pam.d/mboxpopd")).unwrap()
    );

    // An admin's configuration is never overwritten, nor a PAM service copied from popa3d.
    fs::write(d.join("etc/mboxpopd.conf"), "# mine\n").unwrap();
    fs::write(d.join("etc/pam.d/mboxpopd"), "@include popa3d-like\n").unwrap();
    let (ok, out) = make_install(d, "/usr");
    assert!(ok, "second make install failed:\n{out}");
    assert!(out.contains("kept existing"), "{out}");
    assert_eq!(
        fs::read_to_string(d.join("etc/mboxpopd.conf")).unwrap(),
        "# mine\n"
    );
    assert!(
        out.contains("kept existing") && out.contains("pam.d/mboxpopd"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(d.join("etc/pam.d/mboxpopd")).unwrap(),
        "@include popa3d-like\n"
    );

    // The installed man pages render without groff warnings.
    if require("man").is_some() {
        for (page, title) in [
            ("usr/share/man/man8/mboxpopd.8", "MBOXPOPD(8)"),
            ("usr/share/man/man5/mboxpopd.conf.5", "MBOXPOPD.CONF(5)"),
        ] {
            let (st, out, err) = run(Command::new("man")
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .env("MAN_KEEP_STDERR", "1")
                .env("MANROFFOPT", "-ww")
                .arg("-l")
                .arg(d.join(page)));
            assert!(st.success(), "man -l {page}: {err}");
            assert!(out.contains(title), "man -l {page}:\n{out}");
            assert!(err.trim().is_empty(), "man -l {page} warnings:\n{err}");
        }
    }
}

/// With PREFIX=/usr the binary lands in /usr/sbin, and the installed examples (inetd.conf,
/// xinetd.d/pop3, systemd units), copied as the README says, must run that binary.
#[test]
fn installed_examples_run_the_installed_binary() {
    if require("make").is_none() {
        return;
    }
    let stage = tempfile::tempdir().expect("tempdir");
    let d = stage.path();
    let (ok, out) = make_install(d, "/usr");
    assert!(ok, "make install failed:\n{out}");
    let ex = d.join("usr/share/doc/mboxpopd/examples");
    for f in [
        "inetd.conf",
        "xinetd.d/pop3",
        "systemd/mboxpopd.service",
        "systemd/mboxpopd@.service",
    ] {
        let text = fs::read_to_string(ex.join(f)).unwrap();
        assert!(
            !text.contains("/usr/local/sbin/mboxpopd"),
            "{f} refers to /usr/local/sbin/mboxpopd, installed binary is /usr/sbin/mboxpopd"
        );
        assert!(text.contains("/usr/sbin/mboxpopd"), "{f}: {text}");
    }
}
