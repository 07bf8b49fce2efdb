//! A throwaway PKI made with the `openssl` command at test time: a CA, server certificates for
//! `localhost`/127.0.0.1, and the broken variants the startup checks must catch. Shared by the
//! unit tests in src/transport/tls.rs (through `#[path]`) and the tests in tests/it/tls_*.rs.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    ca_key: PathBuf,
    /// Server certificate (leaf only) and its PKCS#8 key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Run `openssl` in `dir`; panics with its stderr when it fails (test setup only).
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is installed");
    assert!(
        out.status.success(),
        "openssl {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=mboxpopd test CA",
            ],
        );
        let pki = Pki {
            ca: d.join("ca.pem"),
            ca_key: d.join("ca.key"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            dir,
        };
        pki.issue("server", "localhost", "rsa:2048");
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new key and a certificate for `cn` signed by the CA, valid 30 days, with
    /// SAN localhost + 127.0.0.1 + ::1. `newkey` is e.g. `rsa:2048` or `ec` (P-256).
    /// Returns (`NAME.pem`, `NAME.key`).
    pub fn issue(&self, name: &str, cn: &str, newkey: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let subj = format!("/CN={cn}");
        if newkey == "ec" {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &key,
                ],
            );
            openssl(
                d,
                &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
            );
        } else {
            openssl(
                d,
                &[
                    "req", "-new", "-newkey", newkey, "-nodes", "-keyout", &key, "-out", &csr,
                    "-subj", &subj,
                ],
            );
        }
        let ext = self.path("san.ext");
        fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-sha256",
                "-extfile",
                "san.ext",
                "-out",
                &pem,
            ],
        );
        (d.join(pem), d.join(key))
    }

    /// A certificate whose validity ended in 2021 (signed with `openssl ca`, which alone
    /// accepts explicit dates). Returns (cert, key).
    pub fn expired(&self) -> (PathBuf, PathBuf) {
        self.dated("expired", "20200101000000Z", "20210101000000Z")
    }

    /// A certificate valid only from 2099 on.
    pub fn not_yet_valid(&self) -> (PathBuf, PathBuf) {
        self.dated("future", "20990101000000Z", "20991231000000Z")
    }

    fn dated(&self, name: &str, start: &str, end: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ],
        );
        let db = format!("{name}.index");
        fs::write(d.join(&db), "").expect("index");
        fs::write(d.join(format!("{name}.serial")), "1000\n").expect("serial");
        let cnf = format!("{name}.cnf");
        fs::write(
            d.join(&cnf),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {name}.index\nnew_certs_dir = .\n\
                 serial = {name}.serial\ndefault_md = sha256\npolicy = p\n\
                 unique_subject = no\n[p]\ncommonName = supplied\n"
            ),
        )
        .expect("ca config");
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                &cnf,
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-in",
                &csr,
                "-out",
                &pem,
                "-startdate",
                start,
                "-enddate",
                end,
                "-notext",
            ],
        );
        (d.join(pem), d.join(key))
    }

    /// `key` rewritten as a traditional `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY` file.
    pub fn traditional(&self, key: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        let k = key.to_str().expect("utf-8 path");
        let o = path.to_str().expect("utf-8 path");
        openssl(
            self.dir.path(),
            &["pkey", "-in", k, "-traditional", "-out", o],
        );
        path
    }

    /// `key` encrypted with a passphrase.
    pub fn encrypted(&self, key: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        let k = key.to_str().expect("utf-8 path");
        let o = path.to_str().expect("utf-8 path");
        openssl(
            self.dir.path(),
            &[
                "pkey",
                "-in",
                k,
                "-aes256",
                "-passout",
                "pass:secret",
                "-out",
                o,
            ],
        );
        path
    }

    /// A PKCS#12 bundle of cert + key (+ CA) with an empty password.
    pub fn pkcs12(&self, cert: &Path, key: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        openssl(
            self.dir.path(),
            &[
                "pkcs12",
                "-export",
                "-in",
                cert.to_str().expect("utf-8"),
                "-inkey",
                key.to_str().expect("utf-8"),
                "-certfile",
                "ca.pem",
                "-passout",
                "pass:",
                "-out",
                path.to_str().expect("utf-8"),
            ],
        );
        path
    }

    /// cert followed by the CA, as a fullchain.pem.
    pub fn fullchain(&self, cert: &Path, out: &str) -> PathBuf {
        let path = self.path(out);
        let mut data = fs::read(cert).expect("cert");
        data.extend(fs::read(&self.ca).expect("ca"));
        fs::write(&path, data).expect("write chain");
        path
    }
}
