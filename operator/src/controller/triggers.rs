//! Which watch events wake a reconcile. Most of what the API server sends about an object is
//! its status, which reconciles write: a status-only update of an object that another
//! object's reconcile reads only for its spec wakes nobody. At 2,100 datasets this is most of
//! the roll-out's work: every status write of a regional node woke its 100 datasets, and
//! every dataset's own status write woke it again.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::watcher;

/// What in an object a reconcile acts on: its spec (by generation), its annotations (pause,
/// a forced pass) and whether it is being deleted. Status is left out.
fn intent<K: Resource>(obj: &K) -> u64 {
    let meta = obj.meta();
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

fn key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{:?}/{:?}", obj.meta().namespace, obj.meta().name))
}

/// The objects of a watch whose spec, annotations or deletion changed (and each the first
/// time it is seen, and when it is deleted); their status-only updates are dropped.
pub fn intent_changes<K: Resource>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) -> impl Stream<Item = Result<K, watcher::Error>> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    events.flat_map(move |event| {
        let out = match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let print = intent(&obj);
                (seen.insert(key(&obj), print) != Some(print)).then_some(Ok(obj))
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&key(&obj));
                Some(Ok(obj))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        futures::stream::iter(out)
    })
}

/// A filter for a shared watch's objects (which come without their event): true the first
/// time an object is seen and whenever its spec, annotations or deletion changed. It keeps
/// one fingerprint per object; when it holds twice as many as at its last clean-up, it
/// forgets those `alive` (the watch's store) no longer holds.
pub fn intent_changed<K: Resource>(
    alive: impl Fn() -> Vec<std::sync::Arc<K>>,
) -> impl FnMut(&K) -> bool {
    const AT_LEAST: usize = 64;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut limit = AT_LEAST;
    move |obj| {
        let print = intent(obj);
        let changed = seen.insert(key(obj), print) != Some(print);
        if seen.len() > limit {
            let keep: std::collections::HashSet<String> =
                alive().iter().map(|o| key(o.as_ref())).collect();
            seen.retain(|k, _| keep.contains(k));
            limit = (2 * seen.len()).max(AT_LEAST);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn object(uid: &str, generation: i64, status: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                generation: Some(generation),
                ..Default::default()
            },
            // Stands in for a status: anything outside the metadata.
            data: Some([("status".to_string(), status.to_string())].into()),
            ..Default::default()
        }
    }

    fn uids(objects: Vec<Result<ConfigMap, watcher::Error>>) -> Vec<String> {
        objects
            .into_iter()
            .map(|o| {
                let o = o.expect("no error");
                format!(
                    "{}@{}",
                    o.metadata.uid.unwrap_or_default(),
                    o.metadata.generation.unwrap_or_default()
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn status_only_updates_are_dropped_spec_changes_and_deletions_pass() {
        let mut annotated = object("a", 2, "ready");
        annotated.metadata.annotations =
            Some([("vardhub.io/reconciliation-paused".into(), "true".into())].into());
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(object("a", 1, "new"))),
            Ok(watcher::Event::InitApply(object("b", 1, "new"))),
            Ok(watcher::Event::InitDone),
            // Status writes: dropped.
            Ok(watcher::Event::Apply(object("a", 1, "progressing"))),
            Ok(watcher::Event::Apply(object("a", 1, "ready"))),
            // A spec change, then an annotation: passed.
            Ok(watcher::Event::Apply(object("a", 2, "ready"))),
            Ok(watcher::Event::Apply(annotated)),
            // A deletion passes even with nothing else changed.
            Ok(watcher::Event::Delete(object("b", 1, "new"))),
            // Seen again after its deletion: new.
            Ok(watcher::Event::Apply(object("b", 1, "new"))),
        ];
        let passed: Vec<_> = intent_changes(futures::stream::iter(events))
            .collect()
            .await;
        assert_eq!(
            uids(passed),
            ["a@1", "b@1", "a@2", "a@2", "b@1", "b@1"],
            "first sightings, the spec change, the annotation, the deletion, the new b"
        );
    }

    #[test]
    fn a_shared_watch_filter_passes_changes_and_forgets_the_deleted() {
        let alive = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let live = alive.clone();
        let mut changed = intent_changed::<ConfigMap>(move || live.lock().expect("lock").clone());
        assert!(changed(&object("a", 1, "new")));
        assert!(!changed(&object("a", 1, "ready")), "a status write");
        assert!(changed(&object("a", 2, "ready")), "a spec change");
        // Many objects seen and gone: once the store holds only `a`, the rest are forgotten.
        *alive.lock().expect("lock") = vec![std::sync::Arc::new(object("a", 2, "ready"))];
        for i in 0..200 {
            assert!(changed(&object(&format!("gone-{i}"), 1, "new")));
        }
        assert!(!changed(&object("a", 2, "ready")), "a is still known");
        assert!(
            changed(&object("gone-0", 1, "new")),
            "a forgotten object counts as new, which costs one reconcile"
        );
    }
}
