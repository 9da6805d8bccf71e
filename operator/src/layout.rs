//! Where every tenant's data and keys live, and what each credential and token may reach:
//! bucket names and prefixes, OpenBao namespaces, mounts and paths, the grants behind every
//! issued credential and the policies behind every token. Pure: the controllers act on it
//! (`controller::storage`), the catalogue and the reference jobs read it, and none of them
//! has a copy of their own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::adapters::s3::{Access, Grant};
use crate::api::{DataHub, RegionalNode, StorageMode};

/// The owner a resource's buckets record: `Kind/name`. Not the UID, so that a resource deleted
/// with `deletionPolicy: Retain` and created again under its name finds its buckets again.
pub fn bucket_owner<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}", K::kind(&()), kube::ResourceExt::name_any(obj))
}

/// KV version 2 mount inside each custodian's OpenBao namespace.
pub const KV_MOUNT: &str = "secrets";
/// Transit mount inside each custodian's OpenBao namespace.
pub const KEY_MOUNT: &str = "transit";
/// Mount of the Kubernetes auth method (root namespace).
pub const AUTH_MOUNT: &str = "kubernetes";
/// Lifetime of an issued S3 credential. It is re-issued when a third of it remains, so a
/// credential that leaks stops working within this time.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Lifetime of an OpenBao token issued to a node's or hub's workload.
pub const TOKEN_TTL_SECONDS: u64 = 900;

/// The buckets and OpenBao names of one regional node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLayout {
    /// Bucket of the region's raw extracts.
    pub landing: String,
    /// Bucket of the region's data in the common model (and its exports in federated mode).
    pub standardised: String,
    /// OpenBao namespace of the region's keys and credentials.
    pub openbao_namespace: String,
    /// The region's Transit key.
    pub key: String,
    /// OpenBao policy (root namespace) of the node's workloads, and the Kubernetes auth role
    /// of the same name that logs them in under it.
    pub access: String,
    /// KV path of the node's own S3 credential.
    pub credentials_path: String,
}

/// The layout of a node.
pub fn node_layout(node: &RegionalNode) -> NodeLayout {
    let name = kube::ResourceExt::name_any(node);
    let prefix = node.bucket_prefix();
    NodeLayout {
        landing: format!("{prefix}-landing"),
        standardised: format!("{prefix}-standardised"),
        openbao_namespace: format!("region-{name}"),
        key: "region".into(),
        access: format!("vardhub-region-{name}"),
        credentials_path: "s3/node".into(),
    }
}

/// The node's own credential: its two buckets, nothing else.
pub fn node_grants(node: &RegionalNode) -> Vec<Grant> {
    let l = node_layout(node);
    vec![
        Grant {
            bucket: l.landing,
            prefix: None,
            access: Access::ReadWrite,
        },
        Grant {
            bucket: l.standardised,
            prefix: None,
            access: Access::ReadWrite,
        },
    ]
}

/// The prefix federated exports are written under in the node's standardised bucket.
pub fn federated_export_prefix(domain: &str) -> String {
    format!("export/{domain}")
}

/// The buckets and OpenBao names of one hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubLayout {
    /// Landing zone: one prefix per region (central mode only).
    pub landing: String,
    /// Standardised zone: one prefix per region (central mode only).
    pub standardised: String,
    /// Purpose-specific zone: one prefix per data product.
    pub products: String,
    /// OpenBao namespace of the hub's keys and credentials.
    pub openbao_namespace: String,
    /// The hub's Transit key.
    pub key: String,
    /// OpenBao policy (root namespace) of the hub's workloads, and the Kubernetes auth role
    /// of the same name that logs them in under it.
    pub access: String,
    /// OpenBao policy and Kubernetes auth role of the hub's exposure components: their
    /// read-only credential, nothing else. A `.` cannot occur in a hub's name, so no other
    /// hub's policy or role can have this name.
    pub exposure_access: String,
}

/// The layout of a hub.
pub fn hub_layout(hub: &DataHub) -> HubLayout {
    let name = kube::ResourceExt::name_any(hub);
    let prefix = hub.bucket_prefix();
    HubLayout {
        landing: format!("{prefix}-landing"),
        standardised: format!("{prefix}-standardised"),
        products: format!("{prefix}-products"),
        openbao_namespace: format!("hub-{name}"),
        key: "hub".into(),
        access: format!("vardhub-hub-{name}"),
        exposure_access: format!("vardhub-hub-{name}.exposure"),
    }
}

/// Name of the hub's exposure API objects (Deployment, Service, ServiceAccount, ...).
pub const EXPOSURE_API: &str = "exposure-api";

/// Where the hub's exposure API is served inside the cluster (HTTPS, port 443).
pub fn exposure_api_url(hub: &DataHub) -> String {
    format!("https://{EXPOSURE_API}.{}.svc", hub.workload_namespace())
}

/// Name of the hub's SFTP server objects (Deployment, Service, ServiceAccount, ...).
pub const EXPOSURE_SFTP: &str = "exposure-sftp";

