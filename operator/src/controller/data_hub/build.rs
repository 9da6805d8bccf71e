//! What a `DataHub` is made of: its members, zones and objects. Pure: the controller applies
//! them and `render` prints them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::KubernetesRole;
use crate::adapters::s3::BucketSpec;
use crate::api::{DataHub, RegionalNode, StorageMode};
use crate::controller::apply::{DesiredObject, OwnedKind};
use crate::controller::storage::{self, TOKEN_TTL_SECONDS};

/// Name of the hub's ServiceAccount, the identity of its workloads.
pub const SERVICE_ACCOUNT: &str = "data-hub";
/// Label on the hub's namespace naming the hub.
pub const HUB_LABEL: &str = "vardhub.io/data-hub";

pub use crate::controller::Invalid;

/// Whether a label selector matches a set of labels (`matchLabels` and `matchExpressions`).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// The hub's member nodes among `nodes` (named in `spec.regionalNodes` or selected by
/// `spec.regionalNodeSelector`), sorted by name, and the named nodes that do not exist.
pub fn members(hub: &DataHub, nodes: &[RegionalNode]) -> (Vec<RegionalNode>, Vec<String>) {
    let named: Vec<&str> = hub
        .spec
        .regional_nodes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let mut found: Vec<RegionalNode> = nodes
        .iter()
        .filter(|n| {
            named.contains(&n.name_any().as_str())
                || hub
                    .spec
                    .regional_node_selector
                    .as_ref()
                    .is_some_and(|s| selector_matches(s, n.labels()))
        })
        .cloned()
        .collect();
    found.sort_by_key(|n| n.name_any());
    let missing = named
        .iter()
        .filter(|name| !nodes.iter().any(|n| n.name_any() == **name))
        .map(|s| s.to_string())
        .collect();
    (found, missing)
}

/// Checks that no region is served by two member nodes, and the bucket prefix length.
pub fn validate(hub: &DataHub, members: &[RegionalNode]) -> Result<(), Invalid> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for node in members {
        for region in &node.spec.regions {
            if let Some(other) = seen.insert(region.code(), node.name_any()) {
                return Err(Invalid {
                    field: "spec.regionalNodes",
                    message: format!(
                        "region {} ({}) is served by both RegionalNode {other} and RegionalNode {}; a region belongs to one node of a hub",
                        region.code(),
                        region.name(),
                        node.name_any()
                    ),
                });
            }
        }
    }
    let prefix = hub.bucket_prefix();
    if prefix.len() > 42 {
        return Err(Invalid {
            field: if hub.spec.bucket_prefix.is_some() {
                "spec.bucketPrefix"
            } else {
                "metadata.name"
            },
            message: format!(
                "bucket prefix {prefix:?} is longer than 42 characters, so bucket names would exceed 63; set spec.bucketPrefix"
            ),
        });
    }
    Ok(())
}

/// A zone of the hub as it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// `landing`, `standardised` or `purpose-specific`.
    pub zone: &'static str,
    /// The bucket and its retention.
    pub bucket: BucketSpec,
    /// How the bucket is divided.
    pub layout: &'static str,
}

/// The hub's zones for its storage mode: landing and standardised only in central mode (in
/// federated mode that data stays in the regions' buckets); purpose-specific always. The
/// purpose-specific bucket takes the longest retention any data product asks for.
pub fn zones(hub: &DataHub) -> Vec<Zone> {
    let l = storage::hub_layout(hub);
    let z = &hub.spec.zones;
    let mut out = Vec::new();
    if hub.spec.storage_mode == StorageMode::Central {
        out.push(Zone {
            zone: "landing",
            bucket: BucketSpec {
                name: l.landing,
                retention_days: z.landing.retention_days,
            },
            layout: "one prefix per region",
        });
        out.push(Zone {
            zone: "standardised",
            bucket: BucketSpec {
                name: l.standardised,
                retention_days: z.standardised.retention_days,
            },
            layout: "one prefix per region",
        });
    }
    out.push(Zone {
        zone: "purpose-specific",
        bucket: BucketSpec {
            name: l.products,
            retention_days: z
                .purpose_specific
                .iter()
                .filter_map(|p| p.settings.retention_days)
                .max(),
        },
        layout: "one prefix per data product",
    });
    out
}

