//! The vardhub API: the custom resources that describe the reference architecture.
//!
//! | Resource | Scope | Part of the architecture |
//! |---|---|---|
//! | [`RegionalNode`] | cluster | regional infrastructure: a region's namespace, keys, storage, mapping jobs |
//! | [`DataHub`] | cluster | the region-common hub: storage zones, separation per region and purpose, exposure |
//! | [`PseudonymisationService`] | namespaced | overarching service: pseudonyms per purpose, keys in OpenBao |
//! | [`CatalogService`] | namespaced | overarching service: the DCAT-AP / HealthDCAT-AP catalogue |
//! | [`Dataset`] | namespaced | metadata of one dataset at one stage, from which the catalogue is generated |
//! | [`DataPermit`] | namespaced | access to a hub's data products for one holder, purpose and time |
//!
//! Everything here is plain data: no I/O. Doc comments become `kubectl explain`.

// Several `printcolumn(...)` entries share `type_ = "string"`; clippy reads the repeated
// key inside the derive attribute as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

mod catalog_service;
mod common;
mod data_hub;
mod data_permit;
mod dataset;
mod pseudonymisation_service;
mod region;
mod regional_node;

pub use catalog_service::*;
pub use common::*;
pub use data_hub::*;
pub use data_permit::*;
pub use dataset::*;
pub use pseudonymisation_service::*;
pub use region::*;
pub use regional_node::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every vardhub resource.
pub const GROUP: &str = "vardhub.io";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// The category that makes `kubectl get vardhub` list every vardhub resource.
pub const CATEGORY: &str = "vardhub";

/// Every CRD of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        RegionalNode::crd(),
        DataHub::crd(),
        PseudonymisationService::crd(),
        CatalogService::crd(),
        Dataset::crd(),
        DataPermit::crd(),
    ]
}

#[cfg(test)]
mod tests {
    //! The CEL rules of the schema, evaluated offline with the same rules the API server runs.
    use super::*;

    fn node(spec: serde_json::Value) -> RegionalNode {
        RegionalNode::new("stockholm", serde_json::from_value(spec).expect("spec"))
    }

    #[test]
    fn regional_node_namespace_rule_is_in_the_schema() {
        // A transition rule: the API server evaluates it on update (see the integration test
        // `invalid_regional_node_is_refused_by_the_api_server_naming_the_field`).
        let crd = serde_json::to_string(&RegionalNode::crd()).expect("crd");
        assert!(crd.contains("spec.namespace cannot be changed after creation"));
        assert!(crd.contains("has(self.namespace) == has(oldSelf.namespace)"));
        let ok = node(serde_json::json!({"regions": ["01"], "namespace": "region-01"}));
        assert!(ok.validate_cel().is_ok());
    }

    #[test]
    fn data_hub_deletion_needs_confirmation() {
        let hub = |spec: serde_json::Value| {
            DataHub::new("hub", serde_json::from_value(spec).expect("spec"))
        };
        assert!(hub(serde_json::json!({})).validate_cel().is_ok());
        let err = hub(serde_json::json!({"deletionPolicy": "Delete"}))
            .validate_cel()
            .expect_err("unconfirmed");
        assert!(format!("{err:?}").contains("spec.confirmDeletion"));
        assert!(
            hub(serde_json::json!({"deletionPolicy": "Delete", "confirmDeletion": true}))
                .validate_cel()
                .is_ok()
        );
    }

    #[test]
    fn pseudonymisation_key_deletion_needs_confirmation() {
        let svc = |spec: serde_json::Value| {
            PseudonymisationService::new("pseudo", serde_json::from_value(spec).expect("spec"))
        };
        let domains = serde_json::json!([{"name": "region-export"}]);
        assert!(
            svc(serde_json::json!({"domains": domains}))
                .validate_cel()
                .is_ok()
        );
        let err = svc(serde_json::json!({"domains": domains, "deletionPolicy": "Delete"}))
            .validate_cel()
            .expect_err("x");
        assert!(format!("{err:?}").contains("spec.confirmKeyDeletion"));
    }

    fn refused(result: Result<(), impl std::fmt::Debug>, field: &str) {
        let err = format!("{:?}", result.expect_err(field));
        assert!(err.contains(field), "the refusal names {field}: {err}");
    }

    #[test]
    fn names_must_make_valid_namespace_and_bucket_names() {
        let spec =
            || serde_json::from_value(serde_json::json!({"regions": ["01"]})).expect("valid");
        assert!(
            RegionalNode::new("stockholm", spec())
                .validate_cel()
                .is_ok()
        );
        refused(
            RegionalNode::new("stock.holm", spec()).validate_cel(),
            "metadata.name: a DNS label",
        );
        // 43 characters: the namespace fits, the default bucket names would not.
        let long = "a".repeat(43);
        refused(
            RegionalNode::new(&long, spec()).validate_cel(),
            "set spec.storage.bucketPrefix",
        );
        let prefixed = serde_json::from_value(serde_json::json!(
            {"regions": ["01"], "storage": {"bucketPrefix": "vardhub-long"}}
        ))
        .expect("valid");
        assert!(RegionalNode::new(&long, prefixed).validate_cel().is_ok());
    }

    #[test]
    fn mapping_job_configuration_cannot_set_the_operators_variables() {
        let with = |key: &str| {
            node(serde_json::json!({"regions": ["01"], "mappingJobs": [{
                "name": "m", "schedule": "0 2 * * *", "sourceModel": "s",
                "targetModel": {"name": "omop-cdm", "version": "5.4"},
                "config": {key: "x"},
            }]}))
            .validate_cel()
        };
        assert!(with("BATCH_SIZE").is_ok());
        assert!(with("VARDHUB_SYNTHETIC_SEED").is_ok());
        refused(with("VARDHUB_OPENBAO_ROLE"), "spec.mappingJobs[].config");
        refused(with("1ST"), "spec.mappingJobs[].config");
    }

    #[test]
    fn label_selectors_are_well_formed() {
        let hub = |expr: serde_json::Value| {
            DataHub::new(
                "hub",
                serde_json::from_value(serde_json::json!(
                    {"regionalNodeSelector": {"matchExpressions": [expr]}}
                ))
                .expect("valid"),
            )
            .validate_cel()
        };
        assert!(hub(serde_json::json!({"key": "a", "operator": "In", "values": ["b"]})).is_ok());
        assert!(hub(serde_json::json!({"key": "a", "operator": "Exists"})).is_ok());
        refused(
            hub(serde_json::json!({"key": "a", "operator": "Equals", "values": ["b"]})),
            "spec.regionalNodeSelector.matchExpressions",
        );
        refused(
            hub(serde_json::json!({"key": "a", "operator": "In"})),
            "spec.regionalNodeSelector.matchExpressions",
        );
    }
}
