//! The integration tests: one test binary, one module per area, all driving the real
//! `mboxpopd` binary (or, for the storage modules, the library on real files) through the
//! harness in `common`.
//!
//! Areas, by module prefix: `protocol_*` (RFC behaviour on the wire), `server_*` (front ends,
//! privileges, PAM and system accounts, PROXY/XCLIENT), `storage_*` and `mbox_*` (the spool:
//! indexing, commits, crashes, caches), `tls_*`, `clients_*` (real POP3 clients), `deploy_*`
//! (the shipped etc/ files under the real inetd, xinetd, systemd, `make install`), `admin_cli`
//! and `diff_corpus` (against Dovecot).
//!
//! All modules share one process. Tests that need the machine to themselves (the load test,
//! timing bounds, edits of /etc) take `common::exclusive()`; every other test that uses the
//! harness holds `common::shared()` implicitly (see `common::isolation`).

mod common;

mod admin_cli;
mod clients_curl;
mod clients_fetchmail;
mod clients_mpop;
mod clients_poplib;
mod deploy_inetd;
mod deploy_install;
mod deploy_startup;
mod deploy_systemd;
mod deploy_xinetd;
mod diff_corpus;
mod mbox_bench;
mod mbox_popa3d_uidl;
mod mbox_roundtrip;
mod protocol_commands;
mod protocol_demo;
mod protocol_locking;
mod protocol_maildrop;
mod protocol_mbox_dialects;
mod protocol_sasl;
mod protocol_standalone;
mod server_driver;
mod server_pam;
mod server_privileges;
mod server_proxy;
mod server_startup;
mod server_system_users;
mod storage_cache;
mod storage_concurrent;
mod storage_crash;
mod storage_daemon;
mod storage_faults;
mod storage_imapbase;
mod storage_index_races;
mod storage_mailbox;
mod storage_roundtrip;
mod tls_clients;
mod tls_robustness;
mod tls_startup;
mod tls_stls;
