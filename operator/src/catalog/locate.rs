//! Where a dataset's data can be reached, derived from its stage and the hub or node holding
//! it. Pure; the `Dataset` controller writes the result into the dataset's status, and the
//! offline renderer calls it with the environment's own hubs and nodes.

use crate::api::{
    DataHub, DatasetLocation, Distribution, DistributionKind, RegionalNode, Stage, StorageMode,
};
use crate::controller::storage::{hub_layout, node_layout};

/// The resource that holds a dataset.
#[derive(Clone, Copy, Debug)]
pub enum Holder<'a> {
    /// A hub.
    Hub(&'a DataHub),
    /// A regional node.
    Node(&'a RegionalNode),
}

/// Why a dataset's location cannot be resolved, naming the field to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Unresolved {
    /// The field, for example `spec.location.dataHub`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn s3(bucket: &str, prefix: Option<&str>, title: String) -> Distribution {
    let path = prefix
        .map(|p| format!("{}/", p.trim_matches('/')))
        .unwrap_or_default();
    Distribution {
        name: "s3".into(),
        kind: DistributionKind::S3,
        access_url: format!("s3://{bucket}/{path}"),
        title,
    }
}

/// The distributions of a dataset at `location`, held by `holder` (`None` when the
/// referenced resource does not exist).
pub fn distributions(
    location: &DatasetLocation,
    holder: Option<Holder<'_>>,
) -> Result<Vec<Distribution>, Unresolved> {
    match (location, holder) {
        (
            DatasetLocation {
                regional_node: Some(r),
                ..
            },
            None,
        ) => Err(Unresolved {
            field: "spec.location.regionalNode",
            message: format!("no RegionalNode named {}", r.name),
        }),
        (
            DatasetLocation {
                data_hub: Some(h), ..
            },
            None,
        ) => Err(Unresolved {
            field: "spec.location.dataHub",
            message: format!("no DataHub named {}", h.name),
        }),
        (_, None) => Err(Unresolved {
            field: "spec.location",
            message: "set one of dataHub and regionalNode".into(),
        }),
        (l, Some(Holder::Node(node))) => {
            let layout = node_layout(node);
            match l.stage {
                Stage::RegionalSource => Ok(vec![s3(
                    &layout.landing,
                    l.data_product.as_deref(),
                    "Regional extracts in the region's own storage".into(),
                )]),
                Stage::Standardised => Ok(vec![s3(
                    &layout.standardised,
                    l.data_product.as_deref(),
                    "Common data model in the region's own storage".into(),
                )]),
                Stage::PurposeSpecific => Err(Unresolved {
                    field: "spec.location.regionalNode",
                    message:
                        "purpose-specific data products live in a hub: set spec.location.dataHub"
                            .into(),
                }),
            }
        }
        (l, Some(Holder::Hub(hub))) => {
            let layout = hub_layout(hub);
            match l.stage {
                Stage::RegionalSource => Err(Unresolved {
                    field: "spec.location.dataHub",
                    message: "regional source data stays in its region: set spec.location.regionalNode".into(),
                }),
                Stage::Standardised if hub.spec.storage_mode == StorageMode::Federated => {
                    Err(Unresolved {
                        field: "spec.location.dataHub",
                        message: "a federated hub holds no standardised data; it stays in the regions: set spec.location.regionalNode".into(),
                    })
                }
                Stage::Standardised => Ok(vec![s3(
                    &layout.standardised,
                    l.data_product.as_deref(),
                    "Common data model in the hub's standardised zone".into(),
                )]),
                Stage::PurposeSpecific => {
                    let product = l.data_product.as_deref().ok_or(Unresolved {
                        field: "spec.location.dataProduct",
                        message: "required for the purposeSpecific stage".into(),
                    })?;
                    let declared: Vec<&str> = hub
                        .spec
                        .zones
                        .purpose_specific
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    if !declared.contains(&product) {
                        return Err(Unresolved {
                            field: "spec.location.dataProduct",
                            message: format!(
                                "the hub has no data product {product} (it declares: {})",
                                if declared.is_empty() {
                                    "none".to_string()
                                } else {
                                    declared.join(", ")
                                }
                            ),
                        });
                    }
                    Ok(vec![s3(
                        &layout.products,
                        Some(product),
                        format!("Data product {product} in the hub's purpose-specific zone"),
                    )])
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ResourceRef;

    fn hub(mode: &str) -> DataHub {
        DataHub::new(
            "national",
            serde_json::from_value(serde_json::json!({
                "storageMode": mode,
                "zones": {"purposeSpecific": [
                    {"name": "waiting-times", "purpose": "waiting-times", "regions": ["01"]},
                ]},
            }))
            .expect("spec"),
        )
    }

    fn at(stage: Stage, hub: bool, product: Option<&str>) -> DatasetLocation {
        let r = Some(ResourceRef { name: "x".into() });
        DatasetLocation {
            stage,
            data_hub: if hub { r.clone() } else { None },
            regional_node: if hub { None } else { r },
            data_product: product.map(String::from),
        }
    }

    #[test]
    fn products_are_a_prefix_of_the_hubs_products_zone() {
        let h = hub("central");
        let d = distributions(
            &at(Stage::PurposeSpecific, true, Some("waiting-times")),
            Some(Holder::Hub(&h)),
        )
        .expect("resolved");
        assert_eq!(
            d[0].access_url,
            "s3://vardhub-hub-national-products/waiting-times/"
        );
        let e = distributions(
            &at(Stage::PurposeSpecific, true, Some("beds")),
            Some(Holder::Hub(&h)),
        )
        .expect_err("undeclared product");
        assert_eq!(e.field, "spec.location.dataProduct");
        assert!(
            e.message.contains("declares: waiting-times"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_federated_hub_has_no_standardised_data_and_a_missing_holder_names_the_field() {
        let h = hub("federated");
        let e = distributions(&at(Stage::Standardised, true, None), Some(Holder::Hub(&h)))
            .expect_err("refused");
        assert_eq!(e.field, "spec.location.dataHub");
        let e = distributions(&at(Stage::Standardised, false, None), None).expect_err("refused");
        assert_eq!(e.field, "spec.location.regionalNode");
    }
}
