//! `vardhub plan <dir>`: against a live cluster, what applying a manifest directory would
//! change, and what the operator would then change in the cluster. Usable in a GitOps
//! pipeline: the exit code says whether there is drift.
//!
//! Two layers are compared:
//! - the directory's own vardhub resources, by a server-side dry-run apply (the API server
//!   runs its defaults, CEL rules and admission, and nothing is stored);
//! - the objects the operator creates for them ([`crate::render`]), by the same comparison
//!   the controllers make before every write, plus the owned objects the operator would prune.

use std::collections::BTreeSet;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::controller::apply::{OWNER_KIND_LABEL, OWNER_NAME_LABEL, OwnedKind, up_to_date};
use crate::controller::{data_hub, regional_node};
use crate::render::{Resources, Settings};

/// Field manager of the dry-run apply.
pub const FIELD_MANAGER: &str = "vardhub-plan";

/// One change the plan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `create`, `change`, `update` (drift the operator restores) or `delete`.
    pub action: &'static str,
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
    /// The fields concerned, where known.
    pub fields: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<7} {}", self.action, self.object)?;
        if !self.fields.is_empty() {
            write!(f, ": {}", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// The JSON paths at which `after` differs from `before`, leaving out what the API server
/// maintains. Pure.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
        match (before, after) {
            (Value::Object(b), Value::Object(a)) => {
                let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if IGNORED.contains(&p.as_str()) {
                        continue;
                    }
                    walk(
                        &p,
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (b, a) if b != a => out.push(path.to_string()),
            _ => {}
        }
    }
    const IGNORED: &[&str] = &[
        "metadata.managedFields",
        "metadata.resourceVersion",
        "metadata.generation",
        "metadata.creationTimestamp",
        "metadata.uid",
        "status",
    ];
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn describe(kind: &str, obj: &DynamicObject) -> String {
    match &obj.metadata.namespace {
        Some(ns) => format!("{kind} {ns}/{}", obj.name_any()),
        None => format!("{kind} {}", obj.name_any()),
    }
}

/// Applies one manifest document as a server-side dry run with [`FIELD_MANAGER`]: the API
/// server validates it (schema, CEL rules, admission) and stores nothing. Returns the
/// object, the live one if any, and what the live one would become.
pub async fn dry_run_apply(
    client: &Client,
    value: &Value,
) -> anyhow::Result<(DynamicObject, Option<DynamicObject>, DynamicObject)> {
    let object: DynamicObject = serde_json::from_value(value.clone())?;
    let types = object.types.clone().unwrap_or_default();
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), types.api_version.clone()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &types.kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = match (&object.metadata.namespace, capabilities.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    let name = object.name_any();
    let live = api.get_opt(&name).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let after = api.patch(&name, &params, &Patch::Apply(&object)).await?;
    Ok((object, live, after))
}

/// Compares the directory's resources and the operator's objects with the cluster.
pub async fn plan(
    client: &Client,
    resources: &Resources,
    settings: &Settings,
) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();

    // The directory's own vardhub resources: a server-side dry run of the apply.
    for value in &resources.documents {
        let (object, live, after) = dry_run_apply(client, value).await?;
        let kind = object.types.clone().unwrap_or_default().kind;
        match live {
            None => changes.push(Change {
                action: "create",
                object: describe(&kind, &object),
                fields: Vec::new(),
            }),
            Some(live) => {
                let fields = changed_paths(
                    &serde_json::to_value(&live)?,
                    &serde_json::to_value(&after)?,
                );
                if !fields.is_empty() {
                    changes.push(Change {
                        action: "change",
                        object: describe(&kind, &object),
                        fields,
                    });
                }
            }
        }
    }

    // What the operator would do for them.
    let desired = crate::render::render(resources, settings)?;
    let mut wanted = BTreeSet::new();
    for d in &desired {
        let name = d.object.name_any();
        wanted.insert((
            d.resource.kind.clone(),
            d.object.metadata.namespace.clone(),
            name.clone(),
        ));
        let api: Api<DynamicObject> = match &d.object.metadata.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &d.resource),
            None => Api::all_with(client.clone(), &d.resource),
        };
        match api.get_opt(&name).await? {
            None => changes.push(Change {
                action: "create",
                object: describe(&d.resource.kind, &d.object),
                fields: vec!["by the operator".into()],
            }),
            // A rendered object has no owner UID; the live one's reference is taken as is.
            Some(live) if !up_to_date(&live, &with_owner_of(&d.object, &live)) => {
                changes.push(Change {
                    action: "update",
                    object: describe(&d.resource.kind, &d.object),
                    fields: drifted_fields(&live, &d.object).unwrap_or_default(),
                })
            }
            Some(_) => {}
        }
    }

    // Owned objects of the directory's resources that the operator would prune.
    let owners: Vec<(&str, String, Vec<OwnedKind>)> = resources
        .nodes
        .iter()
        .map(|n| {
            (
                "RegionalNode",
                n.name_any(),
                regional_node::build::owned_kinds(),
            )
        })
        .chain(
            resources
                .hubs
                .iter()
                .map(|h| ("DataHub", h.name_any(), data_hub::build::owned_kinds())),
        )
        .collect();
    for (kind, name, kinds) in owners {
        let selector = format!("{OWNER_KIND_LABEL}={kind},{OWNER_NAME_LABEL}={name}");
        for owned in kinds {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &owned.resource);
            for live in api.list(&ListParams::default().labels(&selector)).await? {
                let key = (
                    owned.resource.kind.clone(),
                    live.metadata.namespace.clone(),
                    live.name_any(),
                );
                if !wanted.contains(&key) {
                    changes.push(Change {
                        action: "delete",
                        object: describe(&owned.resource.kind, &live),
                        fields: vec!["no longer desired; the operator prunes it".into()],
                    });
                }
            }
        }
    }
    Ok(changes)
}

