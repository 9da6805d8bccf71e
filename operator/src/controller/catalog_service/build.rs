//! What a `CatalogService` runs in the cluster: the catalogue's HTTP component with a
//! read-only identity, its Service and its network policy. Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::ResourceExt;
use kube::core::ObjectMeta;

use crate::api::CatalogService;
use crate::controller::apply::{DesiredObject, OwnedKind};
use crate::controller::component::Component;
use crate::controller::network::{self, Paths};
use crate::controller::workload;

/// Port of the catalogue's HTTP server.
pub const PORT: i32 = 8080;

/// Name of the component's objects (Deployment, Service, ServiceAccount, Role, ...).
pub fn object_name(svc: &CatalogService) -> String {
    format!("{}-catalog", svc.name_any())
}

/// Where the catalogue is served inside the cluster.
pub fn url(svc: &CatalogService) -> String {
    format!(
        "http://{}.{}.svc/catalog",
        object_name(svc),
        svc.namespace().unwrap_or_default()
    )
}

/// The kinds the controller creates, for pruning.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        OwnedKind::namespaced::<ServiceAccount>(),
        OwnedKind::namespaced::<Role>(),
        OwnedKind::namespaced::<RoleBinding>(),
        OwnedKind::namespaced::<Deployment>(),
        OwnedKind::namespaced::<Service>(),
        OwnedKind::namespaced::<NetworkPolicy>(),
    ]
}

/// The catalogue as one of the project's components.
pub fn component(svc: &CatalogService) -> Component<'_> {
    Component {
        name: object_name(svc),
        namespace: svc.namespace(),
        app: "catalog-service",
        instance: svc.name_any(),
        role: "catalog",
        placement: &svc.spec.placement,
        port_name: "http",
        port: PORT,
    }
}

fn meta(svc: &CatalogService) -> ObjectMeta {
    component(svc).meta()
}

/// Every object the catalogue owns. `image` is the project's own image; `paths` are where
/// its pods may connect.
pub fn children(
    svc: &CatalogService,
    image: &str,
    paths: &Paths,
) -> Result<Vec<DesiredObject>, serde_json::Error> {
    Ok(vec![
        DesiredObject::from_typed(&ServiceAccount {
            metadata: meta(svc),
            automount_service_account_token: Some(true),
            ..Default::default()
        })?,
        DesiredObject::from_typed(&role(svc))?,
        DesiredObject::from_typed(&component(svc).role_binding())?,
        DesiredObject::from_typed(&deployment(svc, image))?,
        DesiredObject::from_typed(&component(svc).service(80))?,
        DesiredObject::from_typed(&network_policy(svc, paths))?,
    ])
}

/// Read-only access to the namespace's datasets and catalogue services: all the component
/// needs to render the catalogue.
pub fn role(svc: &CatalogService) -> Role {
    Role {
        metadata: meta(svc),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["vardhub.io".into()]),
            resources: Some(vec!["datasets".into(), "catalogservices".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    }
}

/// The component's Deployment, meeting Pod Security "restricted".
pub fn deployment(svc: &CatalogService, image: &str) -> Deployment {
    let c = component(svc);
    let container = Container {
        name: "catalog".into(),
        image: Some(image.into()),
        args: Some(vec![
            "catalog-service".into(),
            format!("--listen=0.0.0.0:{PORT}"),
            format!("--namespace={}", svc.namespace().unwrap_or_default()),
            format!("--name={}", svc.name_any()),
        ]),
        readiness_probe: Some(c.http_probe("/readyz", false, 10)),
        liveness_probe: Some(c.http_probe("/healthz", false, 10)),
        resources: Some(workload::resources_or(
            &svc.spec.placement,
            "100m",
            "128Mi",
            "512Mi",
        )),
        ..Default::default()
    };
    c.deployment(svc.spec.replicas, &object_name(svc), container)
}

/// The catalogue is public metadata: anyone may reach the HTTP port. Out of the pods go only
/// DNS and the API server's endpoints (the component reads datasets, nothing else).
pub fn network_policy(svc: &CatalogService, paths: &Paths) -> NetworkPolicy {
    let mut egress = vec![network::dns(paths)];
    egress.extend(network::to_peers(&paths.api_server));
    component(svc).network_policy(None, Some(egress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_reads_and_never_writes() {
        let mut svc = CatalogService::new(
            "national",
            serde_json::from_value(serde_json::json!({
                "title": {"sv": "K", "en": "C"},
                "description": {"sv": "K", "en": "C"},
                "publisher": {"name": "P", "uri": "https://p.example"},
                "baseUri": "https://catalog.example/",
            }))
            .expect("spec"),
        );
        svc.metadata.namespace = Some("catalog".into());
        let rules = role(&svc).rules.unwrap_or_default();
        assert!(rules.iter().all(|r| {
            r.verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str()))
        }));
        let pod = deployment(&svc, "img")
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod");
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("national-catalog")
        );
        assert_eq!(url(&svc), "http://national-catalog.catalog.svc/catalog");
    }
}
