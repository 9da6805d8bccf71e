//! `vardhub validate <dir>`: the environment-wide compliance rules of `policies/rego`,
//! evaluated with `regorus` over a directory's documents and the objects the operator would
//! create for them. Offline; every violation names its rule, object and field.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::render::{Resources, Settings};

/// The rules shipped with this build (the files of `policies/rego`).
pub const POLICIES: &[(&str, &str)] = &[
    (
        "common.rego",
        include_str!("../../policies/rego/common.rego"),
    ),
    (
        "eu_residency.rego",
        include_str!("../../policies/rego/eu_residency.rego"),
    ),
    (
        "key_rotation.rego",
        include_str!("../../policies/rego/key_rotation.rego"),
    ),
    (
        "pinned_images.rego",
        include_str!("../../policies/rego/pinned_images.rego"),
    ),
    (
        "dataset_legal_basis.rego",
        include_str!("../../policies/rego/dataset_legal_basis.rego"),
    ),
    (
        "pod_security.rego",
        include_str!("../../policies/rego/pod_security.rego"),
    ),
];
/// The rules' settings shipped with this build (`policies/rego/settings.json`).
pub const SETTINGS: &str = include_str!("../../policies/rego/settings.json");

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Violation {
    /// The rule, for example `key-rotation`.
    pub rule: String,
    /// `Kind name` of the offending object.
    pub object: String,
    /// The offending field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] {}: {}: {}",
            self.rule, self.object, self.field, self.message
        )
    }
}

/// Evaluates the rules over `resources` (and what the operator would render for them).
/// `policies` overrides the built-in rules with the `.rego` files of a directory (and its
/// `settings.json`).
pub fn evaluate(
    resources: &Resources,
    settings: &Settings,
    policies: Option<&Path>,
) -> anyhow::Result<Vec<Violation>> {
    let mut engine = regorus::Engine::new();
    match policies {
        None => {
            for (name, text) in POLICIES {
                engine.add_policy(name.to_string(), text.to_string())?;
            }
            engine.add_data(regorus::Value::from_json_str(SETTINGS)?)?;
        }
        Some(dir) => {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for file in files {
                if file.extension().is_some_and(|e| e == "rego") {
                    engine.add_policy_from_file(&file)?;
                }
            }
            let settings = dir.join("settings.json");
            if settings.is_file() {
                engine.add_data(regorus::Value::from_json_file(&settings)?)?;
            }
        }
    }
    let rendered: Vec<serde_json::Value> = crate::render::render(resources, settings)?
        .iter()
        .map(|o| serde_json::to_value(&o.object))
        .collect::<Result<_, _>>()?;
    let mut documents = resources.documents.clone();
    documents.extend(resources.others.iter().cloned());
    let input = serde_json::json!({"documents": documents, "rendered": rendered});
    engine.set_input(regorus::Value::from_json_str(&input.to_string())?);
    let result = engine.eval_rule("data.vardhub.compliance.deny".to_string())?;
    let json = result.to_json_str()?;
    let mut violations: Vec<Violation> = serde_json::from_str(&json)
        .with_context(|| format!("reading the rules' verdict: {json}"))?;
    violations.sort();
    Ok(violations)
}
