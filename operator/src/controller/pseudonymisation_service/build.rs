//! What a `PseudonymisationService` needs, in the cluster and in OpenBao. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::adapters::openbao::{self, KubernetesRole};
use crate::api::{PseudonymisationMode, PseudonymisationService};
use crate::controller::apply::{DesiredObject, OwnedKind};
use crate::controller::component::Component;
use crate::controller::network::{self, Paths};
use crate::controller::workload;
use crate::pseudonymisation::access::{self, Grants};

/// Port of the service's HTTPS API.
pub const PORT: i32 = 8080;
pub use crate::layout::AUTH_MOUNT;
/// Lifetime of the service's OpenBao token; the service logs in again at two thirds of it.
pub const TOKEN_TTL_SECONDS: u64 = 3600;

/// The names a service's objects get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The workload's ServiceAccount (its identity towards OpenBao).
    pub service_account: String,
    /// The Transit mount holding the service's domain keys.
    pub mount: String,
    /// The PKI mount issuing the service's server certificates.
    pub pki_mount: String,
    /// The OpenBao policy of the service.
    pub policy: String,
    /// The Kubernetes auth role of the service.
    pub role: String,
    /// The Kubernetes auth role through which the service has its callers' tokens
    /// confirmed with the API server.
    pub caller_role: String,
    /// The policy that allows re-identification in the reversible domains; bound to no one
    /// by the operator: whoever holds a permit gets it through their own OpenBao identity.
    pub reidentify_policy: String,
}

/// The names of a service's objects. Names in OpenBao join the namespace and the name with
/// dots, which a namespace never contains, so that no two services share one: with dashes,
/// `pseudo-reidentify` in `hub-x` would be given the re-identification policy of `pseudo`.
pub fn names(svc: &PseudonymisationService) -> Names {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    Names {
        service_account: format!("{name}-pseudonymiser"),
        mount: format!("pseudonymisation/{ns}/{name}"),
        pki_mount: pki_mount(&ns, &name),
        policy: format!("vardhub-pseudonymisation.{ns}.{name}"),
        role: format!("vardhub-pseudonymisation.{ns}.{name}"),
        caller_role: format!("vardhub-pseudonymisation.{ns}.{name}.callers"),
        reidentify_policy: format!("vardhub-pseudonymisation-reidentify.{ns}.{name}"),
    }
}

/// The DNS names of the service's certificate: its Service's names inside the cluster.
pub fn dns_names(svc: &PseudonymisationService) -> Vec<String> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    vec![
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ]
}

/// The service's PKI engine: its own CA, issuing certificates for its DNS names only.
pub fn server_pki(svc: &PseudonymisationService) -> openbao::ServerPki {
    openbao::ServerPki {
        mount: names(svc).pki_mount,
        names: dns_names(svc),
    }
}

/// The common name of every service's CA (each CA is its own mount's; X.509 limits a common
/// name to 64 characters, too few for a namespace and a name).
pub const CA_NAME: &str = "vardhub pseudonymisation CA";

/// The PKI mount of the service `name` in `namespace`; its CA (`<mount>/ca/pem`) is what
/// callers trust.
pub fn pki_mount(namespace: &str, name: &str) -> String {
    format!("pseudonymisation-pki/{namespace}/{name}")
}

/// The base URL callers use: HTTPS to the Service's name.
pub fn url(namespace: &str, name: &str) -> String {
    format!("https://{name}.{namespace}.svc:{PORT}")
}

/// The audience callers' tokens must carry for this service.
pub fn audience(svc: &PseudonymisationService) -> String {
    access::audience(&svc.namespace().unwrap_or_default(), &svc.name_any())
}

/// The key version each domain is pinned to: the spec's, else 1 (the version the operator
/// created the key with).
pub fn domain_versions(svc: &PseudonymisationService) -> Vec<(String, u64)> {
    svc.spec
        .domains
        .iter()
        .map(|d| (d.name.clone(), d.key_version.map_or(1, |v| v.max(1) as u64)))
        .collect()
}

