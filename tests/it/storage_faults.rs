//! Failing disks: ENOSPC injected at every step of a commit, a real full file system (a small
//! tmpfs), and a read-only spool (a tmpfs remounted read-only). Mounting needs root; without it
//! those two tests say so and skip, the injected-fault test always runs.

use crate::common::storage as storage_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mboxpopd::protocol::ports::Maildrop;
use mboxpopd::storage::journal::journal_path;
use mboxpopd::storage::lock::DotLock;
use mboxpopd::storage::mailbox::Mailbox;
use mboxpopd::storage::StoreError;
use storage_support::*;

/// The child: open and commit, then report the result on stdout.
#[test]
#[ignore = "helper process for the fault tests; run by them"]
fn child_commit_report() {
    let path = PathBuf::from(std::env::var("FAULT_MBOX").expect("FAULT_MBOX"));
    let deleted: Vec<usize> = std::env::var("FAULT_DELETE")
        .expect("FAULT_DELETE")
        .split(',')
        .map(|s| s.parse().expect("index"))
        .collect();
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    match mb.commit(&deleted) {
        Ok(_) => println!("\nRESULT ok"),
        Err(StoreError::Temporary(m)) => println!("\nRESULT temporary {m}"),
        Err(e) => println!("\nRESULT other {e}"),
    }
}

#[test]
fn enospc_at_every_step_leaves_the_old_mailbox_and_a_temporary_error() {
    enospc_at_every_step(&[]);
}

/// The same where the kernel cannot copy between the files (copy_file_range unsupported): the
/// journal and the roll-back copy through user space, and every step of that fails as well.
#[test]
fn enospc_at_every_step_of_the_user_space_copy() {
    enospc_at_every_step(&[("MBOXPOPD_FAULT_NO_COPY_RANGE", String::from("1"))]);
}

fn enospc_at_every_step(extra_env: &[(&str, String)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let msgs: Vec<Vec<u8>> = (0..8).map(|i| message(&format!("e{i}"), 12)).collect();
    let old = mbox(&msgs);
    let new = mbox(&[&msgs[..2], &msgs[3..6], &msgs[7..]].concat());
    let mut failures = 0;
    for step in 1u64.. {
        write_file(&path, &old);
        let mut env = vec![
            ("FAULT_MBOX", path.display().to_string()),
            ("FAULT_DELETE", String::from("2,6")),
            ("MBOXPOPD_FAULT_AT", step.to_string()),
            ("MBOXPOPD_FAULT_MODE", String::from("enospc")),
            ("MBOXPOPD_FAULT_CHUNK", String::from("200")),
        ];
        env.extend_from_slice(extra_env);
        let out = spawn_child("child_commit_report", &env)
            .wait_with_output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "step {step}: {stdout} {stderr}");
        let injected = stderr.contains("fault injected");
        let result = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap_or_else(|| panic!("step {step}: no result: {stdout}"))
            .to_owned();
        let after_truncate = stderr.contains("mailbox fsync after truncate fails");
        if result == "ok" {
            assert_eq!(fs::read(&path).expect("read"), new, "step {step}");
        } else {
            assert!(
                result.starts_with("temporary") && result.contains("disk full"),
                "step {step}: {result}"
            );
            failures += 1;
            let expected = if after_truncate { &new } else { &old };
            assert_eq!(
                &fs::read(&path).expect("read"),
                expected,
                "step {step}: {result}"
            );
            if !after_truncate {
                assert!(!journal_path(&path).exists(), "step {step}: journal left");
            }
        }
        assert!(
            !DotLock::path_for(&path).exists(),
            "step {step}: dot-lock left"
        );
        // Whatever was left, the next session sees a consistent mailbox and cleans up.
        let mb = Mailbox::open(&path, &options()).expect("reopen");
        let expect_n = if result == "ok" || after_truncate {
            6
        } else {
            8
        };
        assert_eq!(mb.messages().len(), expect_n, "step {step}");
        drop(mb);
        assert!(
            !journal_path(&path).exists(),
            "step {step}: journal after reopen"
        );
        if !injected {
            assert!(failures > 10, "too few failing steps: {failures}");
            break;
        }
    }
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Mount(dir.to_owned()))
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "remount read-only failed");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A child forked by a parallel test may hold a descriptor for an instant (until its
        // exec closes it): retry, then detach lazily rather than leave the mount behind.
        for _ in 0..20 {
            let ok = Command::new("umount")
                .arg(&self.0)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_file_system_refuses_the_journal_and_keeps_the_mailbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = Mount::tmpfs(dir.path(), "1m") else {
        return;
    };
    let path = dir.path().join("u");
    // ~640 KB of mail in a 1 MB file system: journalling from the first message cannot fit.
    let msgs: Vec<Vec<u8>> = (0..80).map(|i| message(&format!("f{i}"), 180)).collect();
    let old = mbox(&msgs);
    write_file(&path, &old);

    let mut mb = Mailbox::open(&path, &options()).expect("open");
    match mb.commit(&[0]) {
        Err(StoreError::Temporary(m)) => assert!(m.contains("disk full"), "{m}"),
        other => panic!("expected a temporary error, got {other:?}"),
    }
    assert_eq!(fs::read(&path).expect("read"), old);
    assert!(!journal_path(&path).exists());
    assert!(!DotLock::path_for(&path).exists());

    // Now fill the file system to the last byte: logging in still works (the dot-lock cannot
    // be created, the fcntl lock is enough), and deleting the last message, which needs no
    // journal, frees space.
    let filler = dir.path().join("filler");
    let mut f = fs::File::create(&filler).expect("filler");
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    assert!(
        fs::write(dir.path().join("probe"), b"x").is_err(),
        "the disk is not full"
    );
    let mut mb = Mailbox::open(&path, &options()).expect("open on a full disk");
    mb.commit(&[79]).expect("tail commit on a full disk");
    assert_eq!(fs::read(&path).expect("read"), mbox(&msgs[..79]));
    assert!(!journal_path(&path).exists());
    assert!(!DotLock::path_for(&path).exists());
}

#[test]
fn read_only_spool_serves_but_refuses_deletions_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mount) = Mount::tmpfs(dir.path(), "4m") else {
        return;
    };
    let path = dir.path().join("u");
    let msgs: Vec<Vec<u8>> = (0..3).map(|i| message(&format!("o{i}"), 5)).collect();
    write_file(&path, &mbox(&msgs));
    mount.remount_read_only();

    let mut mb = Mailbox::open(&path, &options()).expect("open read-only");
    assert_eq!(mb.messages().len(), 3);
    let mut out = Vec::new();
    mb.write_message(1, None, &mut out).expect("retr");
    assert!(!out.is_empty());
    match mb.commit(&[0]) {
        Err(StoreError::Permanent(m)) => assert!(m.contains("read-only"), "{m}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(fs::read(&path).expect("read"), mbox(&msgs));
    // QUIT without deletions is fine.
    let mut mb = Mailbox::open(&path, &options()).expect("open");
    mb.commit(&[]).expect("nothing to do");
}