fn with_owner_of(desired: &DynamicObject, live: &DynamicObject) -> DynamicObject {
    let mut d = desired.clone();
    d.metadata.owner_references = live.metadata.owner_references.clone();
    d
}

/// The desired fields the live object lacks or holds with another value. Pure.
pub fn drifted_fields(live: &DynamicObject, desired: &DynamicObject) -> Option<Vec<String>> {
    let live = serde_json::to_value(live).ok()?;
    let desired = serde_json::to_value(desired).ok()?;
    fn walk(path: &str, live: &Value, desired: &Value, out: &mut Vec<String>) {
        match (desired, live) {
            (Value::Object(d), Value::Object(l)) => {
                for (k, dv) in d {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if p == "metadata.ownerReferences" {
                        continue;
                    }
                    walk(&p, l.get(k).unwrap_or(&Value::Null), dv, out);
                }
            }
            (d, l) => {
                if !crate::controller::apply::contains(l, d) {
                    out.push(path.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", &live, &desired, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_paths_name_the_fields_and_skip_server_bookkeeping() {
        let before = json!({"metadata": {"resourceVersion": "1", "name": "a"},
                            "spec": {"regions": ["01"], "keys": {"rotationPeriodDays": 90}}});
        let after = json!({"metadata": {"resourceVersion": "2", "name": "a"},
                           "spec": {"regions": ["01"], "keys": {"rotationPeriodDays": 30}}});
        assert_eq!(
            changed_paths(&before, &after),
            ["spec.keys.rotationPeriodDays"]
        );
        assert!(changed_paths(&before, &before).is_empty());
    }

    #[test]
    fn drifted_fields_name_what_the_live_object_lacks() {
        let live: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "1"}}))
        .expect("live");
        let desired: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "2", "b": "3"}}))
        .expect("desired");
        assert_eq!(
            drifted_fields(&live, &desired).expect("diff"),
            ["data.a", "data.b"]
        );
    }
}
