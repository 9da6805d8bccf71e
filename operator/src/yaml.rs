//! YAML as the API server's clients read it. `kubectl`, Argo CD and Flux decode manifests with
//! a YAML 1.1 reader, where a plain `yes`, `on` or `off` is a boolean and `0755` an octal
//! number; YAML 1.2 reads the same text as strings and a decimal. The CLI reads every document
//! both ways and refuses one the two readings disagree on, naming the field, so that
//! `vardhub validate`, `plan` and `render` never judge a different object than the cluster
//! would receive. Pure.

use anyhow::bail;
use serde_json::Value;

/// The documents of a YAML stream (empty ones left out), as YAML 1.1 reads them; an error
/// names the first field whose plain value YAML 1.1 and YAML 1.2 read differently.
pub fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut yaml11 = serde_saphyr::Options::default();
    yaml11.strict_booleans = false;
    yaml11.legacy_octal_numbers = true;
    let mut yaml12 = serde_saphyr::Options::default();
    yaml12.strict_booleans = true;
    yaml12.legacy_octal_numbers = false;
    yaml12.underscored_numbers_as_strings = true;
    let as_kubectl: Vec<Value> = serde_saphyr::from_multiple_with_options(text, yaml11)?;
    let as_yaml12: Vec<Value> = serde_saphyr::from_multiple_with_options(text, yaml12)?;
    for (index, (one, two)) in as_kubectl.iter().zip(&as_yaml12).enumerate() {
        if let Some((path, a, b)) = difference(one, two, String::new()) {
            let name = format!(
                "{} {}",
                one["kind"].as_str().unwrap_or("document"),
                one["metadata"]["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("#{}", index + 1))
            );
            bail!(
                "{name}: {path}: kubectl (YAML 1.1) reads {a}, YAML 1.2 reads {b}; quote the value so that both read it alike"
            );
        }
    }
    Ok(as_kubectl)
}

/// The first place where `a` and `b` differ: its path and both values.
fn difference(a: &Value, b: &Value, path: String) -> Option<(String, String, String)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                let here = if path.is_empty() {
                    ka.clone()
                } else {
                    format!("{path}.{ka}")
                };
                if ka != kb {
                    return Some((here, format!("key {ka:?}"), format!("key {kb:?}")));
                }
                if let Some(d) = difference(va, vb, here) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| difference(va, vb, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some((
            if path.is_empty() {
                "(root)".into()
            } else {
                path
            },
            a.to_string(),
            b.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::documents;

    #[test]
    fn what_both_yaml_versions_read_alike_is_read() {
        let docs = documents("a: true\nb: \"on\"\nc: 10\n---\n---\nd: [x, 'no']\n").expect("read");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["b"], "on");
        assert_eq!(docs[1]["d"][1], "no");
    }

    #[test]
    fn a_plain_yaml11_boolean_is_refused_naming_the_field() {
        let err = documents("kind: PseudonymisationService\nmetadata: {name: p}\nspec:\n  domains:\n    - name: a\n      purpose: on\n")
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with(
                "PseudonymisationService p: spec.domains[0].purpose: kubectl (YAML 1.1) reads true"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_leading_zero_number_is_refused() {
        let err = documents("spec:\n  keyVersion: 010\n")
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("spec.keyVersion: kubectl (YAML 1.1) reads 8"),
            "{err}"
        );
    }
}
