//! What the daemon remembers about each client across its connections: the failure penalty
//! and the password checks in flight.
//!
//! A client is an address masked to a prefix (`client_prefix_ipv4`, default /32;
//! `client_prefix_ipv6`, default /64, since one IPv6 host owns a whole /64). Connection
//! limits, the penalty and the check cap all count per client.
//!
//! The penalty follows Dovecot's auth penalty: after `n` recent failures, the client's next
//! password check starts no earlier than `base * 2^(n-1)` (at most `max`) after its last
//! failure, on whichever connection it comes. A success forgets the client's failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// At most this many clients are remembered; beyond it the stalest records go first.
const MAX_RECORDS: usize = 100_000;

/// The client an address belongs to: the address masked to the configured prefix length.
pub fn client_key(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(v4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// How the penalty grows: `base` after one failure, doubling, capped at `max`.
pub fn penalty(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    base.saturating_mul(factor).min(max)
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    checks: usize,
}

/// The policy the table enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub penalty_base: Duration,
    pub penalty_max: Duration,
    pub max_checks: usize,
}

#[derive(Default)]
pub struct ClientTable {
    records: Mutex<HashMap<IpAddr, Record>>,
    changed: Condvar,
}

/// Why a check could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTimedOut;

/// A password check in flight for one client; dropping it frees the slot.
pub struct CheckSlot<'a> {
    table: &'a ClientTable,
    key: IpAddr,
}

impl Drop for CheckSlot<'_> {
    fn drop(&mut self) {
        let mut records = self.table.lock();
        if let Some(r) = records.get_mut(&self.key) {
            r.checks = r.checks.saturating_sub(1);
            if r.checks == 0 && r.failures == 0 {
                records.remove(&self.key);
            }
        }
        drop(records);
        self.table.changed.notify_all();
    }
}