/// Where the hub's SFTP server is served inside the cluster (port 22).
pub fn exposure_sftp_url(hub: &DataHub) -> String {
    format!("sftp://{EXPOSURE_SFTP}.{}.svc", hub.workload_namespace())
}

/// KV path (in the hub's OpenBao namespace) of the SFTP server's host key.
pub const SFTP_HOST_KEY_PATH: &str = "exposure/sftp-host-key";

/// The PKI mount of the hub's exposure API, inside the hub's OpenBao namespace.
pub const EXPOSURE_PKI: &str = "exposure-pki";

/// The exposure PKI's path from OpenBao's root (`hub-<hub>/exposure-pki`): where the API
/// issues its certificate and where clients read the CA they trust (`<path>/ca/pem`).
pub fn exposure_pki_path(hub: &DataHub) -> String {
    format!("{}/{EXPOSURE_PKI}", hub_layout(hub).openbao_namespace)
}

/// The DNS names of the exposure API's certificate: its Service's names in the cluster.
pub fn exposure_dns_names(hub: &DataHub) -> Vec<String> {
    let base = format!("{EXPOSURE_API}.{}.svc", hub.workload_namespace());
    vec![base.clone(), format!("{base}.cluster.local")]
}

/// KV path (in the hub's OpenBao namespace) of a node's ingest credential.
pub fn ingest_credentials_path(node: &str) -> String {
    format!("s3/ingest/{node}")
}

/// KV path (in the custodian's OpenBao namespace) of the claim written before a bucket is
/// created (see [`crate::adapters::s3::CreationClaims`]). No workload's policy reaches it.
pub fn bucket_claim_path(bucket: &str) -> String {
    format!("claims/buckets/{bucket}")
}

/// KV path (in the custodian's OpenBao namespace) of the owner record of the OpenBao policy
/// and the Kubernetes auth role named `name`, written before either is created. No workload's
/// policy reaches it.
pub fn access_claim_path(name: &str) -> String {
    format!("claims/access/{name}")
}

/// The operator's own OpenBao namespace: the owner records of what it writes in the root
/// namespace on behalf of resources that have no OpenBao namespace of their own (a
/// pseudonymisation service's mounts, policies and roles). No workload's policy reaches it.
pub const REGISTRY_NAMESPACE: &str = "vardhub-claims";

/// The owner the registry namespace records in its metadata.
pub const REGISTRY_OWNER: &str = "vardhub-operator";

/// KV path (in [`REGISTRY_NAMESPACE`]) of the owner record of the OpenBao namespace
/// `namespace` (a custodian's `region-<node>` or `hub-<hub>`), written once before the
/// namespace is created: OpenBao takes a second creation of a namespace as an update of its
/// metadata, so the namespace's own owner metadata cannot settle a race between two owners.
pub fn namespace_claim_path(namespace: &str) -> String {
    format!("claims/namespaces/{namespace}")
}

/// KV path (in [`REGISTRY_NAMESPACE`]) of the owner record of the pseudonymisation service
/// `name` in `namespace`: of its Transit and PKI mounts, its policies and its roles. A
/// namespace has no dot, so no two services share a record.
pub fn service_claim_path(namespace: &str, name: &str) -> String {
    format!("claims/pseudonymisation/{namespace}.{name}")
}

/// The owner a pseudonymisation service's record names: `PseudonymisationService/<ns>/<name>`
/// (not the UID, so that a service deleted and created again under its name finds its keys).
pub fn service_owner(namespace: &str, name: &str) -> String {
    format!("PseudonymisationService/{namespace}/{name}")
}

/// KV path (in the hub's OpenBao namespace) of a hub role's credential.
pub fn role_credentials_path(role: HubRole) -> String {
    format!("s3/roles/{}", role.name())
}

/// What a node may do in the hub's storage: in central mode, write its own regions' landing
/// prefixes (a drop box: no read, no list); in federated mode nothing at all.
pub fn ingest_grants(hub: &DataHub, node: &RegionalNode) -> Vec<Grant> {
    if hub.spec.storage_mode == StorageMode::Federated {
        return Vec::new();
    }
    let l = hub_layout(hub);
    node.spec
        .regions
        .iter()
        .map(|r| Grant {
            bucket: l.landing.clone(),
            prefix: Some(r.code().to_string()),
            access: Access::Write,
        })
        .collect()
}

/// The hub's own workloads, each with the least its step needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubRole {
    /// Reads the landing zone, writes the standardised zone (central mode only).
    Standardise,
    /// Reads standardised data (the hub's, or the regions' exports in federated mode) and
    /// writes the purpose-specific zone.
    Publish,
    /// Reads the purpose-specific zone, to hand products to permit holders (only while the
    /// hub exposes them).
    Expose,
}

