//! Where a dataset's data can be reached, derived from its stage and the hub or node holding
//! it. Pure; the `Dataset` controller writes the result into the dataset's status, and the
//! offline renderer calls it with the environment's own hubs and nodes.

use crate::api::{
    DataHub, DatasetLocation, Distribution, DistributionKind, RegionalNode, Stage, StorageMode,
};
use crate::layout::{exposure_api_url, exposure_sftp_url, hub_layout, node_layout};

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

/// Planned availability (EU vocabulary) of a landing zone's extracts.
pub const TEMPORARY: &str = "TEMPORARY";
/// Planned availability of standardised data.
pub const AVAILABLE: &str = "AVAILABLE";
/// Planned availability of a data product.
pub const STABLE: &str = "STABLE";

fn s3(bucket: &str, prefix: Option<&str>, title: String, availability: &str) -> Distribution {
    let path = prefix
        .map(|p| format!("{}/", p.trim_matches('/')))
        .unwrap_or_default();
    Distribution {
        name: "s3".into(),
        kind: DistributionKind::S3,
        access_url: format!("s3://{bucket}/{path}"),
        title,
        availability: Some(availability.into()),
        ..Default::default()
    }
}

/// Splits `s3://<bucket>/<prefix>` into bucket and prefix. Pure.
pub fn s3_location(access_url: &str) -> Option<(&str, &str)> {
    let rest = access_url.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// IANA media types of the files the flow writes, by extension.
pub fn media_type(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1;
    Some(match ext {
        "parquet" => "application/vnd.apache.parquet",
        "csv" => "text/csv",
        "json" => "application/json",
        "html" => "text/html",
        _ => return None,
    })
}

/// A report page found next to a product's data.
pub const REPORT: &str = "report.html";

/// What the S3 server lists under a distribution's address: `(key, size, modified)`.
pub type Listing = [(String, i64, Option<k8s_openapi::jiff::Timestamp>)];

/// What the last look found under one address: the objects, and the rows the Parquet files
/// among them record (`None` when none records any).
pub type Look = (
    Vec<(String, i64, Option<k8s_openapi::jiff::Timestamp>)>,
    Option<i64>,
);

/// The distributions of `resolved` with what the last look at their objects found, once a run
/// has written any: bytes,
/// objects, the newest write, the data files' media type (manifests, indicators and reports
/// beside the data do not count), and, for a prefix holding a report page, that page as a
/// distribution of its own. `list` gives the objects under a distribution's address. Pure.
pub fn with_figures(
    resolved: Vec<Distribution>,
    list: impl Fn(&str, &str) -> Option<Look>,
) -> Vec<Distribution> {
    let mut out = Vec::new();
    for mut d in resolved {
        let Some((bucket, prefix)) =
            s3_location(&d.access_url).map(|(b, p)| (b.to_owned(), p.to_owned()))
        else {
            out.push(d);
            continue;
        };
        // No run has written here yet: nothing to say beyond the address (and the catalogue
        // stays the one rendered offline from the same directory).
        let Some((objects, rows)) = list(&bucket, &prefix).filter(|(o, _)| !o.is_empty()) else {
            out.push(d);
            continue;
        };
        d.rows = rows;
        let newest = |o: &Listing| {
            o.iter()
                .filter_map(|(_, _, m)| *m)
                .max()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
        };
        d.objects = Some(objects.len() as i64);
        d.byte_size = Some(objects.iter().map(|(_, size, _)| size).sum());
        d.modified = newest(&objects);
        let data: std::collections::BTreeSet<&str> = objects
            .iter()
            .filter(|(key, _, _)| !(key.ends_with(".json") || key.ends_with(".html")))
            .filter_map(|(key, _, _)| media_type(key))
            .collect();
        d.media_type = (data.len() == 1)
            .then(|| data.iter().next().map(|m| (*m).to_owned()))
            .flatten();
        let report_key = format!("{prefix}{REPORT}");
        let report: Vec<_> = objects
            .iter()
            .filter(|(key, _, _)| *key == report_key)
            .cloned()
            .collect();
        let availability = d.availability.clone();
        out.push(d);
        if !report.is_empty() {
            out.push(Distribution {
                name: "report".into(),
                kind: DistributionKind::S3,
                access_url: format!("s3://{bucket}/{report_key}"),
                title: "Report: the use case's indicators per region, a self-contained HTML page"
                    .into(),
                availability,
                media_type: Some("text/html".into()),
                byte_size: Some(report.iter().map(|(_, s, _)| s).sum()),
                objects: Some(1),
                rows: None,
                modified: newest(&report),
            });
        }
    }
    out
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
                    TEMPORARY,
                )]),
                Stage::Standardised => Ok(vec![s3(
                    &layout.standardised,
                    l.data_product.as_deref(),
                    "Common data model in the region's own storage".into(),
                    AVAILABLE,
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
                    AVAILABLE,
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
                    let mut out = vec![s3(
                        &layout.products,
                        Some(product),
                        format!("Data product {product} in the hub's purpose-specific zone"),
                        STABLE,
                    )];
                    if hub.spec.exposure.api {
                        out.push(Distribution {
                            name: "api".into(),
                            kind: DistributionKind::Api,
                            access_url: format!(
                                "{}/v1/products/{product}/objects",
                                exposure_api_url(hub)
                            ),
                            title: format!(
                                "Data product {product} through the hub's API, for holders of a data permit"
                            ),
                            availability: Some(STABLE.into()),
                            ..Default::default()
                        });
                    }
                    if hub.spec.exposure.sftp {
                        out.push(Distribution {
                            name: "sftp".into(),
                            kind: DistributionKind::Sftp,
                            access_url: format!("{}/{product}/", exposure_sftp_url(hub)),
                            title: format!(
                                "Data product {product} over the hub's SFTP server, for holders of a data permit"
                            ),
                            availability: Some(STABLE.into()),
                            ..Default::default()
                        });
                    }
                    Ok(out)
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
    fn an_exposed_product_is_also_reached_through_the_hubs_api() {
        let mut h = hub("central");
        let at_product = at(Stage::PurposeSpecific, true, Some("waiting-times"));
        let only_s3 = distributions(&at_product, Some(Holder::Hub(&h))).expect("resolved");
        assert_eq!(only_s3.len(), 1, "not exposed: the bucket alone");
        h.spec.exposure.api = true;
        let d = distributions(&at_product, Some(Holder::Hub(&h))).expect("resolved");
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].kind, DistributionKind::Api);
        assert_eq!(
            d[1].access_url,
            "https://exposure-api.hub-national.svc/v1/products/waiting-times/objects"
        );
        h.spec.exposure.sftp = true;
        let d = distributions(&at_product, Some(Holder::Hub(&h))).expect("resolved");
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].kind, DistributionKind::Sftp);
        assert_eq!(
            d[2].access_url,
            "sftp://exposure-sftp.hub-national.svc/waiting-times/"
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

    #[test]
    fn a_run_s_objects_give_size_newest_write_media_type_and_the_report() {
        let product = s3(
            "hub-products",
            Some("hip-fracture"),
            "product".into(),
            STABLE,
        );
        let t = |secs: i64| k8s_openapi::jiff::Timestamp::from_second(secs).ok();
        let listed = vec![
            ("hip-fracture/hip_fracture.parquet".to_owned(), 1000, t(100)),
            ("hip-fracture/indicators.json".to_owned(), 50, t(101)),
            ("hip-fracture/report.html".to_owned(), 400, t(102)),
        ];
        let out = with_figures(vec![product], |bucket, prefix| {
            assert_eq!((bucket, prefix), ("hub-products", "hip-fracture/"));
            Some((listed.clone(), Some(1234)))
        });
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].byte_size, Some(1450));
        assert_eq!(out[0].objects, Some(3));
        assert_eq!(out[0].rows, Some(1234));
        assert_eq!(
            out[0].media_type.as_deref(),
            Some("application/vnd.apache.parquet"),
            "the data files' type; the indicators and report beside them do not count"
        );
        assert_eq!(out[0].modified.as_ref().map(|m| m.0), t(102));
        assert_eq!(
            out[1].access_url,
            "s3://hub-products/hip-fracture/report.html"
        );
        assert_eq!(out[1].media_type.as_deref(), Some("text/html"));
        assert_eq!(out[1].availability.as_deref(), Some(STABLE));
        // Nothing listed (no S3 server configured, or the listing failed): no figures.
        let bare = with_figures(vec![s3("b", None, "t".into(), AVAILABLE)], |_, _| None);
        assert_eq!(
            (bare[0].byte_size, bare[0].media_type.clone()),
            (None, None)
        );
    }
}
