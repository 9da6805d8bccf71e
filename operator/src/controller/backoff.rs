//! When to try again after a failed reconcile: exponentially later for each failure of the
//! same object in a row (5 s, 10 s, 20 s … up to 5 minutes), spread by ±20 % derived from the
//! object and the attempt, so that resources failing together (an OpenBao or S3 outage) do
//! not come back in step and hammer the server the moment it returns. A success resets the
//! object. [`delay`] is pure; [`Backoff`] keeps the counts per object.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use sha2::{Digest as _, Sha256};

use super::context::Context;

/// The wait after a first failure.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest wait, however many failures.
pub const MAX: Duration = Duration::from_secs(300);

/// Failures in a row, per object.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic elsewhere while holding the lock leaves plain counters behind: still usable.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one more failure of `key` and says when to try again.
    pub fn retry(&self, key: &str) -> Duration {
        let n = {
            let mut counts = self.counts();
            let n = counts.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        delay(n, key)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.counts().remove(key);
    }

    /// Failures of `key` in a row so far.
    pub fn failures(&self, key: &str) -> u32 {
        self.counts().get(key).copied().unwrap_or(0)
    }
}

/// The wait after the `failures`-th failure in a row of `key`. Pure.
pub fn delay(failures: u32, key: &str) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST.saturating_mul(1u32 << doublings).min(MAX);
    let digest = Sha256::digest(format!("{key}#{failures}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let spread = u64::from_be_bytes(first) as f64 / u64::MAX as f64;
    base.mul_f64(0.8 + 0.4 * spread)
}

/// The key of an object: kind, namespace and name.
pub fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The requeue after a failed reconcile of `obj`.
pub fn requeue<K: Resource<DynamicType = ()>>(obj: &K, ctx: &Context) -> Action {
    Action::requeue(ctx.backoff.retry(&key(obj)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_five_minutes_within_a_fifth_either_way() {
        for n in 1..=20u32 {
            let d = delay(n, "RegionalNode//a");
            let base = FIRST.saturating_mul(1 << (n - 1).min(16)).min(MAX);
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                "failure {n}: {d:?} around {base:?}"
            );
        }
        assert!(delay(2, "k") > delay(1, "k").mul_f64(1.3));
        assert!(delay(30, "k") <= MAX.mul_f64(1.2));
    }

    #[test]
    fn objects_failing_together_do_not_retry_in_step() {
        let waits: std::collections::BTreeSet<Duration> = (0..21)
            .map(|i| delay(3, &format!("RegionalNode//region-{i}")))
            .collect();
        assert!(waits.len() > 15, "{waits:?}");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Backoff::default();
        let first = b.retry("x");
        b.retry("x");
        assert_eq!(b.failures("x"), 2);
        b.succeeded("x");
        assert_eq!(b.failures("x"), 0);
        assert_eq!(b.retry("x"), first, "the same key and attempt wait alike");
    }
}
