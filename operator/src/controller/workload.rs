//! Pieces every workload the operator builds shares: the Pod Security "restricted" settings
//! and the placement knobs. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::Placement;

/// A container that meets Pod Security "restricted", with a read-only root filesystem.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod that meets Pod Security "restricted": non-root (uid 65532), seccomp RuntimeDefault.
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The placement's node selector, when it has one.
pub fn node_selector(p: &Placement) -> Option<std::collections::BTreeMap<String, String>> {
    (!p.node_selector.is_empty()).then(|| p.node_selector.clone())
}

/// The placement's tolerations, when it has some.
pub fn tolerations(p: &Placement) -> Option<Vec<Toleration>> {
    (!p.tolerations.is_empty()).then(|| p.tolerations.clone())
}

/// The placement's resources, or requests of `cpu` and `memory` with a memory limit of
/// `memory_limit` when it sets none.
pub fn resources_or(
    p: &Placement,
    cpu: &str,
    memory: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    p.resources.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(memory_limit.into()),
        )])),
        ..Default::default()
    })
}
