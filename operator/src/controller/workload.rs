//! Pieces every workload the operator builds shares: the Pod Security "restricted" settings,
//! when a Deployment counts as rolled out,
//! and the placement knobs. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
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

/// Whether a Deployment's current generation is rolled out: the Deployment controller has seen
/// this generation, every desired replica runs the current pod template and is available, and
/// no pod of an older template is left. A resource's `Ready` follows this, so it is `False`
/// while a changed spec rolls out and while its pods are not ready.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let Some(status) = &deployment.status else {
        return false;
    };
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(1)
        && updated >= desired
        && status.available_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) <= updated
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    use super::*;

    fn deployment(generation: i64, status: DeploymentStatus) -> Deployment {
        let mut d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            status: Some(status),
            ..Default::default()
        };
        d.metadata.generation = Some(generation);
        d
    }

    #[test]
    fn a_deployment_is_rolled_out_only_when_the_current_generation_is_available() {
        let done = DeploymentStatus {
            observed_generation: Some(3),
            replicas: Some(2),
            updated_replicas: Some(2),
            available_replicas: Some(2),
            ..Default::default()
        };
        assert!(rolled_out(&deployment(3, done.clone())));
        // The controller has not seen the new spec yet.
        assert!(!rolled_out(&deployment(4, done.clone())));
        // A rollout in progress: one new pod, two old ones still serving.
        let rolling = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            ..done.clone()
        };
        assert!(!rolled_out(&deployment(3, rolling)));
        // All updated, but a pod is not ready.
        let unready = DeploymentStatus {
            available_replicas: Some(1),
            ..done
        };
        assert!(!rolled_out(&deployment(3, unready)));
        assert!(!rolled_out(&Deployment::default()));
    }
}
