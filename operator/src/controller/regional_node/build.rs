//! The objects a `RegionalNode` owns in the cluster. Pure: the controller applies them and
//! `render` prints them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::api::RegionalNode;
use crate::controller::apply::{DesiredObject, OwnedKind};

/// Name of the node's ServiceAccount, its workload identity towards OpenBao and S3.
pub const SERVICE_ACCOUNT: &str = "regional-node";
/// Name of the node's default-deny NetworkPolicy.
pub const DEFAULT_DENY: &str = "default-deny";
/// Label on the node's namespace naming the node.
pub const NODE_LABEL: &str = "vardhub.io/regional-node";

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::cluster::<Namespace>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
        OwnedKind::namespaced::<ServiceAccount>(),
    ]
}

/// Every object the node owns, in the order they must be applied.
pub fn children(node: &RegionalNode) -> Result<Vec<DesiredObject>, serde_json::Error> {
    Ok(vec![
        DesiredObject::from_typed(&namespace(node))?,
        DesiredObject::from_typed(&default_deny(node))?,
        DesiredObject::from_typed(&service_account(node))?,
    ])
}

/// The node's namespace, enforcing Pod Security "restricted".
pub fn namespace(node: &RegionalNode) -> Namespace {
    let mut labels = BTreeMap::from([
        (
            "pod-security.kubernetes.io/enforce".to_string(),
            "restricted".to_string(),
        ),
        (
            "pod-security.kubernetes.io/enforce-version".to_string(),
            "latest".to_string(),
        ),
        (
            "pod-security.kubernetes.io/audit".to_string(),
            "restricted".to_string(),
        ),
        (
            "pod-security.kubernetes.io/warn".to_string(),
            "restricted".to_string(),
        ),
        (NODE_LABEL.to_string(), node.name_any()),
    ]);
    for region in &node.spec.regions {
        labels.insert(
            format!("vardhub.io/region-{}", region.code()),
            "true".into(),
        );
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(node.workload_namespace()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Denies all ingress and egress of every pod in the namespace; later policies open exactly
/// the paths the node needs.
pub fn default_deny(node: &RegionalNode) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(DEFAULT_DENY.into()),
            namespace: Some(node.workload_namespace()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..Default::default()
        }),
    }
}

/// The node's workload identity. Its token is not mounted by default: workloads that need
/// it ask for a projected, audience-bound token.
pub fn service_account(node: &RegionalNode) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SERVICE_ACCOUNT.into()),
            namespace: Some(node.workload_namespace()),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RegionalNodeSpec;

    fn node() -> RegionalNode {
        let spec: RegionalNodeSpec =
            serde_json::from_value(serde_json::json!({"regions": ["01", "09"]})).expect("spec");
        RegionalNode::new("stockholm-gotland", spec)
    }

    #[test]
    fn namespace_is_restricted_and_labelled_with_regions() {
        let ns = namespace(&node());
        let labels = ns.metadata.labels.expect("labels");
        assert_eq!(
            ns.metadata.name.as_deref(),
            Some("region-stockholm-gotland")
        );
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["vardhub.io/region-01"], "true");
        assert_eq!(labels["vardhub.io/region-09"], "true");
    }

    #[test]
    fn default_deny_selects_every_pod_both_ways() {
        let np = default_deny(&node());
        let spec = np.spec.expect("spec");
        assert_eq!(spec.pod_selector, Some(LabelSelector::default()));
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_string(), "Egress".to_string()][..])
        );
        assert!(spec.ingress.is_none() && spec.egress.is_none());
    }

    #[test]
    fn children_are_in_the_node_namespace() {
        let objects = children(&node()).expect("build");
        assert_eq!(objects.len(), 3);
        for d in &objects[1..] {
            assert_eq!(
                d.object.metadata.namespace.as_deref(),
                Some("region-stockholm-gotland")
            );
        }
    }
}