/// Where a member region's patient-level (pseudonymised) data lives for this hub.
pub fn data_location(hub: &DataHub, node: &RegionalNode, code: &str) -> String {
    let node_bucket = storage::node_layout(node).standardised;
    match hub.spec.storage_mode {
        StorageMode::Central => format!(
            "copies in hub buckets {0}/{code}/ and {1}/{code}/; the region keeps {node_bucket}",
            storage::hub_layout(hub).landing,
            storage::hub_layout(hub).standardised
        ),
        StorageMode::Federated => {
            format!("stays in the region's bucket {node_bucket}; the hub holds extracts only")
        }
    }
}

/// The Kubernetes auth role binding the hub's ServiceAccount to its OpenBao policy.
pub fn role(hub: &DataHub) -> KubernetesRole {
    let l = storage::hub_layout(hub);
    KubernetesRole {
        service_accounts: vec![SERVICE_ACCOUNT.into()],
        namespaces: vec![hub.workload_namespace()],
        policies: vec![l.policy],
        ttl_seconds: TOKEN_TTL_SECONDS,
    }
}

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::cluster::<Namespace>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
        OwnedKind::namespaced::<ServiceAccount>(),
    ]
}

/// Every object the hub owns in the cluster, in the order they must be applied.
pub fn children(
    hub: &DataHub,
    paths: &crate::controller::network::Paths,
) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let ns = hub.workload_namespace();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(BTreeMap::from([
                (
                    "pod-security.kubernetes.io/enforce".to_string(),
                    "restricted".to_string(),
                ),
                (
                    "pod-security.kubernetes.io/enforce-version".to_string(),
                    "latest".to_string(),
                ),
                (HUB_LABEL.to_string(), hub.name_any()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    let deny = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some("default-deny".into()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..Default::default()
        }),
    };
    // The hub's own workloads (the pseudonymisation service, the standardise and publish
    // steps) reach DNS, OpenBao and the S3 server, and nothing else.
    let mut egress = vec![crate::controller::network::dns(paths)];
    egress.extend(crate::controller::network::to_peers(&paths.openbao));
    egress.extend(crate::controller::network::to_peers(&paths.s3));
    let allow_egress = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(crate::controller::network::ALLOW_EGRESS.into()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(egress),
            ..Default::default()
        }),
    };
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SERVICE_ACCOUNT.into()),
            namespace: Some(ns),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    Ok(vec![
        DesiredObject::from_typed(&namespace)?,
        DesiredObject::from_typed(&deny)?,
        DesiredObject::from_typed(&allow_egress)?,
        DesiredObject::from_typed(&account)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, regions: &[&str], labels: &[(&str, &str)]) -> RegionalNode {
        let mut n = RegionalNode::new(
            name,
            serde_json::from_value(json!({"regions": regions})).expect("spec"),
        );
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    fn hub(spec: serde_json::Value) -> DataHub {
        DataHub::new("national", serde_json::from_value(spec).expect("spec"))
    }

    #[test]
    fn members_come_from_names_and_selector() {
        let h = hub(json!({
            "regionalNodes": [{"name": "a"}, {"name": "ghost"}],
            "regionalNodeSelector": {"matchLabels": {"hub": "national"}},
        }));
        let nodes = [
            node("a", &["01"], &[]),
            node("b", &["14"], &[("hub", "national")]),
            node("c", &["12"], &[("hub", "other")]),
        ];
        let (m, missing) = members(&h, &nodes);
        let names: Vec<_> = m.iter().map(|n| n.name_any()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(missing, ["ghost"]);
    }

    #[test]
    fn a_region_in_two_member_nodes_is_refused_naming_the_field() {
        let h = hub(json!({}));
        let err = validate(
            &h,
            &[node("a", &["01"], &[]), node("b", &["09", "01"], &[])],
        )
        .expect_err("duplicate");
        assert_eq!(err.field, "spec.regionalNodes");
        assert!(err.message.contains("region 01"));
    }

    #[test]
    fn federated_hub_has_only_the_purpose_specific_zone() {
        let central = zones(&hub(json!({"zones": {"landing": {"retentionDays": 30}}})));
        assert_eq!(central.len(), 3);
        assert_eq!(central[0].bucket.retention_days, Some(30));
        let federated = zones(&hub(json!({"storageMode": "federated"})));
        assert_eq!(federated.len(), 1);
        assert_eq!(federated[0].zone, "purpose-specific");
    }
}
