//! Pieces every workload the operator builds shares: the Pod Security "restricted" settings,
//! when a Deployment counts as rolled out, the placement knobs, and the scheduled jobs of
//! nodes and hubs (their pod, their OpenBao identity, their image). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext,
    ServiceAccountTokenProjection, Toleration, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::ObjectMeta;

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

/// What a node's or hub's objects depend on besides the resource itself.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// OpenBao's address as workloads reach it.
    pub openbao_addr: String,
    /// The S3 endpoint as workloads reach it.
    pub s3_endpoint: String,
    /// Where the workloads may connect.
    pub paths: crate::controller::network::Paths,
    /// The hub a node exports to, when it exists (unused for a hub).
    pub hub: Option<crate::api::DataHub>,
    /// The project's own image, for jobs that name no image of their own.
    pub image: String,
}

/// Where the projected ServiceAccount token is mounted in the operator's jobs.
pub const TOKEN_DIR: &str = "/var/run/secrets/vardhub";

/// Environment variables from name/value pairs.
pub fn env_vars<const N: usize>(pairs: [(&str, String); N]) -> Vec<EnvVar> {
    pairs
        .into_iter()
        .map(|(name, value)| EnvVar {
            name: name.into(),
            value: Some(value),
            ..Default::default()
        })
        .collect()
}

/// What every job needs to act as its owner: OpenBao's address, the Kubernetes auth role to
/// log in with, the token file, where its S3 credential is kept (`<namespace>/<mount>/data/
/// <path>`, a path, never the secret) and the S3 endpoint.
pub fn job_identity(
    openbao_addr: &str,
    role: &str,
    credentials: &str,
    s3_endpoint: &str,
) -> Vec<EnvVar> {
    env_vars([
        ("VAULT_ADDR", openbao_addr.into()),
        (
            "VARDHUB_OPENBAO_AUTH_MOUNT",
            crate::controller::storage::AUTH_MOUNT.into(),
        ),
        ("VARDHUB_OPENBAO_ROLE", role.into()),
        ("VARDHUB_OPENBAO_TOKEN_FILE", format!("{TOKEN_DIR}/token")),
        ("VARDHUB_S3_CREDENTIALS", credentials.into()),
        ("VARDHUB_S3_ENDPOINT", s3_endpoint.into()),
    ])
}

/// The image and arguments of a job: the owner's own image with its entrypoint, or the
/// project's reference job (`vardhub job <stage>`) from the project's image.
pub fn job_image(
    own: Option<&String>,
    stage: &str,
    project_image: &str,
) -> (String, Option<Vec<String>>) {
    match own {
        Some(image) => (image.clone(), None),
        None => (
            project_image.to_owned(),
            Some(vec!["job".to_string(), stage.to_string()]),
        ),
    }
}

/// The pod of a scheduled job.
pub struct JobPod<'a> {
    /// Namespace of the CronJob.
    pub namespace: String,
    /// Name of the CronJob.
    pub name: String,
    /// Labels of its Jobs and pods.
    pub labels: BTreeMap<String, String>,
    /// The ServiceAccount it runs as.
    pub service_account: &'a str,
    /// Where it runs.
    pub placement: &'a Placement,
    /// Further tokens in [`TOKEN_DIR`], each for one audience: (file name, audience).
    pub audience_tokens: Vec<(String, String)>,
}

/// The file, in [`TOKEN_DIR`], of the token a job presents to a pseudonymisation service.
pub const PSEUDONYMISATION_TOKEN: &str = "pseudonymisation-token";

/// A CronJob that runs `container` as the pod's ServiceAccount with a short-lived projected
/// token for OpenBao (and no API token), meets Pod Security "restricted", one run at a time.
pub fn cron_job(pod: &JobPod<'_>, schedule: &str, container: Container) -> CronJob {
    let template_meta = ObjectMeta {
        labels: Some(pod.labels.clone()),
        ..Default::default()
    };
    let container = Container {
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![VolumeMount {
            name: "openbao-token".into(),
            mount_path: TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..container
    };
    let projection = |path: &str, audience: Option<&String>| VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            path: path.into(),
            audience: audience.cloned(),
            expiration_seconds: Some(600),
        }),
        ..Default::default()
    };
    let mut sources = vec![projection("token", None)];
    sources.extend(
        pod.audience_tokens
            .iter()
            .map(|(path, audience)| projection(path, Some(audience))),
    );
    let token = Volume {
        name: "openbao-token".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            ..Default::default()
        }),
        ..Default::default()
    };
    CronJob {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        spec: CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(template_meta.clone()),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(template_meta),
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".into()),
                            service_account_name: Some(pod.service_account.into()),
                            automount_service_account_token: Some(false),
                            containers: vec![container],
                            volumes: Some(vec![token]),
                            security_context: Some(restricted_pod()),
                            node_selector: node_selector(pod.placement),
                            tolerations: tolerations(pod.placement),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}