/// The service's OpenBao policy: HMAC with its own keys and, in local mode, reading the HMAC
/// keys once at start; issuing its own server certificate. Nothing else: no key management,
/// no other mount.
pub fn policy(svc: &PseudonymisationService) -> serde_json::Value {
    let Names {
        mount, pki_mount, ..
    } = names(svc);
    let mut paths = serde_json::Map::new();
    paths.insert(
        format!("{pki_mount}/issue/{}", openbao::SERVER_ROLE),
        serde_json::json!({"capabilities": ["update"]}),
    );
    paths.insert(
        format!("{mount}/hmac/*"),
        serde_json::json!({"capabilities": ["update"]}),
    );
    if svc.spec.mode == PseudonymisationMode::Local {
        paths.insert(
            format!("{mount}/export/hmac-key/*"),
            serde_json::json!({"capabilities": ["read"]}),
        );
    }
    for d in svc.spec.domains.iter().filter(|d| d.reversible) {
        paths.insert(
            format!("{mount}/encrypt/{}", d.name),
            serde_json::json!({"capabilities": ["update"]}),
        );
    }
    serde_json::json!({ "path": paths })
}

/// The re-identification policy: decrypt in the reversible domains, nothing else. `None`
/// when no domain is reversible.
pub fn reidentify_policy(svc: &PseudonymisationService) -> Option<serde_json::Value> {
    let mount = names(svc).mount;
    let paths: serde_json::Map<String, serde_json::Value> = svc
        .spec
        .domains
        .iter()
        .filter(|d| d.reversible)
        .map(|d| {
            (
                format!("{mount}/decrypt/{}", d.name),
                serde_json::json!({"capabilities": ["update"]}),
            )
        })
        .collect();
    (!paths.is_empty()).then(|| serde_json::json!({ "path": paths }))
}

/// The Kubernetes auth role binding the service's ServiceAccount to its policy.
pub fn role(svc: &PseudonymisationService) -> KubernetesRole {
    let n = names(svc);
    KubernetesRole {
        service_accounts: vec![n.service_account],
        namespaces: vec![svc.namespace().unwrap_or_default()],
        policies: vec![n.policy],
        ttl_seconds: TOKEN_TTL_SECONDS,
        ..Default::default()
    }
}

/// The Kubernetes auth role that confirms callers' tokens: bound to the service's audience
/// and its callers' namespaces (and ServiceAccounts, when every grant names one). A login
/// only asks the API server whether the token is still live; the batch token it yields
/// carries no policy of the service's and is thrown away. `None` when no domain has callers.
pub fn caller_role(svc: &PseudonymisationService) -> Option<KubernetesRole> {
    let callers: Vec<_> = svc.spec.domains.iter().flat_map(|d| &d.callers).collect();
    let mut namespaces: Vec<String> = callers.iter().map(|c| c.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let mut service_accounts: Vec<String> = match callers
        .iter()
        .map(|c| c.service_account.clone())
        .collect::<Option<Vec<_>>>()
    {
        Some(named) => named,
        None => vec!["*".into()],
    };
    service_accounts.sort();
    service_accounts.dedup();
    (!namespaces.is_empty()).then(|| KubernetesRole {
        service_accounts,
        namespaces,
        policies: Vec::new(),
        ttl_seconds: 60,
        audience: Some(audience(svc)),
        batch_tokens: true,
    })
}

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::namespaced::<ServiceAccount>(),
        OwnedKind::namespaced::<Deployment>(),
        OwnedKind::namespaced::<Service>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
        OwnedKind::namespaced::<PodDisruptionBudget>(),
    ]
}

/// The labels that select the service's pods.
pub fn selector_labels(svc: &PseudonymisationService) -> BTreeMap<String, String> {
    component(svc).selector_labels()
}

/// The service as one of the project's components.
pub fn component(svc: &PseudonymisationService) -> Component<'_> {
    Component {
        name: svc.name_any(),
        namespace: svc.namespace(),
        app: "pseudonymisation-service",
        instance: svc.name_any(),
        role: "pseudonymisation",
        placement: &svc.spec.placement,
        port_name: "https",
        port: PORT,
    }
}

