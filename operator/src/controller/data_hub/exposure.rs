//! What a hub runs to hand its data products to permit holders: the API component (`vardhub
//! exposure-api`) and the SFTP server (`vardhub exposure-sftp`), each with its own
//! ServiceAccount, read-only in the cluster (permits, whose status they count accesses in) and
//! in S3 (the purpose-specific zone), its Service and its network policy. Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::KubernetesRole;
use crate::api::DataHub;
use crate::controller::apply::DesiredObject;
use crate::controller::component::Component;
use crate::controller::network;
use crate::controller::storage::{self, HubRole, TOKEN_TTL_SECONDS};
use crate::controller::workload::{self, Inputs};

pub use crate::layout::{
    EXPOSURE_API as API, EXPOSURE_SFTP as SFTP, SFTP_HOST_KEY_PATH, exposure_api_url as api_url,
    exposure_sftp_url as sftp_url,
};
use crate::layout::{EXPOSURE_PKI, exposure_dns_names, exposure_pki_path};

/// The common name of every hub's exposure CA (each is its own mount's).
pub const CA_NAME: &str = "vardhub exposure CA";

/// The PKI engine of the hub's exposure API, in the hub's OpenBao namespace: a CA of its own
/// whose key never leaves OpenBao, and a role for exactly the API's in-cluster names.
pub fn server_pki(hub: &DataHub) -> crate::adapters::openbao::ServerPki {
    crate::adapters::openbao::ServerPki {
        mount: EXPOSURE_PKI.into(),
        names: exposure_dns_names(hub),
    }
}
/// Port of the API's HTTPS server.
pub const PORT: i32 = 8080;
/// Port of the SFTP server's container (the Service answers on 22).
pub const SFTP_PORT: i32 = 2222;

/// The API as one of the project's components.
pub fn component(hub: &DataHub) -> Component<'_> {
    Component {
        name: API.into(),
        namespace: Some(hub.workload_namespace()),
        app: "exposure-api",
        instance: hub.name_any(),
        role: "exposure",
        placement: &hub.spec.placement,
        port_name: "https",
        port: PORT,
    }
}

/// The SFTP server as one of the project's components.
pub fn sftp_component(hub: &DataHub) -> Component<'_> {
    Component {
        name: SFTP.into(),
        namespace: Some(hub.workload_namespace()),
        app: "exposure-sftp",
        instance: hub.name_any(),
        role: "exposure",
        placement: &hub.spec.placement,
        port_name: "sftp",
        port: SFTP_PORT,
    }
}

/// The Kubernetes auth role of the exposure components: the ServiceAccounts of those that are
/// on, in the hub's namespace, get the exposure policy and nothing else (no key, no other
/// role's credential).
pub fn role(hub: &DataHub) -> KubernetesRole {
    let mut service_accounts = Vec::new();
    if hub.spec.exposure.api {
        service_accounts.push(API.to_string());
    }
    if hub.spec.exposure.sftp {
        service_accounts.push(SFTP.to_string());
    }
    KubernetesRole {
        service_accounts,
        namespaces: vec![hub.workload_namespace()],
        policies: vec![storage::hub_layout(hub).exposure_access],
        ttl_seconds: TOKEN_TTL_SECONDS,
        ..Default::default()
    }
}

/// The objects of the hub's exposure: the API's when `spec.exposure.api` is on, the SFTP
/// server's when `spec.exposure.sftp` is; none otherwise.
pub fn children(hub: &DataHub, inputs: &Inputs) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let mut out = Vec::new();
    if let Some(oidc) = hub
        .spec
        .exposure
        .oidc
        .as_ref()
        .filter(|_| hub.spec.exposure.api)
    {
        out.extend(identity(&component(hub))?);
        out.push(DesiredObject::from_typed(&deployment(
            hub,
            inputs,
            &oidc.issuer,
            &oidc.audience,
        ))?);
        out.push(DesiredObject::from_typed(&component(hub).service(443))?);
        out.push(DesiredObject::from_typed(&network_policy(
            hub,
            inputs,
            &oidc.issuer,
        ))?);
    }
    if hub.spec.exposure.sftp {
        let c = sftp_component(hub);
        out.extend(identity(&c)?);
        out.push(DesiredObject::from_typed(&sftp_deployment(hub, inputs))?);
        out.push(DesiredObject::from_typed(&c.service(22))?);
        out.push(DesiredObject::from_typed(&c.network_policy(
            None,
            Some(network::to_peers(&inputs.paths.api_server)),
        ))?);
    }
    Ok(out)
}

