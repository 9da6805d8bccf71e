//! `vardhub render <dir>`: every Kubernetes object the operator would create for the vardhub
//! resources in a manifest directory, from the same pure builders the controllers use, with
//! no cluster. A GitOps review sees what a change of the directory would bring.
//!
//! The directory is read as `kubectl apply -k` would: a plain kustomization (its `resources`,
//! files or folders) directly, one that transforms documents (patches, labels, annotations,
//! prefixes) through `kubectl kustomize`; a directory without one as all its `*.yaml`/`*.yml`
//! files.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::api::{CatalogService, DataHub, Dataset, PseudonymisationService, RegionalNode};
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

/// The vardhub resources of a set of manifests.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// The hubs.
    pub hubs: Vec<DataHub>,
    /// The regional nodes.
    pub nodes: Vec<RegionalNode>,
    /// The pseudonymisation services.
    pub pseudonymisation: Vec<PseudonymisationService>,
    /// The datasets.
    pub datasets: Vec<Dataset>,
    /// The catalogue services.
    pub catalogs: Vec<CatalogService>,
    /// Every vardhub document as written, for a dry-run apply.
    pub documents: Vec<Value>,
    /// The directory's other documents (workloads of its own, for instance).
    pub others: Vec<Value>,
}

/// Parses a YAML stream into the vardhub resources it holds; other kinds are left out.
pub fn parse(text: &str, resources: &mut Resources) -> anyhow::Result<()> {
    for value in crate::yaml::documents(text)? {
        if value.is_null() {
            continue;
        }
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        if api_version != "vardhub.io/v1alpha1" {
            resources.others.push(value);
            continue;
        }
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or("<unnamed>")
            .to_string();
        let context = || format!("{} {name}", value["kind"].as_str().unwrap_or_default());
        resources.documents.push(value.clone());
        match value["kind"].as_str() {
            Some("DataHub") => resources
                .hubs
                .push(serde_json::from_value(value.clone()).with_context(context)?),
            Some("RegionalNode") => resources
                .nodes
                .push(serde_json::from_value(value.clone()).with_context(context)?),
            Some("PseudonymisationService") => resources
                .pseudonymisation
                .push(serde_json::from_value(value.clone()).with_context(context)?),
            Some("Dataset") => resources
                .datasets
                .push(serde_json::from_value(value.clone()).with_context(context)?),
            Some("CatalogService") => resources
                .catalogs
                .push(serde_json::from_value(value.clone()).with_context(context)?),
            _ => {}
        }
    }
    Ok(())
}

/// Reads the manifests of a directory (or a file; `-` is standard input).
pub fn load(path: &Path) -> anyhow::Result<Resources> {
    let mut resources = Resources::default();
    if path == Path::new("-") {
        let text = std::io::read_to_string(std::io::stdin())?;
        parse(&text, &mut resources)?;
        return Ok(resources);
    }
    if transforms(path)? {
        let text = kustomize(path)?;
        parse(&text, &mut resources)?;
        return Ok(resources);
    }
    for file in manifest_files(path)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        parse(&text, &mut resources).with_context(|| format!("in {}", file.display()))?;
    }
    Ok(resources)
}

/// Fields of a kustomization that transform documents rather than list them.
const TRANSFORMERS: &[&str] = &[
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "components",
    "namePrefix",
    "nameSuffix",
    "replacements",
    "commonAnnotations",
    "labels",
    "commonLabels",
];

fn kustomization_of(path: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
}

/// Whether the directory's kustomization (or one it includes) transforms its documents.
fn transforms(path: &Path) -> anyhow::Result<bool> {
    let Some(kustomization) = kustomization_of(path) else {
        return Ok(false);
    };
    let k: Value = serde_yaml::from_str(&std::fs::read_to_string(&kustomization)?)
        .with_context(|| format!("parsing {}", kustomization.display()))?;
    if TRANSFORMERS.iter().any(|f| k.get(f).is_some()) {
        return Ok(true);
    }
    for entry in k["resources"].as_array().into_iter().flatten() {
        if let Some(entry) = entry.as_str()
            && path.join(entry).is_dir()
            && transforms(&path.join(entry))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Builds a transforming kustomization with `kubectl kustomize` (kubectl needs no cluster
/// for this).
fn kustomize(path: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(path)
        .output()
        .with_context(|| {
            format!(
                "{} needs `kubectl kustomize` (its kustomization transforms documents), and kubectl was not found; pipe `kubectl kustomize {} | vardhub ... -`",
                path.display(),
                path.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "`kubectl kustomize {}` failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The manifest files of a path, in kustomization order.
fn manifest_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let kustomization = kustomization_of(path);
    let Some(kustomization) = kustomization else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        return Ok(files);
    };
    let text = std::fs::read_to_string(&kustomization)?;
    let k: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("parsing {}", kustomization.display()))?;
    let mut files = Vec::new();
    for entry in k["resources"].as_array().into_iter().flatten() {
        let Some(entry) = entry.as_str() else {
            continue;
        };
        files.extend(manifest_files(&path.join(entry))?);
    }
    Ok(files)
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
