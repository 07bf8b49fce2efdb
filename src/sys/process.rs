//! Who a process is, beyond its pid: its start time (`/proc/PID/stat` field 22, in clock ticks
//! since boot) and the boot it belongs to (`/proc/sys/kernel/random/boot_id`). A pid is reused
//! after its process exits; the pair (boot id, pid, start time) is not.

use std::fs;
use std::sync::OnceLock;

/// This boot's id, read once. `None` without /proc.
pub fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(|| {
        let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| id.to_owned())
    })
    .as_deref()
}

/// The host name as the kernel has it (`uname -n`), read once.
pub fn host_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| String::from("localhost"))
    })
}

/// The start time of process `pid` in clock ticks after boot, or `None` when there is no such
/// process (or /proc does not show it to us).
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    parse_start_time(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process's start time, read once.
pub fn own_start_time() -> Option<u64> {
    static T: OnceLock<Option<u64>> = OnceLock::new();
    *T.get_or_init(|| parse_start_time(&fs::read_to_string("/proc/self/stat").ok()?))
}

/// Field 22 of a `/proc/PID/stat` line. Field 2, the command name in parentheses, may itself
/// contain spaces and parentheses, so counting starts after the *last* `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts with field 3 (the state): field 22 is the 20th from there.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_a_hostile_command_name() {
        let line = "4242 (a) b) (c ) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 9 9";
        assert_eq!(parse_start_time(line), Some(424242));
        assert_eq!(parse_start_time("12 (x) S 1 2"), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn own_start_time_matches_proc_self_and_a_dead_child_has_none() {
        let me = own_start_time().expect("own start time");
        assert_eq!(start_time(std::process::id() as i32), Some(me));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        assert_eq!(start_time(pid), None);
        assert!(boot_id().is_some_and(|b| b.len() >= 32));
        assert!(!host_name().is_empty());
    }
}