impl HubRole {
    /// Name in paths and sessions.
    pub fn name(self) -> &'static str {
        match self {
            HubRole::Standardise => "standardise",
            HubRole::Publish => "publish",
            HubRole::Expose => "expose",
        }
    }

    /// The roles `hub` has: by its storage mode, and `Expose` while it exposes products.
    pub fn of(hub: &DataHub) -> Vec<HubRole> {
        let mut roles = match hub.spec.storage_mode {
            StorageMode::Central => vec![HubRole::Standardise, HubRole::Publish],
            StorageMode::Federated => vec![HubRole::Publish],
        };
        if hub.exposes() {
            roles.push(HubRole::Expose);
        }
        roles
    }
}

/// The grants of a hub role, given the hub's member nodes.
pub fn role_grants(hub: &DataHub, role: HubRole, members: &[RegionalNode]) -> Vec<Grant> {
    let l = hub_layout(hub);
    let whole = |bucket: &str, access| Grant {
        bucket: bucket.into(),
        prefix: None,
        access,
    };
    let mut grants = match (role, hub.spec.storage_mode) {
        (HubRole::Standardise, _) => vec![
            whole(&l.landing, Access::Read),
            whole(&l.standardised, Access::ReadWrite),
        ],
        (HubRole::Expose, _) => vec![whole(&l.products, Access::Read)],
        (HubRole::Publish, StorageMode::Central) => vec![
            whole(&l.standardised, Access::Read),
            whole(&l.products, Access::ReadWrite),
        ],
        (HubRole::Publish, StorageMode::Federated) => {
            let mut g = vec![whole(&l.products, Access::ReadWrite)];
            for node in members {
                if let Some(export) = &node.spec.export {
                    g.push(Grant {
                        bucket: node_layout(node).standardised,
                        prefix: Some(federated_export_prefix(&export.domain)),
                        access: Access::Read,
                    });
                }
            }
            g
        }
    };
    grants.sort();
    grants
}

/// An OpenBao policy as JSON, from `(path, capabilities)` pairs.
pub fn openbao_policy(paths: &[(String, &[&str])]) -> Value {
    let mut map = serde_json::Map::new();
    for (path, caps) in paths {
        map.insert(path.clone(), json!({ "capabilities": caps }));
    }
    json!({ "path": map })
}

/// The OpenBao policy of a node's workloads: encrypt and decrypt with the region's key, read
/// its own S3 credential and, when it exports to a hub, its ingest credential there.
pub fn node_policy(node: &RegionalNode) -> Value {
    let l = node_layout(node);
    let ns = &l.openbao_namespace;
    let mut paths: Vec<(String, &[&str])> = vec![
        (format!("{ns}/{KEY_MOUNT}/encrypt/{}", l.key), &["update"]),
        (format!("{ns}/{KEY_MOUNT}/decrypt/{}", l.key), &["update"]),
        (
            format!("{ns}/{KV_MOUNT}/data/{}", l.credentials_path),
            &["read"],
        ),
    ];
    if let Some(hub) = &node.spec.hub {
        let node_name = kube::ResourceExt::name_any(node);
        paths.push((
            format!(
                "hub-{}/{KV_MOUNT}/data/{}",
                hub.name,
                ingest_credentials_path(&node_name)
            ),
            &["read"],
        ));
    }
    openbao_policy(&paths)
}

/// The OpenBao policy of a hub's workloads: the hub key and the hub roles' credentials.
pub fn hub_policy(hub: &DataHub) -> Value {
    let l = hub_layout(hub);
    let ns = &l.openbao_namespace;
    let mut paths: Vec<(String, &[&str])> = vec![
        (format!("{ns}/{KEY_MOUNT}/encrypt/{}", l.key), &["update"]),
        (format!("{ns}/{KEY_MOUNT}/decrypt/{}", l.key), &["update"]),
    ];
    for role in HubRole::of(hub) {
        if role == HubRole::Expose {
            continue;
        }
        paths.push((
            format!("{ns}/{KV_MOUNT}/data/{}", role_credentials_path(role)),
            &["read"],
        ));
    }
    openbao_policy(&paths)
}

/// The OpenBao policy of a hub's exposure components: read their own credential, and take
/// the API's server certificate (API on) or read the SFTP server's host key (SFTP on); no
/// Transit key.
pub fn exposure_policy(hub: &DataHub) -> Value {
    let l = hub_layout(hub);
    let mut paths: Vec<(String, &[&str])> = vec![(
        format!(
            "{}/{KV_MOUNT}/data/{}",
            l.openbao_namespace,
            role_credentials_path(HubRole::Expose)
        ),
        &["read"],
    )];
    if hub.spec.exposure.api {
        paths.push((
            format!(
                "{}/issue/{}",
                exposure_pki_path(hub),
                crate::adapters::openbao::SERVER_ROLE
            ),
            &["update"],
        ));
    }
    if hub.spec.exposure.sftp {
        paths.push((
            format!(
                "{}/{KV_MOUNT}/data/{SFTP_HOST_KEY_PATH}",
                l.openbao_namespace
            ),
            &["read"],
        ));
    }
    openbao_policy(&paths)
}
