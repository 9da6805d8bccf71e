//! Server-side apply with one field manager per controller.
//!
//! Each desired object is stamped (pure, [`stamp`]) with the labels that mark it as ours, an
//! owner reference and a hash of its desired content. [`Applier::apply`] reads the live object
//! and writes only when the live object no longer contains what we want (drift) or the desired
//! content changed (hash); a steady-state reconcile therefore sends no write at all.
//! [`Applier::prune`] deletes objects that carry our owner labels but were not desired in this
//! pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::telemetry::Metrics;

/// `app.kubernetes.io/managed-by` value on everything the operator creates.
pub const MANAGED_BY: &str = "vardhub-operator";
/// Label naming the kind of the vardhub resource that owns an object.
pub const OWNER_KIND_LABEL: &str = "vardhub.io/owner-kind";
/// Label naming the vardhub resource that owns an object.
pub const OWNER_NAME_LABEL: &str = "vardhub.io/owner-name";
/// Label naming the namespace of a namespaced owner.
pub const OWNER_NAMESPACE_LABEL: &str = "vardhub.io/owner-namespace";
/// Annotation holding a hash of the desired content, so that a field we stop setting is
/// noticed and removed by the next apply.
pub const HASH_ANNOTATION: &str = "vardhub.io/desired-hash";

/// The vardhub resource that owns the objects of one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// Namespace of a namespaced owner.
    pub namespace: Option<String>,
    /// UID of the owner; absent when rendering offline.
    pub uid: Option<String>,
}

impl Owner {
    /// The owner description of a resource.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.meta().name.clone().unwrap_or_default(),
            namespace: obj.meta().namespace.clone(),
            uid: obj.meta().uid.clone(),
        }
    }

    /// The labels that mark an object as owned by this owner.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                MANAGED_BY.to_string(),
            ),
            (
                "app.kubernetes.io/part-of".to_string(),
                "vardhub".to_string(),
            ),
            (OWNER_KIND_LABEL.to_string(), self.kind.clone()),
            (OWNER_NAME_LABEL.to_string(), self.name.clone()),
        ]);
        if let Some(ns) = &self.namespace {
            labels.insert(OWNER_NAMESPACE_LABEL.to_string(), ns.clone());
        }
        labels
    }

    /// A label selector matching every object this owner owns.
    pub fn selector(&self) -> String {
        self.labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn owner_reference(&self) -> Option<OwnerReference> {
        Some(OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone()?,
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }
}

/// A kind of object a controller creates, so that pruning knows where to look.
#[derive(Clone, Debug)]
pub struct OwnedKind {
    /// The API resource.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

impl OwnedKind {
    /// A namespaced kind.
    pub fn namespaced<
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    >() -> Self {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespaced: true,
        }
    }
    /// A cluster-scoped kind.
    pub fn cluster<K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>>()
    -> Self {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespaced: false,
        }
    }
}

/// One object a controller wants to exist.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// Its API resource.
    pub resource: ApiResource,
    /// The object itself, with `apiVersion` and `kind`.
    pub object: DynamicObject,
}

impl DesiredObject {
    /// Erases a typed object built by a pure build function.
    pub fn from_typed<K: Resource<DynamicType = ()> + Serialize>(
        obj: &K,
    ) -> Result<Self, serde_json::Error> {
        let resource = ApiResource::erase::<K>(&());
        let mut value = serde_json::to_value(obj)?;
        if let Value::Object(map) = &mut value {
            map.insert(
                "apiVersion".into(),
                Value::from(resource.api_version.clone()),
            );
            map.insert("kind".into(), Value::from(resource.kind.clone()));
        }
        Ok(Self {
            resource,
            object: serde_json::from_value(value)?,
        })
    }

    /// `Kind namespace/name`, for messages and for matching during pruning.
    pub fn key(&self) -> String {
        object_key(
            &self.resource.kind,
            self.object.metadata.namespace.as_deref(),
            &self.object.name_any(),
        )
    }

    /// The object as JSON, for rendering and comparison.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(&self.object).unwrap_or(Value::Null)
    }
}

fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Adds the owner labels, the owner reference (when the owner has a UID) and the hash of the
/// desired content. Pure: `render` uses it too, so offline output matches what is applied.
pub fn stamp(owner: &Owner, objects: Vec<DesiredObject>) -> Vec<DesiredObject> {
    objects
        .into_iter()
        .map(|mut d| {
            let meta = &mut d.object.metadata;
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .extend(owner.labels());
            // The hash covers content and labels but not the owner's UID, so that `render`
            // (which has no UID) gives the same hash as the controller.
            let hash = content_hash(&d.to_value());
            d.object
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(HASH_ANNOTATION.into(), hash);
            if let Some(reference) = owner.owner_reference() {
                d.object.metadata.owner_references = Some(vec![reference]);
            }
            d
        })
        .collect()
}