fn meta(svc: &PseudonymisationService, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        ..component(svc).meta()
    }
}

/// Every object the service owns in the cluster. `openbao_addr` is OpenBao's address as the
/// pods reach it; `default_image` is used unless the spec names an image; `paths` are the
/// destinations the pods may open.
pub fn children(
    svc: &PseudonymisationService,
    openbao_addr: &str,
    default_image: &str,
    paths: &Paths,
) -> Result<Vec<DesiredObject>, serde_json::Error> {
    let mut out = vec![
        DesiredObject::from_typed(&service_account(svc))?,
        DesiredObject::from_typed(&deployment(svc, openbao_addr, default_image))?,
        DesiredObject::from_typed(&component(svc).service(PORT))?,
        DesiredObject::from_typed(&network_policy(svc, paths))?,
    ];
    if svc.spec.replicas > 1 {
        out.push(DesiredObject::from_typed(&disruption_budget(svc))?);
    }
    Ok(out)
}

fn service_account(svc: &PseudonymisationService) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(svc, names(svc).service_account),
        automount_service_account_token: Some(true),
        ..Default::default()
    }
}

/// The service's Deployment, meeting Pod Security "restricted".
pub fn deployment(
    svc: &PseudonymisationService,
    openbao_addr: &str,
    default_image: &str,
) -> Deployment {
    let n = names(svc);
    let mut args = vec![
        "pseudonymisation-service".to_string(),
        format!("--listen=0.0.0.0:{PORT}"),
        format!("--transit-mount={}", n.mount),
        format!(
            "--mode={}",
            if svc.spec.mode == PseudonymisationMode::Local {
                "local"
            } else {
                "transit"
            }
        ),
        format!("--auth-role={}", n.role),
        format!("--auth-mount={AUTH_MOUNT}"),
    ];
    args.extend(
        domain_versions(svc)
            .into_iter()
            .map(|(d, v)| format!("--domain={d}={d}@{v}")),
    );
    let reversible = svc.spec.domains.iter().filter(|d| d.reversible);
    args.extend(reversible.map(|d| format!("--reversible-domain={}", d.name)));
    args.push(format!("--audience={}", audience(svc)));
    args.push(format!("--caller-role={}", n.caller_role));
    args.push(format!("--rows-per-second={}", svc.spec.rows_per_second));
    args.push(format!("--tls-pki-mount={}", n.pki_mount));
    args.extend(
        dns_names(svc)
            .into_iter()
            .map(|d| format!("--tls-name={d}")),
    );
    args.extend(svc.spec.domains.iter().filter_map(|d| {
        let purpose = d.purpose.as_ref()?;
        Some(format!("--purpose={}={purpose}", d.name))
    }));
    args.extend(svc.spec.domains.iter().flat_map(|d| {
        d.callers.iter().map(|c| {
            let grant = Grants::entry(&d.name, &c.namespace, c.service_account.as_deref());
            format!("--grant={grant}")
        })
    }));
    let c = component(svc);
    let container = Container {
        name: "pseudonymisation".into(),
        image: Some(
            svc.spec
                .image
                .clone()
                .unwrap_or_else(|| default_image.to_string()),
        ),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "VAULT_ADDR".into(),
            value: Some(openbao_addr.into()),
            ..Default::default()
        }]),
        // Readiness asks over HTTPS; liveness only connects (the service listens before it
        // starts), so that a pod waiting for OpenBao is not restarted.
        readiness_probe: Some(c.http_probe("/readyz", true, 5)),
        liveness_probe: Some(c.tcp_probe(5)),
        resources: Some(workload::resources_or(
            &svc.spec.placement,
            "250m",
            "64Mi",
            "256Mi",
        )),
        ..Default::default()
    };
    c.deployment(svc.spec.replicas, &n.service_account, container)
}

