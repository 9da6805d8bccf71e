//! The policy corpus of `tests/policies`: every good example passes and every bad one is
//! refused, naming its rule and field: offline by `vardhub validate` (Rego, regorus) and,
//! for the admission rules, by the real API server through the chart's
//! ValidatingAdmissionPolicies.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use vardhub_tests::{LocalCluster, repo_root};

fn corpus(kind: &str) -> Result<Vec<(PathBuf, String)>> {
    let dir = repo_root().join("tests/policies").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| Ok((p.clone(), std::fs::read_to_string(&p)?)))
        .collect()
}

/// The value of a `# key: value` header line.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(str::trim)
}

fn settings() -> vardhub::render::Settings {
    vardhub::render::Settings::new("http://127.0.0.1:8200", "http://127.0.0.1:9000")
}

fn validate(text: &str) -> Result<Vec<vardhub::validate::Violation>> {
    let mut resources = vardhub::render::Resources::default();
    vardhub::render::parse(text, &mut resources)?;
    vardhub::validate::evaluate(&resources, &settings(), None)
}

#[test]
fn every_good_example_passes_and_every_bad_one_names_its_rule_and_field() -> Result<()> {
    for (path, text) in corpus("good")? {
        let violations = validate(&text)?;
        assert!(violations.is_empty(), "{}: {violations:?}", path.display());
    }
    let bad = corpus("bad")?;
    assert!(bad.len() >= 5, "a bad example per rule");
    for (path, text) in bad {
        let expect = header(&text, "expect")
            .with_context(|| format!("{}: no expect header", path.display()))?;
        let (rule, field) = expect.split_once(' ').context("expect: <rule> <field>")?;
        let violations = validate(&text)?;
        assert_eq!(violations.len(), 1, "{}: {violations:?}", path.display());
        assert_eq!(
            (violations[0].rule.as_str(), violations[0].field.as_str()),
            (rule, field),
            "{}",
            path.display()
        );
        let shown = violations[0].to_string();
        assert!(shown.contains(rule) && shown.contains(field), "{shown}");
    }
    Ok(())
}

#[test]
#[ignore = "needs kubectl (for kustomize) from the local cluster: run `make test`"]
fn every_environment_complies() -> Result<()> {
    for environment in ["local", "cloud", "on-prem", "hybrid"] {
        let dir = repo_root().join("environments").join(environment);
        let built = vardhub_tests::kubectl(&["kustomize", &dir.to_string_lossy()])?;
        let violations = validate(&built)?;
        assert!(violations.is_empty(), "{environment}: {violations:?}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn admission_policies_are_enforced_by_the_api_server() -> Result<()> {
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let documents = |text: &str| -> Result<Vec<serde_json::Value>> {
        let mut resources = vardhub::render::Resources::default();
        vardhub::render::parse(text, &mut resources)?;
        Ok(resources.documents)
    };
    for (path, text) in corpus("good")? {
        for doc in documents(&text)? {
            vardhub::plan::dry_run_apply(&admin, &doc)
                .await
                .with_context(|| format!("{} must be accepted", path.display()))?;
        }
    }
    let mut refused = 0;
    for (path, text) in corpus("bad")? {
        let Some(policy) = header(&text, "admission") else {
            continue;
        };
        for doc in documents(&text)? {
            let err = vardhub::plan::dry_run_apply(&admin, &doc)
                .await
                .err()
                .with_context(|| format!("{} must be refused by {policy}", path.display()))?;
            let message = format!("{err:#}");
            let field = header(&text, "expect")
                .and_then(|e| e.split_once(' '))
                .map(|(_, f)| f.replace("[0]", "[]"));
            assert!(message.contains(policy), "{}: {message}", path.display());
            if let Some(field) = field {
                assert!(
                    message.contains(&field),
                    "{}: names {field}: {message}",
                    path.display()
                );
            }
            refused += 1;
        }
    }
    assert!(
        refused >= 1,
        "the admission rule (key rotation) is exercised"
    );
    Ok(())
}

#[test]
#[ignore = "needs kubectl (for kustomize) from the local cluster: run `make test`"]
fn compare_reports_the_four_environments_with_computed_figures() -> Result<()> {
    let prices: vardhub::compare::PriceTable = serde_yaml::from_str(&std::fs::read_to_string(
        repo_root().join("environments/prices.yaml"),
    )?)?;
    let mut alternatives = Vec::new();
    for environment in ["local", "cloud", "on-prem", "hybrid"] {
        let resources = vardhub::render::load(&repo_root().join("environments").join(environment))?;
        alternatives.push(vardhub::compare::analyse(environment, &resources, &prices)?);
    }
    let [local, cloud, on_prem, hybrid] = &alternatives[..] else {
        anyhow::bail!("four alternatives");
    };
    assert_eq!(
        (
            local.regions,
            cloud.regions,
            on_prem.regions,
            hybrid.regions
        ),
        (7, 21, 21, 21)
    );
    assert!(
        alternatives
            .iter()
            .all(|a| a.identifiable_flows.is_empty() && a.violations.is_empty())
    );
    assert_eq!(hybrid.sites, ("cloud".to_string(), "on-prem".to_string()));
    assert!(
        hybrid.storage_gib.0 < cloud.storage_gib.0,
        "federated: the hub holds extracts only"
    );
    assert_eq!(
        local.cost.0 + local.cost.1,
        0.0,
        "the local machine costs nothing"
    );
    assert!(cloud.cost.0 + cloud.cost.1 > 0.0 && on_prem.cost.0 + on_prem.cost.1 > 0.0);
    let report = vardhub::compare::markdown(&alternatives, &prices);
    for a in &alternatives {
        assert!(report.contains(&format!("{:.0} {}", a.cost.0 + a.cost.1, prices.currency)));
    }
    let page = vardhub::compare::html(&alternatives, &prices);
    assert_eq!(page.matches("<svg").count(), 4, "a diagram per alternative");
    Ok(())
}