fn content_hash(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether everything `desired` sets is present with the same value in `live`. An empty
/// map, an empty list or null in `desired` matches an absent field, since the API server
/// drops them.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => contains(lv, dv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| contains(lv, dv))
        }
        (d, Value::Null) => is_empty(d),
        (d, l) => d == l,
    }
}

/// Whether a desired value means "unset": the API server drops empty strings, lists and
/// maps (`omitempty`), so their absence in the live object is no drift.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether the live object already holds the desired state: its owner labels, owner
/// references, annotations (including the hash) and every desired field outside metadata.
pub fn up_to_date(live: &DynamicObject, desired: &DynamicObject) -> bool {
    let (Ok(live), Ok(desired)) = (serde_json::to_value(live), serde_json::to_value(desired))
    else {
        return false;
    };
    let Value::Object(desired) = desired else {
        return false;
    };
    desired.iter().all(|(key, dv)| match key.as_str() {
        "metadata" => ["labels", "annotations", "ownerReferences"]
            .iter()
            .all(|field| contains(&live["metadata"][field], &dv[field])),
        "apiVersion" | "kind" => true,
        _ => contains(&live[key.as_str()], dv),
    })
}

/// An object the operator would write exists and is not owned by the resource being
/// reconciled: created by someone else, or by another resource. The operator never adopts,
/// changes or deletes it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{object} already exists and is not owned by this resource; the operator does not adopt, change or delete what it did not create"
)]
pub struct Foreign {
    /// The object, as `Kind namespace/name` (or `Kind name`).
    pub object: String,
    /// The object's kind.
    pub kind: String,
}

/// Why [`Applier::apply`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or could not be reached.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The object belongs to someone else.
    #[error(transparent)]
    Foreign(#[from] Foreign),
}

impl ApplyError {
    /// The controller's own error: `kube` wraps an API failure; a foreign object keeps its
    /// own variant.
    pub fn split<E: From<Foreign>>(self, kube: impl FnOnce(kube::Error) -> E) -> E {
        match self {
            ApplyError::Kube(e) => kube(e),
            ApplyError::Foreign(f) => f.into(),
        }
    }
}

/// Whether `live` is owned (as controller) by the owner the desired object names. An
/// object whose desired form names no owner (offline rendering) is never foreign.
pub fn owned_by_desired_owner(live: &DynamicObject, desired: &DynamicObject) -> bool {
    let Some(wanted) = desired
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.first())
    else {
        return true;
    };
    live.metadata.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.uid == wanted.uid && r.controller == Some(true))
    })
}

/// What [`Applier::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The live object already matched; nothing was sent.
    Unchanged,
    /// The object was created or patched.
    Applied,
}

/// Applies desired objects for one controller with its own field manager.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    controller: &'static str,
    metrics: Arc<Metrics>,
}

