//! The dummy verifier that equalises the timing of login failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::hash::{CryptKind, Secret};

/// Spends the time of a failed verification when there is nothing real to verify against
/// (unknown user, disabled account), so login failures cannot be told apart by timing.
///
/// Dummies are built once per cost class (building one costs a hash computation) and cached.
#[derive(Default)]
pub struct DummyVerifier {
    cache: Mutex<HashMap<String, Arc<Secret>>>,
}

impl DummyVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verify `password` against a dummy of the same kind and cost as `like` and throw the
    /// result away. `None` means "no template known": the Debian default (yescrypt) is used.
    pub fn burn(&self, like: Option<&Secret>, password: &[u8]) {
        let fallback;
        let like = match like {
            Some(s) => s,
            None => {
                fallback = default_template();
                &fallback
            }
        };
        let key = like.cost_key();
        let cached = self
            .cache
            .lock()
            .map(|m| m.get(&key).cloned())
            .unwrap_or(None);
        let dummy = match cached {
            Some(d) => d,
            None => {
                let d = Arc::new(like.dummy());
                if let Ok(mut m) = self.cache.lock() {
                    m.insert(key, Arc::clone(&d));
                }
                d
            }
        };
        std::hint::black_box(dummy.verify(password));
    }
}

/// A yescrypt hash with Debian's default parameters (`$y$j9T$`, as `mkpasswd -m yescrypt`
/// and `chpasswd` write), the template when a backend has no real hash to imitate.
fn default_template() -> Secret {
    Secret::Crypt {
        kind: CryptKind::Yescrypt,
        hash: "$y$j9T$yCPnPvLO3.I2hp4XJwa/T.$gmEzyZm0a/6dX8ZgBEDOqFVqgzTj7GDP.L0XURqBC83".into(),
    }
}

/// Timing helpers for the "unknown users cost the same" tests of the backends.
#[cfg(test)]
pub(crate) mod timing {
    use std::time::Duration;

    fn thread_cpu_time() -> Duration {
        crate::sys::credentials::thread_cpu_time().unwrap()
    }

    /// The cheapest of `rounds` interleaved runs of each closure, in thread CPU time. Noise
    /// only ever adds (cache misses, interrupts), so the minimum measures the work itself.
    pub fn min_times(rounds: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
        let mut best = vec![Duration::MAX; runs.len()];
        for _ in 0..rounds {
            for (run, best) in runs.iter_mut().zip(best.iter_mut()) {
                let start = thread_cpu_time();
                run();
                *best = (*best).min(thread_cpu_time().saturating_sub(start));
            }
        }
        best
    }

    /// Panics unless every duration is within a factor of 3 of the first.
    pub fn assert_similar(times: &[Duration], labels: &[&str]) {
        for (t, label) in times.iter().zip(labels).skip(1) {
            let ratio = t.as_secs_f64() / times[0].as_secs_f64();
            assert!(
                (1.0 / 3.0..3.0).contains(&ratio),
                "{}: {:?} vs {label}: {t:?}",
                labels[0],
                times[0]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `$2b$` test vector of the hash tests (password "correct horse").
    const BCRYPT_2B: &str = "$2b$05$M89a0T4KUef52JhUwwwTjeRpjw2X8337VHB/v4GUrYswNHCXDTNQG";

    #[test]
    fn dummy_verifier_caches_per_cost_class() {
        let dv = DummyVerifier::new();
        let s = Secret::parse(BCRYPT_2B).unwrap();
        dv.burn(Some(&s), b"x");
        dv.burn(Some(&s), b"y");
        dv.burn(None, b"z");
        dv.burn(Some(&Secret::Plain(b"p".to_vec())), b"z");
        let keys = dv.cache.lock().unwrap().len();
        assert_eq!(keys, 3);
    }
}
