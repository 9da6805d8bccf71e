//! The objects a `RegionalNode` owns in the cluster. Pure: the controller applies them and
//! `render` prints them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Namespace, ResourceRequirements, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::KubernetesRole;
use crate::api::{DataHub, MappingJob, Placement, RegionalNode, StorageMode};
use crate::controller::apply::{DesiredObject, OwnedKind, Owner};
use crate::controller::storage::{self, TOKEN_TTL_SECONDS};
use crate::controller::workload;

/// Name of the node's ServiceAccount, its workload identity towards OpenBao and S3.
pub const SERVICE_ACCOUNT: &str = "regional-node";
/// Name of the node's default-deny NetworkPolicy.
pub const DEFAULT_DENY: &str = "default-deny";
/// Name of the NetworkPolicy that opens the node's few egress paths.
pub const EGRESS: &str = crate::controller::network::ALLOW_EGRESS;
/// Label on the node's namespace naming the node.
pub const NODE_LABEL: &str = "vardhub.io/regional-node";
/// Label on the node's Jobs naming the job in the spec.
pub const JOB_LABEL: &str = "vardhub.io/job";
/// Name of the export job in the status.
pub const EXPORT_JOB: &str = "export";

pub use crate::controller::workload::Inputs;

fn job_image(own: Option<&String>, stage: &str, inputs: &Inputs) -> (String, Option<Vec<String>>) {
    workload::job_image(own, stage, &inputs.image)
}

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::cluster::<Namespace>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
        OwnedKind::namespaced::<ServiceAccount>(),
        OwnedKind::namespaced::<CronJob>(),
    ]
}

/// Every object the node owns, in the order they must be applied.
pub fn children(
    node: &RegionalNode,
    inputs: &Inputs,
) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let mut objects = vec![
        DesiredObject::from_typed(&namespace(node))?,
        DesiredObject::from_typed(&default_deny(node))?,
        DesiredObject::from_typed(&egress(node, inputs))?,
        DesiredObject::from_typed(&service_account(node))?,
    ];
    for job in &node.spec.mapping_jobs {
        objects.push(DesiredObject::from_typed(&mapping_cron_job(
            node, job, inputs,
        ))?);
    }
    if let Some(export) = export_cron_job(node, inputs) {
        objects.push(DesiredObject::from_typed(&export)?);
    }
    Ok(objects)
}

/// The Kubernetes auth role binding the node's ServiceAccount to its OpenBao policy.
pub fn role(node: &RegionalNode) -> KubernetesRole {
    let l = storage::node_layout(node);
    KubernetesRole {
        service_accounts: vec![SERVICE_ACCOUNT.into()],
        namespaces: vec![node.workload_namespace()],
        policies: vec![l.access],
        ttl_seconds: TOKEN_TTL_SECONDS,
        ..Default::default()
    }
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

/// Lets the node's pods reach DNS, OpenBao, the S3 server and, when the node exports, the
/// hub's pseudonymisation service; nothing else (the default-deny policy closes the rest).
pub fn egress(node: &RegionalNode, inputs: &Inputs) -> NetworkPolicy {
    use crate::controller::network;
    let mut rules = vec![network::dns(&inputs.paths)];
    rules.extend(network::to_peers(&inputs.paths.openbao));
    rules.extend(network::to_peers(&inputs.paths.s3));
    if let (Some(export), Some(hub)) = (&node.spec.export, &inputs.hub) {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(network::namespace_named(&hub.workload_namespace())),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([
                        (
                            "app.kubernetes.io/name".to_string(),
                            "pseudonymisation-service".to_string(),
                        ),
                        (
                            "app.kubernetes.io/instance".to_string(),
                            export.pseudonymisation.name.clone(),
                        ),
                    ])),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(
                    crate::controller::pseudonymisation_service::build::PORT,
                )),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        });
    }
    crate::controller::network::allow_egress(&node.workload_namespace(), rules)
}