impl Applier {
    /// An applier whose field manager is `vardhub-<controller>`.
    pub fn new(client: Client, controller: &'static str, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            controller,
            metrics,
        }
    }

    /// The field manager used for every write.
    pub fn field_manager(&self) -> String {
        format!("vardhub-{}", self.controller)
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    /// Applies one object unless the live object already holds the desired state. An object
    /// that exists without the owner's controller reference is refused, never adopted.
    pub async fn apply(&self, desired: &DesiredObject) -> Result<Outcome, ApplyError> {
        let api = self.api(
            &desired.resource,
            desired.object.metadata.namespace.as_deref(),
        );
        let name = desired.object.name_any();
        if let Some(live) = api.get_opt(&name).await? {
            if !owned_by_desired_owner(&live, &desired.object) {
                tracing::warn!(object = %desired.key(), "refusing to take over an object this resource did not create");
                return Err(Foreign {
                    object: desired.key(),
                    kind: desired.resource.kind.clone(),
                }
                .into());
            }
            if up_to_date(&live, &desired.object) {
                return Ok(Outcome::Unchanged);
            }
        }
        let params = PatchParams::apply(&self.field_manager()).force();
        api.patch(&name, &params, &Patch::Apply(&desired.object))
            .await?;
        self.metrics
            .api_write(self.controller, &desired.resource.kind, "apply");
        tracing::info!(object = %desired.key(), "applied");
        Ok(Outcome::Applied)
    }

    /// Applies every object in order; returns how many were written.
    pub async fn apply_all(&self, desired: &[DesiredObject]) -> Result<usize, ApplyError> {
        let mut written = 0;
        for d in desired {
            if self.apply(d).await? == Outcome::Applied {
                written += 1;
            }
        }
        Ok(written)
    }

    /// Deletes objects of `kinds` that carry `owner`'s labels and its controller reference
    /// (labels alone can be copied by anyone) but are not in `keep`; returns how many were
    /// deleted.
    pub async fn prune(
        &self,
        owner: &Owner,
        kinds: &[OwnedKind],
        keep: &[DesiredObject],
    ) -> Result<usize, kube::Error> {
        let keep: BTreeSet<String> = keep.iter().map(DesiredObject::key).collect();
        let params = ListParams::default().labels(&owner.selector());
        let mut deleted = 0;
        for kind in kinds {
            let list = self
                .api(&kind.resource, None)
                .list_metadata(&params)
                .await?;
            for item in list.items {
                let key = object_key(
                    &kind.resource.kind,
                    item.metadata.namespace.as_deref(),
                    &item.name_any(),
                );
                let ours = item.metadata.owner_references.as_ref().is_some_and(|refs| {
                    refs.iter()
                        .any(|r| Some(&r.uid) == owner.uid.as_ref() && r.controller == Some(true))
                });
                if keep.contains(&key) || item.metadata.deletion_timestamp.is_some() || !ours {
                    continue;
                }
                let api = self.api(&kind.resource, item.metadata.namespace.as_deref());
                api.delete(&item.name_any(), &DeleteParams::background())
                    .await?;
                self.metrics
                    .api_write(self.controller, &kind.resource.kind, "delete");
                tracing::info!(object = %key, "pruned");
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            api_version: "vardhub.io/v1alpha1".into(),
            kind: "RegionalNode".into(),
            name: "stockholm".into(),
            namespace: None,
            uid: Some("uid-1".into()),
        }
    }

    fn config_map(data: &[(&str, &str)]) -> DesiredObject {
        let cm = ConfigMap {
            metadata: kube::core::ObjectMeta {
                name: Some("cm".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        DesiredObject::from_typed(&cm).expect("erase")
    }

    #[test]
    fn contains_ignores_server_added_fields_and_empty_desired_fields() {
        let live = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "extra": true});
        assert!(contains(&live, &json!({"a": 1, "b": {"c": [1, 2]}})));
        assert!(contains(
            &live,
            &json!({"a": 1, "missing": {}, "none": null, "list": []})
        ));
        assert!(!contains(&live, &json!({"a": 2})));
        assert!(!contains(&live, &json!({"b": {"c": [1]}})));
        assert!(!contains(&live, &json!({"new": "field"})));
    }

    #[test]
    fn stamp_adds_owner_labels_reference_and_hash() {
        let stamped = stamp(&owner(), vec![config_map(&[("k", "v")])]);
        let meta = &stamped[0].object.metadata;
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels[OWNER_NAME_LABEL], "stockholm");
        assert_eq!(labels["app.kubernetes.io/managed-by"], MANAGED_BY);
        assert_eq!(
            meta.owner_references.as_ref().expect("refs")[0].uid,
            "uid-1"
        );
        assert!(
            meta.annotations
                .as_ref()
                .expect("annotations")
                .contains_key(HASH_ANNOTATION)
        );
    }

    #[test]
    fn offline_owner_has_no_reference() {
        let mut o = owner();
        o.uid = None;
        let stamped = stamp(&o, vec![config_map(&[])]);
        assert!(stamped[0].object.metadata.owner_references.is_none());
    }

    #[test]
    fn changed_content_changes_the_hash() {
        let a = stamp(&owner(), vec![config_map(&[("k", "v")])]);
        let b = stamp(&owner(), vec![config_map(&[("k", "w")])]);
        let hash = |d: &DesiredObject| {
            d.object.metadata.annotations.as_ref().expect("a")[HASH_ANNOTATION].clone()
        };
        assert_ne!(hash(&a[0]), hash(&b[0]));
    }

    #[test]
    fn only_the_owners_controller_reference_makes_an_object_its_own() {
        let desired = stamp(&owner(), vec![config_map(&[("k", "v")])])
            .remove(0)
            .object;
        assert!(owned_by_desired_owner(&desired.clone(), &desired));
        let mut foreign = desired.clone();
        foreign.metadata.owner_references = None;
        assert!(
            !owned_by_desired_owner(&foreign, &desired),
            "same name and labels, no reference"
        );
        let mut other = desired.clone();
        if let Some(refs) = other.metadata.owner_references.as_mut() {
            refs[0].uid = "uid-of-another-resource".into();
        }
        assert!(!owned_by_desired_owner(&other, &desired));
        let mut offline = owner();
        offline.uid = None;
        let rendered = stamp(&offline, vec![config_map(&[])]).remove(0).object;
        assert!(owned_by_desired_owner(&foreign, &rendered));
    }

    #[test]
    fn up_to_date_detects_drift_and_tolerates_server_defaults() {
        let desired = stamp(&owner(), vec![config_map(&[("k", "v")])])
            .remove(0)
            .object;
        let mut live = desired.clone();
        live.metadata.resource_version = Some("42".into());
        live.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("added-by-someone".into(), "x".into());
        assert!(up_to_date(&live, &desired));

        let mut drifted = live.clone();
        drifted.data["data"]["k"] = json!("changed by hand");
        assert!(!up_to_date(&drifted, &desired));

        let mut unlabelled = live.clone();
        unlabelled.metadata.labels = None;
        assert!(!up_to_date(&unlabelled, &desired));
    }
}
