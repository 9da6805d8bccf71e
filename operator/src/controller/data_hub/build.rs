//! What a `DataHub` is made of: its members, zones and objects. Pure: the controller applies
//! them and `render` prints them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::KubernetesRole;
use crate::adapters::s3::BucketSpec;
use crate::api::{DataHub, DataProduct, ReferenceProduct, RegionalNode, StorageMode};
use crate::controller::apply::{DesiredObject, OwnedKind, Owner};
use crate::controller::regional_node::build::JOB_LABEL;
use crate::controller::storage::{self, HubRole, TOKEN_TTL_SECONDS};
use crate::controller::workload;
pub use crate::controller::workload::Inputs;
use crate::flow::layout;

/// Name of the hub's ServiceAccount, the identity of its workloads.
pub const SERVICE_ACCOUNT: &str = "data-hub";
/// Label on the hub's namespace naming the hub.
pub const HUB_LABEL: &str = "vardhub.io/data-hub";
/// Name of the standardisation job's CronJob (and the job in the status).
pub const STANDARDISE_JOB: &str = "standardise";

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

/// Whether an event of `node` concerns `hub`: the hub names or selects it, the node names
/// the hub, or the hub's status still lists it (so that a node leaving is noticed). Pure.
pub fn concerns(hub: &DataHub, node: &RegionalNode) -> bool {
    let name = node.name_any();
    let named = hub.spec.regional_nodes.iter().any(|r| r.name == name);
    let selected = hub.spec.regional_node_selector.as_ref().is_some_and(|s| {
        selector_matches(s, node.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
    });
    let points_here = node
        .spec
        .hub
        .as_ref()
        .is_some_and(|h| h.name == hub.name_any());
    let listed = hub
        .status
        .as_ref()
        .is_some_and(|s| s.regions.iter().any(|r| r.node == name));
    named || selected || points_here || listed
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
    for product in &hub.spec.zones.purpose_specific {
        let Some(build) = &product.build else {
            continue;
        };
        if build.product != ReferenceProduct::HipFracture {
            continue;
        }
        let schema = <crate::flow::publish::HipFracture as crate::flow::table::Table>::schema();
        if let Some(unknown) = build.columns.iter().find(|c| schema.index_of(c).is_err()) {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(Invalid {
                field: "spec.zones.purposeSpecific[].build.columns",
                message: format!(
                    "data product {}: hipFracture has no column {unknown:?}; its columns are {}",
                    product.name,
                    known.join(", ")
                ),
            });
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
                owner: storage::bucket_owner(hub),
                retention_days: z.landing.retention_days,
            },
            layout: "one prefix per region",
        });
        out.push(Zone {
            zone: "standardised",
            bucket: BucketSpec {
                name: l.standardised,
                owner: storage::bucket_owner(hub),
                retention_days: z.standardised.retention_days,
            },
            layout: "one prefix per region",
        });
    }
    out.push(Zone {
        zone: "purpose-specific",
        bucket: BucketSpec {
            name: l.products,
            owner: storage::bucket_owner(hub),
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
        policies: vec![l.access],
        ttl_seconds: TOKEN_TTL_SECONDS,
        ..Default::default()
    }
}

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::cluster::<Namespace>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
        OwnedKind::namespaced::<ServiceAccount>(),
        OwnedKind::namespaced::<CronJob>(),
        OwnedKind::namespaced::<Role>(),
        OwnedKind::namespaced::<RoleBinding>(),
        OwnedKind::namespaced::<Deployment>(),
        OwnedKind::namespaced::<Service>(),
    ]
}

/// Every object the hub owns in the cluster, in the order they must be applied.
pub fn children(
    hub: &DataHub,
    members: &[RegionalNode],
    inputs: &Inputs,
) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let paths = &inputs.paths;
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
    let allow_egress = crate::controller::network::allow_egress(&ns, egress);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SERVICE_ACCOUNT.into()),
            namespace: Some(ns),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let mut objects = vec![
        DesiredObject::from_typed(&namespace)?,
        DesiredObject::from_typed(&deny)?,
        DesiredObject::from_typed(&allow_egress)?,
        DesiredObject::from_typed(&account)?,
    ];
    for job in jobs(hub, members, inputs) {
        objects.push(DesiredObject::from_typed(&job)?);
    }
    objects.extend(super::exposure::children(hub, inputs)?);
    Ok(objects)
}

/// Name of a product's publish CronJob.
pub fn publish_job_name(product: &DataProduct) -> String {
    format!("publish-{}", product.name)
}

