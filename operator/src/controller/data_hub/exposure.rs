//! What a hub runs to hand its data products to permit holders: the API component (`vardhub
//! exposure-api`) with its own identity, read-only in the cluster (permits) and in S3 (the
//! purpose-specific zone), its Service and its network policy. Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Probe, ServiceAccount, TCPSocketAction};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::KubernetesRole;
use crate::api::DataHub;
use crate::controller::apply::DesiredObject;
use crate::controller::component::Component;
use crate::controller::network;
use crate::controller::storage::{self, HubRole, TOKEN_TTL_SECONDS};
use crate::controller::workload::{self, Inputs};

pub use crate::layout::{EXPOSURE_API as API, exposure_api_url as api_url};
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

fn meta(hub: &DataHub) -> ObjectMeta {
    component(hub).meta()
}

/// The Kubernetes auth role of the exposure components: their ServiceAccount, in the hub's
/// namespace, gets the exposure policy and nothing else (no key, no other role's credential).
pub fn role(hub: &DataHub) -> KubernetesRole {
    KubernetesRole {
        service_accounts: vec![API.into()],
        namespaces: vec![hub.workload_namespace()],
        policies: vec![storage::hub_layout(hub).exposure_policy],
        ttl_seconds: TOKEN_TTL_SECONDS,
        ..Default::default()
    }
}

/// The objects of the hub's exposure: none unless `spec.exposure.api` is on.
pub fn children(hub: &DataHub, inputs: &Inputs) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let Some(oidc) = hub
        .spec
        .exposure
        .oidc
        .as_ref()
        .filter(|_| hub.spec.exposure.api)
    else {
        return Ok(Vec::new());
    };
    Ok(vec![
        DesiredObject::from_typed(&ServiceAccount {
            metadata: meta(hub),
            automount_service_account_token: Some(true),
            ..Default::default()
        })?,
        DesiredObject::from_typed(&permit_reader(hub))?,
        DesiredObject::from_typed(&component(hub).role_binding())?,
        DesiredObject::from_typed(&deployment(hub, inputs, &oidc.issuer, &oidc.audience))?,
        DesiredObject::from_typed(&component(hub).service(443))?,
        DesiredObject::from_typed(&network_policy(hub, inputs, &oidc.issuer))?,
    ])
}

/// Read access to the permits of the hub's namespace (all the API needs to decide), and their
/// status, where it counts accesses.
pub fn permit_reader(hub: &DataHub) -> Role {
    Role {
        metadata: meta(hub),
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
    let l = storage::hub_layout(hub);
    let c = component(hub);
    // Readiness asks over HTTPS (the kubelet does not check the certificate); liveness only
    // connects, so that the pod is not restarted while it waits for its first certificate.
    let live = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(PORT),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let mut env = workload::job_identity(
        &inputs.openbao_addr,
        &l.exposure_role,
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
    let mut args = vec![
        "exposure-api".to_string(),
        format!("--listen=0.0.0.0:{PORT}"),
        format!("--namespace={}", hub.workload_namespace()),
        format!("--hub={}", hub.name_any()),
        format!("--bucket={}", l.products),
        format!("--issuer={issuer}"),
        format!("--audience={audience}"),
        format!("--tls-pki-mount={}", exposure_pki_path(hub)),
    ];
    args.extend(
        exposure_dns_names(hub)
            .into_iter()
            .map(|n| format!("--tls-name={n}")),
    );
    let container = Container {
        name: "api".into(),
        image: Some(inputs.image.clone()),
        args: Some(args),
        env: Some(env),
        readiness_probe: Some(c.http_probe("/readyz", true, 10)),
        liveness_probe: Some(live),
        resources: Some(workload::resources_or(
            &hub.spec.placement,
            "100m",
            "64Mi",
            "256Mi",
        )),
        ..Default::default()
    };
    c.deployment(1, API, container)
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
    }

    #[test]
    fn the_api_reads_permits_and_its_own_credential_only() {
        let h = hub(serde_json::json!({
            "api": true,
            "oidc": {"issuer": "http://10.0.0.1:8200/v1/identity/oidc", "audience": "a"},
        }));
        let rules = permit_reader(&h).rules.unwrap_or_default();
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
        assert_eq!(role(&h).service_accounts, vec![API.to_string()]);
        let pod = deployment(&h, &Inputs::default(), "http://i", "a")
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod");
        let env = pod.containers[0].env.clone().unwrap_or_default();
        assert!(
            env.iter()
                .all(|e| !e.name.contains("SECRET") && e.value_from.is_none()),
            "no secret in the pod spec"
        );
    }
}
