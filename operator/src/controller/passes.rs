//! The external pass of a resource (its keys, policies and roles in OpenBao, its buckets and
//! credentials in S3) is the costly part of a reconcile: several calls to each server. Most
//! reconciles are woken by something that cannot have changed it (a Job of the node
//! finishing, an owned object's status). [`Passes`] remembers, per resource, what its last
//! successful pass was computed from (a fingerprint of the spec and of whatever else the pass
//! depends on) and when; the pass is skipped while that is unchanged, and done in full at
//! least every [`FULL_CHECK`], so that drift made outside the operator (a bucket policy
//! removed by hand) is still found. Changing any annotation of the resource forces a full
//! pass at once.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a resource's external state goes unchecked. Shorter than the controllers'
/// periodic resync, so that every resync checks in full.
pub const FULL_CHECK: Duration = Duration::from_secs(540);

type Entry = (u64, Instant, Arc<dyn Any + Send + Sync>);

/// The last successful external pass of each resource, and what it found.
#[derive(Default)]
pub struct Passes(Mutex<HashMap<String, Entry>>);

impl Passes {
    /// What the last pass of `key` found, if it was computed from `fingerprint` less than
    /// [`FULL_CHECK`] ago.
    pub fn recent<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        fingerprint: u64,
    ) -> Option<T> {
        let held = self.0.lock().ok()?;
        let (from, at, found) = held.get(key)?;
        if *from != fingerprint || at.elapsed() >= FULL_CHECK {
            return None;
        }
        found.downcast_ref::<T>().cloned()
    }

    /// Records a successful pass of `key` from `fingerprint`, and what it found.
    pub fn record<T: Send + Sync + 'static>(&self, key: &str, fingerprint: u64, found: T) {
        if let Ok(mut held) = self.0.lock() {
            held.insert(
                key.to_owned(),
                (fingerprint, Instant::now(), Arc::new(found)),
            );
        }
    }

    /// Forgets `key`: its next reconcile makes a full pass.
    pub fn forget(&self, key: &str) {
        if let Ok(mut held) = self.0.lock() {
            held.remove(key);
        }
    }
}

/// A fingerprint of what a resource's external pass depends on: its identity, its spec's
/// generation and its annotations, and `more` (for a hub, its members). Pure.
pub fn fingerprint(meta: &kube::core::ObjectMeta, more: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.uid.hash(&mut h);
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    more.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_skipped_only_while_nothing_it_depends_on_changed() {
        let passes = Passes::default();
        let mut meta = kube::core::ObjectMeta {
            uid: Some("u".into()),
            generation: Some(1),
            ..Default::default()
        };
        let first = fingerprint(&meta, ());
        assert_eq!(passes.recent::<u8>("n", first), None, "never checked");
        passes.record("n", first, 7u8);
        assert_eq!(passes.recent::<u8>("n", first), Some(7));
        meta.generation = Some(2);
        assert_eq!(
            passes.recent::<u8>("n", fingerprint(&meta, ())),
            None,
            "new spec"
        );
        meta.generation = Some(1);
        meta.annotations = Some([("touch".to_string(), "1".to_string())].into());
        assert_eq!(
            passes.recent::<u8>("n", fingerprint(&meta, ())),
            None,
            "annotated"
        );
        assert!(
            passes
                .recent::<u8>("n", fingerprint(&meta, ("member", 3)))
                .is_none(),
            "another member"
        );
        passes.forget("n");
        assert_eq!(passes.recent::<u8>("n", first), None, "forgotten");
    }
}
