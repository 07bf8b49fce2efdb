//! The concurrency gate in front of password hashing.

use std::sync::{Condvar, Mutex, OnceLock};

/// Bounds how many hash verifications run at once. They are CPU-bound, so running more than
/// there are cores only adds latency, and each yescrypt verification at Debian's default cost
/// allocates 16 MiB: 200 connections sending PASS together would otherwise want 3 GiB.
pub(super) struct Gate {
    busy: Mutex<usize>,
    freed: Condvar,
}

pub(super) struct GateSlot<'a>(&'a Gate);

impl Gate {
    const fn new() -> Gate {
        Gate {
            busy: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn limit() -> usize {
        static LIMIT: OnceLock<usize> = OnceLock::new();
        *LIMIT.get_or_init(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2)
        })
    }

    pub(super) fn enter(&self) -> GateSlot<'_> {
        let limit = Gate::limit();
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= limit {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        GateSlot(self)
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for GateSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy -= 1;
        self.0.freed.notify_one();
    }
}

pub(super) static HASH_GATE: Gate = Gate::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_verifications_are_bounded() {
        let limit = Gate::limit();
        let gate = std::sync::Arc::new(Gate::new());
        let peak = std::sync::Arc::new(Mutex::new(0usize));
        let threads: Vec<_> = (0..limit * 3)
            .map(|_| {
                let (gate, peak) = (gate.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _slot = gate.enter();
                    let now = gate.in_use();
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(now);
                    drop(p);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let peak = *peak.lock().unwrap();
        assert!(peak <= limit && peak >= 1, "peak {peak}, limit {limit}");
        assert_eq!(gate.in_use(), 0);
    }
}