impl ClientTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Record>> {
        // Each update is a few integer operations: a poisoned table is still consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until `key` may start a password check (its penalty has run out and fewer than
    /// `max_checks` of its checks are running), but not past `deadline`.
    pub fn begin_check(
        &self,
        key: IpAddr,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<CheckSlot<'_>, CheckTimedOut> {
        let mut records = self.lock();
        loop {
            let now = Instant::now();
            let ready_at = match records.get(&key) {
                None => now,
                Some(r) if r.checks >= limits.max_checks.max(1) => deadline,
                Some(r) => {
                    r.last_failure + penalty(r.failures, limits.penalty_base, limits.penalty_max)
                }
            };
            let busy = records
                .get(&key)
                .is_some_and(|r| r.checks >= limits.max_checks.max(1));
            if !busy && ready_at <= now {
                break;
            }
            if now >= deadline {
                return Err(CheckTimedOut);
            }
            let wait = ready_at.min(deadline).saturating_duration_since(now);
            records = self
                .changed
                .wait_timeout(records, wait.max(Duration::from_millis(1)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if records.len() >= MAX_RECORDS && !records.contains_key(&key) {
            forget_stale(&mut records);
        }
        records
            .entry(key)
            .or_insert(Record {
                failures: 0,
                last_failure: Instant::now(),
                checks: 0,
            })
            .checks += 1;
        Ok(CheckSlot { table: self, key })
    }

    /// Count a failed login of `key`; returns its recent failures.
    pub fn failed(&self, key: IpAddr) -> u32 {
        let mut records = self.lock();
        if records.len() >= MAX_RECORDS && !records.contains_key(&key) {
            forget_stale(&mut records);
        }
        let now = Instant::now();
        let r = records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            checks: 0,
        });
        if now.duration_since(r.last_failure) > FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        r.failures
    }

    /// A successful login forgets the client's failures.
    pub fn succeeded(&self, key: IpAddr) {
        let mut records = self.lock();
        if let Some(r) = records.get_mut(&key) {
            r.failures = 0;
            if r.checks == 0 {
                records.remove(&key);
            }
        }
        drop(records);
        self.changed.notify_all();
    }

    /// Clients remembered (for tests and the bound on memory).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drop expired records; if the table is still full, the half with the oldest failures.
fn forget_stale(records: &mut HashMap<IpAddr, Record>) {
    let now = Instant::now();
    records.retain(|_, r| r.checks > 0 || now.duration_since(r.last_failure) <= FORGET_AFTER);
    if records.len() >= MAX_RECORDS {
        let mut ages: Vec<Instant> = records.values().map(|r| r.last_failure).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        records.retain(|_, r| r.checks > 0 || r.last_failure > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_mask_to_the_prefix() {
        assert_eq!(client_key(ip("192.0.2.77"), 32, 64), ip("192.0.2.77"));
        assert_eq!(client_key(ip("192.0.2.77"), 24, 64), ip("192.0.2.0"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 32, 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2:3:4:5:6"), 32, 128),
            ip("2001:db8:1:2:3:4:5:6")
        );
        // IPv4-mapped addresses count as IPv4.
        assert_eq!(client_key(ip("::ffff:10.1.2.3"), 16, 64), ip("10.1.0.0"));
    }

    #[test]
    fn penalty_doubles_up_to_the_cap() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(15);
        let got: Vec<u64> = (0..7).map(|n| penalty(n, base, max).as_secs()).collect();
        assert_eq!(got, vec![0, 2, 4, 8, 15, 15, 15]);
        assert_eq!(penalty(u32::MAX, base, max), max);
        assert_eq!(penalty(3, Duration::ZERO, max), Duration::ZERO);
    }

    fn limits(base_ms: u64, max_checks: usize) -> Limits {
        Limits {
            penalty_base: Duration::from_millis(base_ms),
            penalty_max: Duration::from_secs(15),
            max_checks,
        }
    }

    #[test]
    fn a_failed_client_waits_out_its_penalty_on_any_connection() {
        let t = ClientTable::default();
        let k = ip("198.51.100.1");
        let far = Instant::now() + Duration::from_secs(10);
        drop(t.begin_check(k, &limits(100, 1), far).unwrap());
        assert_eq!(t.failed(k), 1);
        assert_eq!(t.failed(k), 2);
        // Two failures: the next check starts 200 ms after the last one.
        let start = Instant::now();
        drop(t.begin_check(k, &limits(100, 1), far).unwrap());
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(180), "{waited:?}");
        // Another client is not held up.
        let start = Instant::now();
        drop(
            t.begin_check(ip("198.51.100.2"), &limits(100, 1), far)
                .unwrap(),
        );
        assert!(start.elapsed() < Duration::from_millis(50));
        // A deadline before the penalty ends refuses.
        t.failed(k);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            t.begin_check(k, &limits(100, 1), soon).err(),
            Some(CheckTimedOut)
        );
        t.succeeded(k);
        assert!(t.begin_check(k, &limits(100, 1), soon).is_ok());
    }

    #[test]
    fn concurrent_checks_per_client_are_capped() {
        let t = Arc::new(ClientTable::default());
        let k = ip("203.0.113.9");
        let far = Instant::now() + Duration::from_secs(10);
        let first = t.begin_check(k, &limits(0, 1), far).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(t.begin_check(k, &limits(0, 1), soon).is_err());
        assert!(t
            .begin_check(ip("203.0.113.10"), &limits(0, 1), soon)
            .is_ok());
        let t2 = Arc::clone(&t);
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let ok = t2
                .begin_check(k, &limits(0, 1), Instant::now() + Duration::from_secs(5))
                .is_ok();
            (ok, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        let (ok, waited) = waiter.join().unwrap();
        assert!(ok && waited >= Duration::from_millis(80), "{waited:?}");
        assert!(t.is_empty(), "nothing kept for a client without failures");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = ClientTable::default();
        for i in 0..(MAX_RECORDS as u32 + 10) {
            t.failed(IpAddr::V4(i.into()));
        }
        assert!(t.len() <= MAX_RECORDS, "{}", t.len());
    }
}