/// The environment every job of the node gets: where OpenBao is, which role to log in with,
/// where its S3 credential is kept (a path, never the secret), its buckets.
fn base_env(node: &RegionalNode, inputs: &Inputs) -> Vec<EnvVar> {
    let l = storage::node_layout(node);
    let mut env = workload::job_identity(
        &inputs.openbao_addr,
        &l.access,
        &format!(
            "{}/{}/data/{}",
            l.openbao_namespace,
            storage::KV_MOUNT,
            l.credentials_path
        ),
        &inputs.s3_endpoint,
    );
    env.extend(workload::env_vars([
        (
            "VARDHUB_REGION_KEY",
            format!("{}/{}/{}", l.openbao_namespace, storage::KEY_MOUNT, l.key),
        ),
        ("VARDHUB_LANDING_BUCKET", l.landing),
        ("VARDHUB_STANDARDISED_BUCKET", l.standardised),
        (
            "VARDHUB_REGIONS",
            node.spec
                .regions
                .iter()
                .map(|r| r.code())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]));
    env
}

fn default_resources(placement: &Placement) -> ResourceRequirements {
    workload::resources_or(placement, "500m", "512Mi", "2Gi")
}

/// A CronJob of the node, as its ServiceAccount, labelled with the node and the job.
fn cron_job(
    node: &RegionalNode,
    name: &str,
    job: &str,
    schedule: &str,
    container: Container,
    audience_tokens: Vec<(String, String)>,
) -> CronJob {
    let mut labels = Owner::of(node).labels();
    labels.insert(JOB_LABEL.into(), job.into());
    workload::cron_job(
        &workload::JobPod {
            namespace: node.workload_namespace(),
            name: name.into(),
            labels,
            service_account: SERVICE_ACCOUNT,
            placement: &node.spec.placement,
            audience_tokens,
        },
        schedule,
        container,
    )
}

/// Name of a mapping job's CronJob.
pub fn mapping_cron_job_name(job: &MappingJob) -> String {
    format!("map-{}", job.name)
}

/// The CronJob of one mapping job: source model in, common model out, in the node's buckets.
pub fn mapping_cron_job(node: &RegionalNode, job: &MappingJob, inputs: &Inputs) -> CronJob {
    let mut env = base_env(node, inputs);
    let extra = [
        ("VARDHUB_SOURCE_MODEL", job.source_model.clone()),
        ("VARDHUB_TARGET_MODEL", job.target_model.name.clone()),
        (
            "VARDHUB_TARGET_MODEL_VERSION",
            job.target_model.version.clone(),
        ),
    ];
    env.extend(extra.into_iter().map(|(k, v)| EnvVar {
        name: k.into(),
        value: Some(v),
        ..Default::default()
    }));
    env.extend(job.config.iter().map(|(k, v)| EnvVar {
        name: k.clone(),
        value: Some(v.clone()),
        ..Default::default()
    }));
    let (image, args) = job_image(job.image.as_ref(), "mapping", inputs);
    let container = Container {
        name: "mapping".into(),
        image: Some(image),
        args,
        env: Some(env),
        resources: Some(
            job.resources
                .clone()
                .unwrap_or_else(|| default_resources(&node.spec.placement)),
        ),
        ..Default::default()
    };
    cron_job(
        node,
        &mapping_cron_job_name(job),
        &job.name,
        &job.schedule,
        container,
        Vec::new(),
    )
}

/// Where the node's export goes, as `(bucket, prefix)`: the hub's landing zone in central
/// mode (one prefix per region: the tool writes under each), the node's own standardised
/// bucket in federated mode, where the hub's publisher reads it.
pub fn export_destination(node: &RegionalNode, hub: &DataHub, domain: &str) -> (String, String) {
    match hub.spec.storage_mode {
        StorageMode::Central => (storage::hub_layout(hub).landing, String::new()),
        StorageMode::Federated => (
            storage::node_layout(node).standardised,
            storage::federated_export_prefix(domain),
        ),
    }
}

/// The export CronJob, when the node exports and its hub exists.
pub fn export_cron_job(node: &RegionalNode, inputs: &Inputs) -> Option<CronJob> {
    let export = node.spec.export.as_ref()?;
    let hub = inputs.hub.as_ref()?;
    let (bucket, prefix) = export_destination(node, hub, &export.domain);
    let mut env = base_env(node, inputs);
    let svc = &export.pseudonymisation.name;
    let hub_ns = hub.workload_namespace();
    let token = workload::PSEUDONYMISATION_TOKEN;
    use crate::controller::pseudonymisation_service::build as service;
    let mut extra = vec![
        ("VARDHUB_PSEUDONYMISATION_URL", service::url(&hub_ns, svc)),
        (
            "VARDHUB_PSEUDONYMISATION_CA_MOUNT",
            service::pki_mount(&hub_ns, svc),
        ),
        (
            "VARDHUB_PSEUDONYMISATION_TOKEN_FILE",
            format!("{}/{token}", workload::TOKEN_DIR),
        ),
        ("VARDHUB_EXPORT_DOMAIN", export.domain.clone()),
        ("VARDHUB_EXPORT_BUCKET", bucket),
        ("VARDHUB_EXPORT_PREFIX", prefix),
    ];
    if hub.spec.storage_mode == StorageMode::Central {
        let l = storage::hub_layout(hub);
        extra.push((
            "VARDHUB_EXPORT_CREDENTIALS",
            format!(
                "{}/{}/data/{}",
                l.openbao_namespace,
                storage::KV_MOUNT,
                storage::ingest_credentials_path(&node.name_any())
            ),
        ));
    }
    env.extend(
        extra
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| EnvVar {
                name: k.into(),
                value: Some(v),
                ..Default::default()
            }),
    );
    let (image, args) = job_image(export.image.as_ref(), "export", inputs);
    let container = Container {
        name: "export".into(),
        image: Some(image),
        args,
        env: Some(env),
        resources: Some(default_resources(&node.spec.placement)),
        ..Default::default()
    };
    let audience = crate::pseudonymisation::access::audience(&hub_ns, svc);
    Some(cron_job(
        node,
        EXPORT_JOB,
        EXPORT_JOB,
        &export.schedule,
        container,
        vec![(token.to_string(), audience)],
    ))
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

/// Why the node's export cannot work with the pseudonymisation service its hub runs, if it
/// cannot: the service is missing, has no such domain, or does not admit the node's jobs.
/// `None` when the node does not export, or its export reaches a domain that admits it. Pure.
pub fn export_problem(
    node: &RegionalNode,
    hub: &DataHub,
    service: Option<&crate::api::PseudonymisationService>,
) -> Option<String> {
    let export = node.spec.export.as_ref()?;
    let name = &export.pseudonymisation.name;
    let hub_ns = hub.workload_namespace();
    let Some(service) = service else {
        return Some(format!(
            "spec.export.pseudonymisation: no PseudonymisationService {name} in the hub's namespace {hub_ns}"
        ));
    };
    let Some(domain) = service
        .spec
        .domains
        .iter()
        .find(|d| d.name == export.domain)
    else {
        return Some(format!(
            "spec.export.domain: PseudonymisationService {name} has no domain {}",
            export.domain
        ));
    };
    let ns = node.workload_namespace();
    let admitted = domain.callers.iter().any(|c| {
        c.namespace == ns
            && c.service_account
                .as_deref()
                .is_none_or(|sa| sa == SERVICE_ACCOUNT)
    });
    (!admitted).then(|| {
        format!(
            "spec.export.domain: domain {} of PseudonymisationService {name} does not list this node's jobs (namespace {ns}, ServiceAccount {SERVICE_ACCOUNT}) among its callers",
            export.domain
        )
    })
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
        let objects = children(&node(), &Inputs::default()).expect("build");
        assert_eq!(objects.len(), 4);
        for d in &objects[1..] {
            assert_eq!(
                d.object.metadata.namespace.as_deref(),
                Some("region-stockholm-gotland")
            );
        }
    }
}
