//! `vardhub render <dir>`: every Kubernetes object the operator would create for the vardhub
//! resources in a manifest directory, from the same pure builders the controllers use, with
//! no cluster. A GitOps review sees what a change of the directory would bring. The directory
//! is read by [`crate::manifest`].

pub use crate::manifest::{Resources, load, parse};

use crate::controller::apply::{DesiredObject, Owner, stamp};
use crate::controller::network::{Paths, literal};
use crate::controller::regional_node::build::Inputs;
use crate::controller::{data_hub, pseudonymisation_service, regional_node};

/// Where the rendered workloads reach OpenBao and S3, as the operator would be told.
#[derive(Clone, Debug)]
pub struct Settings {
    /// OpenBao's address as workloads reach it.
    pub openbao_addr: String,
    /// The S3 endpoint as workloads reach it.
    pub s3_endpoint: String,
    /// Image of the project's own workloads.
    pub image: String,
    /// The cluster's DNS and API server endpoints, which the operator reads from the cluster
    /// when it runs; offline they are what the caller says (none by default).
    pub cluster: Paths,
}

impl Settings {
    /// Settings for these addresses, with this build's image.
    pub fn new(openbao_addr: impl Into<String>, s3_endpoint: impl Into<String>) -> Self {
        Self {
            openbao_addr: openbao_addr.into(),
            s3_endpoint: s3_endpoint.into(),
            image: crate::controller::context::default_image(),
            cluster: Paths::default(),
        }
    }
}

/// Every object the operator would create for `resources`, in apply order: hubs, then nodes,
/// then pseudonymisation services.
pub fn render(resources: &Resources, settings: &Settings) -> anyhow::Result<Vec<DesiredObject>> {
    let mut out = Vec::new();
    // Offline, only IP literals are known; the operator resolves names when it runs.
    let paths = Paths {
        openbao: literal(&settings.openbao_addr),
        s3: literal(&settings.s3_endpoint),
        ..settings.cluster.clone()
    };
    for hub in &resources.hubs {
        let (members, _) = data_hub::build::members(hub, &resources.nodes);
        let inputs = Inputs {
            openbao_addr: settings.openbao_addr.clone(),
            s3_endpoint: settings.s3_endpoint.clone(),
            paths: paths.clone(),
            hub: None,
            image: settings.image.clone(),
        };
        out.extend(stamp(
            &Owner::of(hub),
            data_hub::build::children(hub, &members, &inputs)?,
        ));
    }
    for node in &resources.nodes {
        let hub = node.spec.hub.as_ref().and_then(|r| {
            resources
                .hubs
                .iter()
                .find(|h| kube::ResourceExt::name_any(*h) == r.name)
                .cloned()
        });
        let inputs = Inputs {
            openbao_addr: settings.openbao_addr.clone(),
            s3_endpoint: settings.s3_endpoint.clone(),
            paths: paths.clone(),
            hub,
            image: settings.image.clone(),
        };
        out.extend(stamp(
            &Owner::of(node),
            regional_node::build::children(node, &inputs)?,
        ));
    }
    for svc in &resources.pseudonymisation {
        out.extend(stamp(
            &Owner::of(svc),
            pseudonymisation_service::build::children(
                svc,
                &settings.openbao_addr,
                &settings.image,
                &paths,
            )?,
        ));
    }
    for svc in &resources.catalogs {
        out.extend(stamp(
            &Owner::of(svc),
            crate::controller::catalog_service::build::children(svc, &settings.image, &paths)?,
        ));
    }
    Ok(out)
}

/// The objects as one YAML stream.
pub fn to_yaml(objects: &[DesiredObject]) -> anyhow::Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o.object)?);
    }
    Ok(out)
}

/// The objects as a Kubernetes `List` in JSON.
pub fn to_json(objects: &[DesiredObject]) -> anyhow::Result<String> {
    let items: Vec<&kube::api::DynamicObject> = objects.iter().map(|o| &o.object).collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings() -> Settings {
        Settings {
            openbao_addr: "http://127.0.0.1:18200".into(),
            s3_endpoint: "http://127.0.0.1:19000".into(),
            image: "vardhub:test".into(),
            cluster: Paths::default(),
        }
    }

    #[test]
    fn the_local_environment_renders_without_a_cluster() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments/local");
        let resources = load(&dir).expect("load");
        assert_eq!(resources.nodes.len(), 5);
        assert_eq!(resources.hubs.len(), 2);
        let objects = render(&resources, &settings()).expect("render");
        let kinds = |kind: &str| {
            objects
                .iter()
                .filter(|o| o.object.types.as_ref().is_some_and(|t| t.kind == kind))
                .count()
        };
        // Each hub: namespace, default-deny, allow-egress, ServiceAccount, its jobs (central:
        // standardise and publish; federated: publish). Each node: namespace, two
        // NetworkPolicies, ServiceAccount, a mapping CronJob and the export CronJob. The
        // catalogue: its component's Deployment, Service, NetworkPolicy, identity and Role.
        assert_eq!(kinds("Namespace"), 2 + 5);
        assert_eq!(kinds("NetworkPolicy"), 2 * 2 + 5 * 2 + 1);
        assert_eq!(
            (kinds("Deployment"), kinds("Role"), kinds("RoleBinding")),
            (1, 1, 1)
        );
        assert_eq!(kinds("CronJob"), 5 * 2 + 2 + 1);
        let yaml = to_yaml(&objects).expect("yaml");
        assert!(
            yaml.contains("vardhub-hub-national-landing"),
            "exports go to the hub"
        );
        assert!(
            to_json(&objects)
                .expect("json")
                .contains("\"kind\": \"List\"")
        );
    }

    #[test]
    fn a_failing_kustomize_is_reported_with_its_reason() {
        let dir = std::env::temp_dir().join(format!("vardhub-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("kustomization.yaml"),
            "resources: []\npatches:\n  - path: p.yaml\n",
        )
        .expect("write");
        let err = load(&dir)
            .expect_err("a patch that does not exist")
            .to_string();
        assert!(err.contains("kubectl kustomize"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