/// A component's ServiceAccount, its Role (read the permits, count in their status) and the
/// binding between them.
fn identity(c: &Component<'_>) -> Result<Vec<DesiredObject>, serde_json::Error> {
    Ok(vec![
        DesiredObject::from_typed(&ServiceAccount {
            metadata: c.meta(),
            automount_service_account_token: Some(true),
            ..Default::default()
        })?,
        DesiredObject::from_typed(&permit_reader(c.meta()))?,
        DesiredObject::from_typed(&c.role_binding())?,
    ])
}

/// Read access to the permits of the hub's namespace (all an exposure component needs to
/// decide), and their status, where it counts accesses.
pub fn permit_reader(metadata: ObjectMeta) -> Role {
    Role {
        metadata,
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["vardhub.io".into()]),
                resources: Some(vec!["datapermits".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec!["vardhub.io".into()]),
                resources: Some(vec!["datapermits/status".into()]),
                verbs: vec!["patch".into()],
                ..Default::default()
            },
        ]),
    }
}

/// The API's Deployment, meeting Pod Security "restricted". It logs in to OpenBao with its
/// ServiceAccount's token and reads its S3 credential there: no secret in the spec.
pub fn deployment(hub: &DataHub, inputs: &Inputs, issuer: &str, audience: &str) -> Deployment {
    let c = component(hub);
    let mut args = common_args(hub, "exposure-api", PORT);
    args.extend([
        format!("--issuer={issuer}"),
        format!("--audience={audience}"),
        format!("--tls-pki-mount={}", exposure_pki_path(hub)),
    ]);
    args.extend(
        exposure_dns_names(hub)
            .into_iter()
            .map(|n| format!("--tls-name={n}")),
    );
    // Readiness asks over HTTPS (the kubelet does not check the certificate); liveness only
    // connects, so that the pod is not restarted while it waits for its first certificate.
    let container = Container {
        readiness_probe: Some(c.http_probe("/readyz", true, 10)),
        liveness_probe: Some(c.tcp_probe(10)),
        ..container(hub, inputs, "api", args)
    };
    c.deployment(1, API, container)
}

/// A component's container: the project's image with `args`, its environment and its
/// resources.
fn container(hub: &DataHub, inputs: &Inputs, name: &str, args: Vec<String>) -> Container {
    Container {
        name: name.into(),
        image: Some(inputs.image.clone()),
        args: Some(args),
        env: Some(env(hub, inputs)),
        resources: Some(workload::resources_or(
            &hub.spec.placement,
            "100m",
            "64Mi",
            "256Mi",
        )),
        ..Default::default()
    }
}

/// The arguments both components take: what to run, where to listen, which hub and bucket.
fn common_args(hub: &DataHub, command: &str, port: i32) -> Vec<String> {
    vec![
        command.to_string(),
        format!("--listen=0.0.0.0:{port}"),
        format!("--namespace={}", hub.workload_namespace()),
        format!("--hub={}", hub.name_any()),
        format!("--bucket={}", storage::hub_layout(hub).products),
    ]
}

/// The environment both components take: how they log in to OpenBao with their
/// ServiceAccount's token, where their credential lives, where S3 is.
fn env(hub: &DataHub, inputs: &Inputs) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    let l = storage::hub_layout(hub);
    let mut env = workload::job_identity(
        &inputs.openbao_addr,
        &l.exposure_access,
        &format!(
            "{}/{}/data/{}",
            l.openbao_namespace,
            storage::KV_MOUNT,
            storage::role_credentials_path(HubRole::Expose)
        ),
        &inputs.s3_endpoint,
    );
    for e in &mut env {
        if e.name == "VARDHUB_OPENBAO_TOKEN_FILE" {
            e.value = Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into());
        }
    }
    env
}

/// The SFTP server's Deployment, meeting Pod Security "restricted". Besides its credential it
/// reads its host key from OpenBao. It listens only once it serves, so readiness is a TCP
/// connect; it has no liveness probe, so that a slow OpenBao does not get it restarted.
pub fn sftp_deployment(hub: &DataHub, inputs: &Inputs) -> Deployment {
    let l = storage::hub_layout(hub);
    let c = sftp_component(hub);
    let mut args = common_args(hub, "exposure-sftp", SFTP_PORT);
    args.push(format!(
        "--host-key={}/{}/data/{SFTP_HOST_KEY_PATH}",
        l.openbao_namespace,
        storage::KV_MOUNT
    ));
    let container = Container {
        readiness_probe: Some(c.tcp_probe(5)),
        ..container(hub, inputs, "sftp", args)
    };
    c.deployment(1, SFTP, container)
}

