//! The configuration file parser.
//!
//! Invariants: no panic; an error names a line that exists (or none) and, for a key error,
//! a key that occurs on that line; an accepted file parses the same way again and its
//! warnings can be computed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mboxpopd::config::{parse_duration, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(text);
    match Config::parse(text, "fuzz") {
        Ok(config) => {
            let _ = config.warnings();
            assert!(Config::parse(text, "fuzz").is_ok());
        }
        Err(e) => {
            assert_eq!(e.origin, "fuzz");
            let _ = e.to_string();
            if let Some(line) = e.line {
                assert!(
                    line >= 1 && line <= text.lines().count(),
                    "error on line {line}"
                );
                if let Some(key) = &e.key {
                    let l = text.lines().nth(line - 1).unwrap();
                    assert!(l.contains(key.as_str()), "key {key:?} not on line {line}");
                }
            }
        }
    }
});
