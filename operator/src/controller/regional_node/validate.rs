//! Checks of a `RegionalNode` that the CRD schema cannot express. Pure.

use crate::api::RegionalNode;

pub use crate::controller::Invalid;

/// Namespaces a regional node may never take over.
const RESERVED: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "vardhub-system",
];

/// Checks the node.
pub fn validate(node: &RegionalNode) -> Result<(), Invalid> {
    let ns = node.workload_namespace();
    if RESERVED.contains(&ns.as_str()) || ns.starts_with("kube-") {
        return Err(Invalid {
            field: if node.spec.namespace.is_some() {
                "spec.namespace"
            } else {
                "metadata.name"
            },
            message: format!("namespace {ns:?} is reserved; choose another"),
        });
    }
    let prefix = node.bucket_prefix();
    if prefix.len() > 42 {
        return Err(Invalid {
            field: if node.spec.storage.bucket_prefix.is_some() {
                "spec.storage.bucketPrefix"
            } else {
                "metadata.name"
            },
            message: format!(
                "bucket prefix {prefix:?} is longer than 42 characters, so bucket names would exceed 63; set spec.storage.bucketPrefix"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CountyCode, RegionalNodeSpec};

    fn node(namespace: Option<&str>) -> RegionalNode {
        let spec: RegionalNodeSpec = serde_json::from_value(serde_json::json!({
            "regions": ["01"],
            "namespace": namespace,
        }))
        .expect("spec");
        assert_eq!(spec.regions, vec![CountyCode::Stockholm]);
        RegionalNode::new("stockholm", spec)
    }

    #[test]
    fn ordinary_namespace_is_fine() {
        assert_eq!(validate(&node(None)), Ok(()));
        assert_eq!(validate(&node(Some("region-01"))), Ok(()));
    }

    #[test]
    fn reserved_namespace_is_refused_naming_the_field() {
        let err = validate(&node(Some("kube-system"))).expect_err("reserved");
        assert_eq!(err.field, "spec.namespace");
        assert!(err.to_string().starts_with("spec.namespace: "));
    }
}