/// Permit holders come from anywhere, so the HTTPS port is open to all; every request is
/// authenticated and checked against a permit. Out of the pod go, besides the hub's own
/// paths (DNS, OpenBao, S3), the API server (permits) and the issuer's address when it is an
/// IP literal; an issuer named by host name is reached only if it is OpenBao.
pub fn network_policy(hub: &DataHub, inputs: &Inputs, issuer: &str) -> NetworkPolicy {
    let mut egress = network::to_peers(&inputs.paths.api_server);
    egress.extend(network::to_peers(&network::literal(issuer)));
    component(hub).network_policy(None, Some(egress))
}

/// The SFTP server's host key as kept in OpenBao: the private key in the OpenSSH form, and
/// the public key in the `known_hosts` form (without a host name).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct HostKey {
    /// The private key (OpenSSH PEM).
    pub private_key: zeroize::Zeroizing<String>,
    /// The public key, `ssh-ed25519 AAAA…`.
    pub public_key: String,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", self.public_key)
    }
}

impl HostKey {
    /// A new Ed25519 host key from the system's secure randomness.
    pub fn generate() -> Result<Self, String> {
        use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(seed.as_mut())
            .map_err(|_| "the system has no secure randomness".to_string())?;
        let key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        let private_key = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| format!("encoding the host key: {e}"))?;
        let public_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| format!("encoding the host key: {e}"))?;
        Ok(Self {
            private_key: zeroize::Zeroizing::new(private_key.to_string()),
            public_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(exposure: serde_json::Value) -> DataHub {
        DataHub::new(
            "h",
            serde_json::from_value(serde_json::json!({ "exposure": exposure })).expect("spec"),
        )
    }

    #[test]
    fn a_host_key_is_new_each_time_and_reads_back() {
        let a = HostKey::generate().expect("key");
        let b = HostKey::generate().expect("key");
        assert_ne!(a.public_key, b.public_key);
        assert!(a.public_key.starts_with("ssh-ed25519 "));
        let parsed = russh::keys::PrivateKey::from_openssh(a.private_key.as_str()).expect("parse");
        assert_eq!(
            parsed.public_key().to_openssh().expect("encode"),
            a.public_key
        );
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn nothing_runs_unless_the_api_is_on() {
        let inputs = Inputs::default();
        assert!(
            children(&hub(serde_json::json!({})), &inputs)
                .expect("objects")
                .is_empty()
        );
        let on = hub(serde_json::json!({
            "api": true,
            "oidc": {"issuer": "http://10.0.0.1:8200/v1/identity/oidc", "audience": "a"},
        }));
        let objects = children(&on, &inputs).expect("objects");
        assert_eq!(objects.len(), 6);
        let both = hub(serde_json::json!({
            "api": true,
            "sftp": true,
            "oidc": {"issuer": "http://10.0.0.1:8200/v1/identity/oidc", "audience": "a"},
        }));
        assert_eq!(children(&both, &inputs).expect("objects").len(), 12);
        let sftp = hub(serde_json::json!({ "sftp": true }));
        let objects = children(&sftp, &inputs).expect("objects");
        assert_eq!(objects.len(), 6);
        assert_eq!(role(&sftp).service_accounts, vec![SFTP.to_string()]);
        let policy = storage::exposure_policy(&sftp).to_string();
        assert!(policy.contains("exposure/sftp-host-key"), "{policy}");
        assert!(!policy.contains("exposure-pki"), "{policy}");
    }

    #[test]
    fn the_api_reads_permits_and_its_own_credential_only() {
        let h = hub(serde_json::json!({
            "api": true,
            "oidc": {"issuer": "http://10.0.0.1:8200/v1/identity/oidc", "audience": "a"},
        }));
        let rules = permit_reader(component(&h).meta())
            .rules
            .unwrap_or_default();
        assert!(rules.iter().all(|r| {
            (r.resources == Some(vec!["datapermits".to_string()])
                && r.verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str())))
                || (r.resources == Some(vec!["datapermits/status".to_string()])
                    && r.verbs == vec!["patch".to_string()])
        }));
        let policy = storage::exposure_policy(&h).to_string();
        assert!(
            policy.contains("hub-h/secrets/data/s3/roles/expose"),
            "{policy}"
        );
        assert!(!policy.contains("transit"), "{policy}");
        assert!(
            policy.contains("hub-h/exposure-pki/issue/server"),
            "{policy}"
        );
        assert!(!policy.contains("sftp-host-key"), "{policy}");
        assert_eq!(role(&h).service_accounts, vec![API.to_string()]);
        for d in [
            deployment(&h, &Inputs::default(), "http://i", "a"),
            sftp_deployment(&h, &Inputs::default()),
        ] {
            let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
            let env = pod.containers[0].env.clone().unwrap_or_default();
            assert!(
                env.iter()
                    .all(|e| !e.name.contains("SECRET") && e.value_from.is_none()),
                "no secret in the pod spec"
            );
        }
    }
}