/// Admits only pods of the callers' namespaces (and its own), on the API port. Out of the
/// pods go DNS, OpenBao (keys, callers' liveness) and the API server (the ServiceAccount
/// issuer's keys, read at start and whenever a token names an unknown key). The list is
/// whole, so the service works alike in a namespace with no policy of its own (where it is
/// all the pods may open) and in a hub's namespace (whose `allow-egress`, which also opens
/// S3 to every pod there, does not open the API server).
pub fn network_policy(svc: &PseudonymisationService, paths: &Paths) -> NetworkPolicy {
    let mut namespaces: Vec<String> = svc
        .spec
        .domains
        .iter()
        .flat_map(|d| d.callers.iter().map(|c| c.namespace.clone()))
        .collect();
    namespaces.extend(svc.namespace());
    namespaces.sort();
    namespaces.dedup();
    let from = namespaces
        .into_iter()
        .map(|ns| NetworkPolicyPeer {
            namespace_selector: Some(crate::controller::network::namespace_named(&ns)),
            ..Default::default()
        })
        .collect();
    let mut egress = vec![network::dns(paths)];
    egress.extend(network::to_peers(&paths.openbao));
    egress.extend(network::to_peers(&paths.api_server));
    component(svc).network_policy(Some(from), Some(egress))
}

