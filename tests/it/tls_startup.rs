//! A broken certificate setup is a startup error with a message naming the file, for `-t` and
//! for the daemon, never a runtime surprise.

use crate::common::tls as tls_support;

use std::fs;
use std::process::Output;

use tls_support::*;

fn assert_fails(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status {} for {stderr}",
        out.status
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
    }
    assert!(
        stderr.lines().count() <= 3,
        "not one clear message:\n{stderr}"
    );
}

#[test]
fn good_setup_passes_the_check() {
    let setup = Setup::new();
    let out = setup.check_config();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn expired_certificate() {
    let mut setup = Setup::new();
    let (cert, key) = setup.pki.expired();
    setup.cert = cert;
    setup.key = key;
    assert_fails(&setup.check_config(), &["expired", "expired.pem"]);
    assert_fails(&setup.start_failing(), &["expired", "expired.pem"]);
}

#[test]
fn key_of_another_certificate() {
    let mut setup = Setup::new();
    let (_, other) = setup.pki.issue("other", "other.localhost", "rsa:2048");
    setup.key = other;
    assert_fails(
        &setup.check_config(),
        &["does not match", "other.key", "fullchain.pem"],
    );
    assert_fails(&setup.start_failing(), &["does not match", "other.key"]);
}

#[test]
fn missing_and_encrypted_key() {
    let mut setup = Setup::new();
    let good = setup.key.clone();
    setup.key = setup.path("missing.key");
    assert_fails(&setup.check_config(), &["missing.key"]);
    assert_fails(&setup.start_failing(), &["missing.key"]);
    setup.key = setup.pki.encrypted(&good, "locked.key");
    assert_fails(&setup.check_config(), &["passphrase", "locked.key"]);
}

#[test]
fn certificate_file_without_certificate() {
    let mut setup = Setup::new();
    let junk = setup.path("junk.pem");
    fs::write(&junk, "-----BEGIN NOTHING-----\n-----END NOTHING-----\n").unwrap();
    setup.cert = junk;
    assert_fails(&setup.check_config(), &["junk.pem", "no PEM certificate"]);
}

#[test]
fn tls13_minimum_is_a_valid_setup() {
    let mut setup = Setup::new();
    setup.config("tls_min_version = 1.3");
    let out = setup.check_config();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
