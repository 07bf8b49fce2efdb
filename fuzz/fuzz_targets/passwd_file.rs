//! The passwd-file parser (Dovecot-style `user:secret:uid:gid:gecos:home:shell:extra`).
//!
//! Invariants: no panic; user names are unique and pass the username validation; uid/gid 0
//! is never accepted; home directories are absolute; warnings name existing lines, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mboxpopd::auth::passwd_file::parse;
use mboxpopd::auth::username;

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    let lines = data.split(|&b| b == b'\n').count();
    let mut names = std::collections::HashSet::new();
    for e in &parsed.entries {
        let a = &e.account;
        assert!(names.insert(a.name.clone()), "duplicate user {:?}", a.name);
        assert!(
            username::validate(&a.name).is_ok(),
            "invalid name {:?}",
            a.name
        );
        assert_ne!(a.uid, Some(0));
        assert_ne!(a.gid, Some(0));
        if let Some(home) = &a.home {
            assert!(home.is_absolute());
        }
    }
    let mut last = 0;
    for w in &parsed.warnings {
        assert!(w.line >= 1 && w.line <= lines);
        assert!(w.line >= last);
        last = w.line;
    }
});