fn disruption_budget(svc: &PseudonymisationService) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(svc, svc.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(svc)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(mode: &str, replicas: i32) -> PseudonymisationService {
        let mut s = PseudonymisationService::new(
            "pseudo",
            serde_json::from_value(serde_json::json!({
                "mode": mode, "replicas": replicas,
                "domains": [
                    {"name": "region-export", "callers": [{"namespace": "region-stockholm"}]},
                    {"name": "permit-42", "keyVersion": 3,
                     "callers": [{"namespace": "research", "serviceAccount": "permit-42"}]},
                ],
            }))
            .expect("spec"),
        );
        s.metadata.namespace = Some("hub".into());
        s
    }

    #[test]
    fn names_in_openbao_are_unambiguous() {
        let named = |ns: &str, name: &str| {
            let mut s = svc("transit", 1);
            s.metadata.namespace = Some(ns.into());
            s.metadata.name = Some(name.into());
            names(&s)
        };
        let a = named("hub-x", "pseudo");
        let b = named("hub-x", "pseudo-reidentify");
        let c = named("hub", "x-pseudo");
        let all = [&a, &b, &c];
        let mut seen = std::collections::BTreeSet::new();
        for n in all {
            for name in [&n.policy, &n.role, &n.reidentify_policy] {
                seen.insert(name.clone());
            }
        }
        // Each service's policy and role share one name; everything else differs.
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(
            a.reidentify_policy,
            "vardhub-pseudonymisation-reidentify.hub-x.pseudo"
        );
    }

    #[test]
    fn policy_is_least_privilege_per_mode() {
        let transit = policy(&svc("transit", 2)).to_string();
        assert!(transit.contains("pseudonymisation/hub/pseudo/hmac/*"));
        assert!(
            !transit.contains("export"),
            "transit mode never reads key material"
        );
        assert!(
            policy(&svc("local", 2))
                .to_string()
                .contains("export/hmac-key/*")
        );
        assert!(
            transit.contains("pseudonymisation-pki/hub/pseudo/issue/server"),
            "it issues its own certificate: {transit}"
        );
    }

    #[test]
    fn domains_are_pinned() {
        assert_eq!(
            domain_versions(&svc("transit", 1)),
            vec![("region-export".into(), 1), ("permit-42".into(), 3)]
        );
        let d = deployment(&svc("local", 1), "http://openbao:8200", "img");
        let args = d
            .spec
            .and_then(|s| s.template.spec)
            .map(|p| p.containers[0].args.clone().unwrap_or_default());
        let args = args.unwrap_or_default();
        assert!(args.contains(&"--domain=permit-42=permit-42@3".to_string()));
        assert!(args.contains(&"--mode=local".to_string()));
        assert!(args.contains(&"--audience=vardhub.io/pseudonymisation/hub/pseudo".to_string()));
        assert!(args.contains(&"--grant=region-export=region-stockholm".to_string()));
        assert!(args.contains(&"--grant=permit-42=research/permit-42".to_string()));
        assert!(args.contains(&"--tls-pki-mount=pseudonymisation-pki/hub/pseudo".to_string()));
        assert!(args.contains(&"--tls-name=pseudo.hub.svc".to_string()));
    }

    fn paths() -> Paths {
        use crate::controller::network::Peer;
        let peer = |cidr: &str, port| Peer {
            cidr: cidr.into(),
            port,
        };
        Paths {
            dns: vec!["10.0.0.10/32".into()],
            api_server: vec![peer("10.0.0.1/32", 6443)],
            openbao: vec![peer("10.0.0.2/32", 8200)],
            s3: vec![peer("10.0.0.3/32", 9000)],
        }
    }

    #[test]
    fn network_policy_admits_only_named_namespaces() {
        let np = network_policy(&svc("transit", 1), &paths());
        let text = serde_json::to_string(&np).expect("json");
        assert!(text.contains("region-stockholm") && text.contains("\"hub\""));
        assert!(text.contains("\"research\""));
    }

    /// The pods read the issuer's keys from the API server: a hub's `allow-egress` does not
    /// open it, so the service's own policy must, and with it the rest of what the pods need
    /// (DNS, OpenBao), so that it is whole in a namespace without policies. It does not open
    /// the S3 server, which the service does not use.
    #[test]
    fn network_policy_opens_dns_openbao_and_the_api_server_only() {
        let spec = network_policy(&svc("local", 1), &paths())
            .spec
            .expect("spec");
        assert_eq!(
            spec.policy_types,
            Some(vec!["Ingress".to_string(), "Egress".to_string()])
        );
        let mut opened: Vec<(String, String)> = spec
            .egress
            .unwrap_or_default()
            .into_iter()
            .flat_map(|rule| {
                let ports: Vec<String> = rule
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| {
                        let port = match p.port {
                            Some(IntOrString::Int(n)) => n.to_string(),
                            other => format!("{other:?}"),
                        };
                        format!("{}/{port}", p.protocol.unwrap_or_default())
                    })
                    .collect();
                let peers: Vec<String> = rule
                    .to
                    .expect("every rule names its peers")
                    .into_iter()
                    .map(|peer| match (peer.ip_block, peer.namespace_selector) {
                        (Some(block), _) => block.cidr,
                        (None, Some(_)) => "kube-system".into(),
                        (None, None) => "anything".into(),
                    })
                    .collect();
                peers
                    .into_iter()
                    .flat_map(move |peer| ports.clone().into_iter().map(move |p| (peer.clone(), p)))
            })
            .collect();
        opened.sort();
        opened.dedup();
        let expected: Vec<(String, String)> = [
            ("10.0.0.1/32", "TCP/6443"),
            ("10.0.0.10/32", "TCP/53"),
            ("10.0.0.10/32", "UDP/53"),
            ("10.0.0.2/32", "TCP/8200"),
            ("kube-system", "TCP/53"),
            ("kube-system", "UDP/53"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(opened, expected);
    }

    #[test]
    fn budget_only_with_more_than_one_replica() {
        assert_eq!(
            children(&svc("transit", 1), "a", "i", &paths())
                .expect("build")
                .len(),
            4
        );
        assert_eq!(
            children(&svc("transit", 2), "a", "i", &paths())
                .expect("build")
                .len(),
            5
        );
    }

    #[test]
    fn the_caller_role_binds_the_callers_and_the_audience() {
        let role = caller_role(&svc("transit", 1)).expect("callers");
        assert_eq!(role.namespaces, vec!["region-stockholm", "research"]);
        // One grant admits a whole namespace, so the role cannot narrow by name; the
        // service's own grants still do.
        assert_eq!(role.service_accounts, vec!["*"]);
        assert_eq!(
            role.audience.as_deref(),
            Some("vardhub.io/pseudonymisation/hub/pseudo")
        );
        assert!(role.batch_tokens && role.policies.is_empty());
        assert_eq!(
            names(&svc("transit", 1)).caller_role,
            "vardhub-pseudonymisation.hub.pseudo.callers"
        );
        let mut none = svc("transit", 1);
        none.spec.domains.iter_mut().for_each(|d| d.callers.clear());
        assert!(caller_role(&none).is_none());
    }
}
