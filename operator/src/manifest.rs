//! Reading a manifest directory as `kubectl apply -k` would: a plain kustomization (its
//! `resources`, files or folders) directly, one that transforms documents (patches, labels,
//! annotations, prefixes) through `kubectl kustomize`; a directory without one as all its
//! `*.yaml`/`*.yml` files. YAML is read as the API server's clients read it
//! ([`crate::yaml`]). The vardhub resources come out typed, the rest as written.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::api::{CatalogService, DataHub, Dataset, PseudonymisationService, RegionalNode};

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