/// Where a product's input lies for each region, as `<county>=<bucket>/<prefix>`: every
/// member node that exports for the product's purpose (and, when the product names regions,
/// is one of them), under the node's first county code; in the hub's standardised zone in
/// central mode, in the region's export prefix in federated mode. Pure.
pub fn product_inputs(
    hub: &DataHub,
    members: &[RegionalNode],
    product: &DataProduct,
) -> Vec<String> {
    let l = storage::hub_layout(hub);
    members
        .iter()
        .filter(|n| {
            n.spec
                .export
                .as_ref()
                .is_some_and(|e| e.domain == product.purpose)
        })
        .filter_map(|n| {
            let county = n.spec.regions.first()?;
            if !product.regions.is_empty() && !product.regions.contains(county) {
                return None;
            }
            let code = county.code();
            Some(match hub.spec.storage_mode {
                StorageMode::Central => format!(
                    "{code}={}/{}",
                    l.standardised,
                    layout::standardised(code, &product.purpose)
                ),
                StorageMode::Federated => format!(
                    "{code}={}/{}",
                    storage::node_layout(n).standardised,
                    layout::federated_export(&product.purpose)
                ),
            })
        })
        .collect()
}

/// The hub's scheduled jobs: standardisation (central mode, when declared) and a publish job
/// per product that declares its build. Each logs in as the hub's role and reads the
/// credential of its own step, which holds exactly that step's grants.
pub fn jobs(hub: &DataHub, members: &[RegionalNode], inputs: &Inputs) -> Vec<CronJob> {
    let l = storage::hub_layout(hub);
    let identity = |role: HubRole| {
        workload::job_identity(
            &inputs.openbao_addr,
            &l.access,
            &format!(
                "{}/{}/data/{}",
                l.openbao_namespace,
                storage::KV_MOUNT,
                storage::role_credentials_path(role)
            ),
            &inputs.s3_endpoint,
        )
    };
    let cron_job = |name: String, schedule: &str, container: Container| {
        let mut labels = Owner::of(hub).labels();
        labels.insert(JOB_LABEL.into(), name.clone());
        workload::cron_job(
            &workload::JobPod {
                namespace: hub.workload_namespace(),
                name,
                labels,
                service_account: SERVICE_ACCOUNT,
                placement: &hub.spec.placement,
                audience_tokens: Vec::new(),
            },
            schedule,
            container,
        )
    };
    let resources = workload::resources_or(&hub.spec.placement, "500m", "512Mi", "2Gi");
    let mut out = Vec::new();
    if let (StorageMode::Central, Some(job)) = (hub.spec.storage_mode, &hub.spec.standardisation) {
        let mut env = identity(HubRole::Standardise);
        env.extend(workload::env_vars([
            ("VARDHUB_LANDING_BUCKET", l.landing.clone()),
            ("VARDHUB_STANDARDISED_BUCKET", l.standardised.clone()),
        ]));
        let (image, args) = workload::job_image(job.image.as_ref(), STANDARDISE_JOB, &inputs.image);
        out.push(cron_job(
            STANDARDISE_JOB.into(),
            &job.schedule,
            Container {
                name: STANDARDISE_JOB.into(),
                image: Some(image),
                args,
                env: Some(env),
                resources: Some(resources.clone()),
                ..Default::default()
            },
        ));
    }
    for product in &hub.spec.zones.purpose_specific {
        let Some(build) = &product.build else {
            continue;
        };
        let mut env = identity(HubRole::Publish);
        env.extend(workload::env_vars([
            ("VARDHUB_PRODUCT", product.name.clone()),
            ("VARDHUB_PRODUCT_PURPOSE", product.purpose.clone()),
            (
                "VARDHUB_REFERENCE_PRODUCT",
                match build.product {
                    ReferenceProduct::HipFracture => "hipFracture",
                    ReferenceProduct::WaitingTimes => "waitingTimes",
                }
                .into(),
            ),
            ("VARDHUB_PRODUCT_COLUMNS", build.columns.join(",")),
            (
                "VARDHUB_SUPPRESSION_THRESHOLD",
                build.suppression_threshold.to_string(),
            ),
            ("VARDHUB_PRODUCTS_BUCKET", l.products.clone()),
            (
                "VARDHUB_PRODUCT_INPUTS",
                product_inputs(hub, members, product).join(","),
            ),
        ]));
        env.retain(|e| e.value.as_deref().is_some_and(|v| !v.is_empty()));
        let (image, args) = workload::job_image(build.image.as_ref(), "publish", &inputs.image);
        out.push(cron_job(
            publish_job_name(product),
            &build.schedule,
            Container {
                name: "publish".into(),
                image: Some(image),
                args,
                env: Some(env),
                resources: Some(resources.clone()),
                ..Default::default()
            },
        ));
    }
    out
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

    fn exporting(name: &str, region: &str, domain: &str) -> RegionalNode {
        let mut n = node(name, &[region], &[]);
        n.spec.export = Some(
            serde_json::from_value(json!({
                "pseudonymisation": {"name": "ps"}, "domain": domain, "schedule": "0 4 * * *",
            }))
            .expect("export"),
        );
        n
    }

    fn env_of(job: &CronJob) -> BTreeMap<String, String> {
        let pod = job
            .spec
            .job_template
            .spec
            .as_ref()
            .expect("job")
            .template
            .spec
            .as_ref();
        pod.expect("pod").containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    fn products() -> serde_json::Value {
        json!({"purposeSpecific": [
            {"name": "hip-fracture", "purpose": "hip-fracture",
             "build": {"product": "hipFracture", "schedule": "0 7 * * *", "columns": ["region", "age_group"]}},
            {"name": "beds", "purpose": "beds"},
        ]})
    }

    #[test]
    fn a_central_hub_standardises_then_publishes_each_step_with_its_own_credential() {
        let h = hub(json!({"standardisation": {"schedule": "0 6 * * *"}, "zones": products()}));
        let members = [
            exporting("a", "25", "hip-fracture"),
            exporting("b", "24", "other-purpose"),
        ];
        let inputs = Inputs {
            image: "vardhub:test".into(),
            ..Default::default()
        };
        let jobs = jobs(&h, &members, &inputs);
        let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
        assert_eq!(names, ["standardise", "publish-hip-fracture"]);
        let standardise = env_of(&jobs[0]);
        assert_eq!(
            standardise["VARDHUB_S3_CREDENTIALS"],
            "hub-national/secrets/data/s3/roles/standardise"
        );
        assert_eq!(standardise["VARDHUB_OPENBAO_ROLE"], "vardhub-hub-national");
        let publish = env_of(&jobs[1]);
        assert_eq!(
            publish["VARDHUB_S3_CREDENTIALS"],
            "hub-national/secrets/data/s3/roles/publish"
        );
        // Only the region that exports for the product's purpose is an input.
        assert_eq!(
            publish["VARDHUB_PRODUCT_INPUTS"],
            "25=vardhub-hub-national-standardised/25/hip-fracture"
        );
        assert_eq!(publish["VARDHUB_PRODUCT_COLUMNS"], "region,age_group");
        assert_eq!(publish["VARDHUB_SUPPRESSION_THRESHOLD"], "5");
        let container = &jobs[1]
            .spec
            .job_template
            .spec
            .as_ref()
            .expect("job")
            .template
            .spec
            .as_ref()
            .expect("pod")
            .containers[0];
        assert_eq!(container.image.as_deref(), Some("vardhub:test"));
        assert_eq!(
            container.args.clone().unwrap_or_default(),
            ["job", "publish"]
        );
    }

    #[test]
    fn a_federated_hub_publishes_from_the_regions_export_prefixes() {
        let h = hub(json!({"storageMode": "federated", "zones": products()}));
        let jobs = jobs(
            &h,
            &[exporting("a", "25", "hip-fracture")],
            &Inputs::default(),
        );
        assert_eq!(jobs.len(), 1, "no standardisation in federated mode");
        assert_eq!(
            env_of(&jobs[0])["VARDHUB_PRODUCT_INPUTS"],
            "25=vardhub-a-standardised/export/hip-fracture"
        );
    }

    #[test]
    fn a_column_the_product_has_not_is_refused_naming_it() {
        let mut zones = products();
        zones["purposeSpecific"][0]["build"]["columns"] = json!(["region", "personnummer"]);
        let err = validate(&hub(json!({"zones": zones})), &[]).expect_err("unknown column");
        assert_eq!(err.field, "spec.zones.purposeSpecific[].build.columns");
        assert!(err.message.contains("\"personnummer\""), "{}", err.message);
        assert!(err.message.contains("hours_to_surgery"), "{}", err.message);
    }

    #[test]
    fn a_node_event_concerns_only_the_hubs_it_belongs_to_or_left() {
        let mut h = hub(json!({"regionalNodeSelector": {"matchLabels": {"hub": "national"}}}));
        assert!(concerns(&h, &node("a", &["01"], &[("hub", "national")])));
        assert!(!concerns(&h, &node("b", &["14"], &[("hub", "other")])));
        // A node that just left is still in the hub's status: the hub hears of it.
        h.status = Some(crate::api::DataHubStatus {
            regions: vec![crate::api::RegionState {
                code: "14".into(),
                node: "b".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(concerns(&h, &node("b", &["14"], &[("hub", "other")])));
    }
}
