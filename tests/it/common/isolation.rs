//! Which tests may run side by side. All test modules share one process (and the machine):
//! most tests can run concurrently, but a few cannot — the load-and-abuse test, tests that
//! assert timing bounds, tests that edit files under /etc. Those take [`exclusive`] and run
//! alone.
//!
//! Every other test is *shared*: the harness entry points ([`super::binary`],
//! [`super::Fixture::new`], the TLS and storage helpers) call [`shared`], which marks the
//! calling test for the rest of its life, so a test cannot forget it by using the harness.
//! A test that uses none of them (a pure library test) calls `shared()` itself.
//!
//! The mark is per test thread (libtest runs each test in a thread named after it) and is
//! released when that thread ends. Threads a test spawns itself (unnamed) take nothing: they
//! work under their test's mark, and must not wait for a lock their own test holds.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard};

struct State {
    readers: usize,
    writer: bool,
    writers_waiting: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    readers: 0,
    writer: false,
    writers_waiting: 0,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    // A test that panics never does so while holding this mutex; recover all the same.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait(g: MutexGuard<'static, State>) -> MutexGuard<'static, State> {
    CHANGED.wait(g).unwrap_or_else(|e| e.into_inner())
}

/// What the current thread holds.
enum Held {
    Nothing,
    Shared(SharedMark),
    /// With the number of live guards: helpers of one test may each take one.
    Exclusive(usize),
}

/// A shared hold, released when dropped (at the latest when its thread's locals are).
struct SharedMark;

impl Drop for SharedMark {
    fn drop(&mut self) {
        state().readers -= 1;
        CHANGED.notify_all();
    }
}

thread_local! {
    static HELD: RefCell<Held> = const { RefCell::new(Held::Nothing) };
}

/// A test's own thread, as opposed to `main` (which runs no test under libtest's threads)
/// or a helper thread a test spawned.
fn is_test_thread() -> bool {
    matches!(std::thread::current().name(), Some(n) if n != "main")
}

/// Marks the calling test as shared (idempotent): it waits while an exclusive test runs or
/// waits to run, then runs alongside other shared tests until it ends.
pub fn shared() {
    if !is_test_thread() {
        return;
    }
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if !matches!(*held, Held::Nothing) {
            return;
        }
        let mut s = state();
        // Waiting writers go first, so a steady stream of shared tests cannot starve them.
        while s.writer || s.writers_waiting > 0 {
            s = wait(s);
        }
        s.readers += 1;
        *held = Held::Shared(SharedMark);
    });
}

/// The machine to this test alone: waits until no other test runs, and keeps every other
/// test (shared or exclusive) from starting until the last guard this test holds is dropped.
/// A shared mark the test already holds is given up first.
#[must_use = "the test runs alone only while the guard lives"]
pub fn exclusive() -> Exclusive {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Held::Exclusive(n) = &mut *held {
            *n += 1;
            return;
        }
        // Drops a shared mark (readers - 1) before waiting for readers to reach zero.
        *held = Held::Nothing;
        let mut s = state();
        s.writers_waiting += 1;
        while s.writer || s.readers > 0 {
            s = wait(s);
        }
        s.writers_waiting -= 1;
        s.writer = true;
        *held = Held::Exclusive(1);
    });
    Exclusive {
        _not_send: PhantomData,
    }
}

/// Held by a test that runs alone; see [`exclusive`].
pub struct Exclusive {
    // Released through the taking thread's local state: it must be dropped there.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let last = HELD.with(|held| {
            let mut held = held.borrow_mut();
            match &mut *held {
                Held::Exclusive(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    *held = Held::Nothing;
                    true
                }
            }
        });
        if last {
            state().writer = false;
            CHANGED.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Runs `f` on a thread named like a test, as libtest does.
    fn as_test(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("spawn")
    }

    #[test]
    fn an_exclusive_test_never_overlaps_shared_ones() {
        let alone = exclusive();
        // Shared tests started meanwhile wait for the guard.
        let started = Arc::new(AtomicUsize::new(0));
        let sharers: Vec<_> = (0..3)
            .map(|i| {
                let started = started.clone();
                as_test(&format!("isolation::sharer{i}"), move || {
                    shared();
                    started.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(started.load(Ordering::SeqCst), 0, "a shared test ran");
        drop(alone);
        for s in sharers {
            s.join().expect("sharer");
        }
        assert_eq!(started.load(Ordering::SeqCst), 3);

        // And an exclusive test waits until running shared ones have ended.
        let ended = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(std::sync::Barrier::new(2));
        let (e, r) = (ended.clone(), running.clone());
        let sharer = as_test("isolation::long_sharer", move || {
            shared();
            r.wait();
            std::thread::sleep(Duration::from_millis(200));
            e.fetch_add(1, Ordering::SeqCst);
        });
        running.wait();
        let _alone = exclusive();
        assert_eq!(ended.load(Ordering::SeqCst), 1, "exclusive began too early");
        sharer.join().expect("sharer");
    }

    #[test]
    fn nested_exclusive_guards_release_on_the_last() {
        let outer = exclusive();
        let inner = exclusive();
        drop(inner);
        let blocked = as_test("isolation::blocked", shared);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!blocked.is_finished(), "released by the inner guard");
        drop(outer);
        blocked.join().expect("sharer");
    }
}
