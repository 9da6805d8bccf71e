//! The data catalogue: DCAT-AP 3 / HealthDCAT-AP in RDF, generated from the `Dataset`
//! resources a `CatalogService` selects, so it cannot drift from the data it describes.
//!
//! - [`locate`]: a dataset's distributions from its stage and holder (pure).
//! - [`graph`]: the RDF graph of a catalogue page or one dataset (pure).
//! - [`format`]: Turtle, JSON-LD, RDF/XML and N-Triples, and content negotiation.
//! - [`variables`]: the variable list as CSV.
//! - [`server`]: the HTTP component that serves a catalogue from the cluster (I/O).
//!
//! [`Catalogue`] ties them together; the controller, the server and the offline renderer all
//! build one, so the three give the same triples and the same digest.

pub mod format;
pub mod graph;
pub mod locate;
pub mod server;
pub mod variables;
pub mod vocab;

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use sha2::{Digest, Sha256};

use crate::api::{CatalogService, CatalogServiceSpec, Dataset, DatasetSpec, Distribution};
use graph::{CatalogRef, DatasetRef, Page, Triples};

/// One dataset of a catalogue. The dataset itself is shared with whoever holds it (the
/// operator's watch), not copied: at 2,100 datasets a copy of every spec per render was the
/// operator's largest transient allocation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    /// `metadata.name`.
    pub name: String,
    /// The dataset; its spec is the metadata.
    #[serde(rename = "spec", serialize_with = "spec_of")]
    dataset: Arc<Dataset>,
    /// Where the data is reached.
    pub distributions: Vec<Distribution>,
}

fn spec_of<S: serde::Serializer>(dataset: &Arc<Dataset>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&dataset.spec, s)
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.distributions == other.distributions
            && (Arc::ptr_eq(&self.dataset, &other.dataset)
                || self.dataset.spec == other.dataset.spec)
    }
}

impl Entry {
    /// The entry of `dataset`, reached through `distributions`.
    pub fn new(dataset: Arc<Dataset>, distributions: Vec<Distribution>) -> Self {
        Self {
            name: dataset.name_any(),
            dataset,
            distributions,
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The dataset's metadata.
    pub fn spec(&self) -> &DatasetSpec {
        &self.dataset.spec
    }

    /// The metadata to change (copies the dataset when it is shared).
    pub fn spec_mut(&mut self) -> &mut DatasetSpec {
        &mut Arc::make_mut(&mut self.dataset).spec
    }
}

/// A catalogue with the datasets it includes, sorted by name.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Catalogue {
    /// Namespace of the catalogue and its datasets.
    pub namespace: String,
    /// The catalogue's spec.
    pub spec: CatalogServiceSpec,
    /// The datasets, sorted by name.
    pub datasets: Vec<Entry>,
    /// Selected datasets left out because their location is not resolved (yet).
    #[serde(skip)]
    pub pending: Vec<String>,
}

/// The parsed form of a catalogue's `spec.datasetSelector` (`None` selects every dataset),
/// parsed once for all the datasets it is matched against.
pub fn selector(
    spec: &CatalogServiceSpec,
) -> Result<Option<Selector>, kube::core::ParseExpressionError> {
    spec.dataset_selector
        .clone()
        .map(Selector::try_from)
        .transpose()
}

fn selects(selector: Option<&Selector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| s.matches(labels))
}

impl Catalogue {
    /// The catalogue of `svc` from the cluster's datasets: those of its namespace that its
    /// selector picks and whose distributions the operator has resolved. A dataset whose spec
    /// just changed keeps its last distributions until the operator has looked at it again
    /// (moments later), rather than dropping out of the catalogue meanwhile; one whose
    /// location no longer resolves has none and is left out.
    pub fn from_cluster<'a>(
        svc: &CatalogService,
        datasets: impl IntoIterator<Item = &'a Arc<Dataset>>,
    ) -> Result<Self, kube::core::ParseExpressionError> {
        let namespace = svc.namespace().unwrap_or_default();
        let selector = selector(&svc.spec)?;
        let mut entries = Vec::new();
        let mut pending = Vec::new();
        for d in datasets {
            if d.namespace().as_deref() != Some(namespace.as_str())
                || d.metadata.deletion_timestamp.is_some()
                || !selects(selector.as_ref(), d.labels())
            {
                continue;
            }
            let resolved = d.status.as_ref().filter(|s| !s.distributions.is_empty());
            match resolved {
                Some(s) => entries.push(Entry::new(Arc::clone(d), s.distributions.clone())),
                None => pending.push(d.name_any()),
            }
        }
        Ok(Self::new(namespace, svc.spec.clone(), entries, pending))
    }

    /// A catalogue of the given entries.
    pub fn new(
        namespace: String,
        spec: CatalogServiceSpec,
        mut datasets: Vec<Entry>,
        mut pending: Vec<String>,
    ) -> Self {
        datasets.sort_by(|a, b| a.name.cmp(&b.name));
        pending.sort();
        Self {
            namespace,
            spec,
            datasets,
            pending,
        }
    }

    fn refs(&self) -> (CatalogRef<'_>, Vec<DatasetRef<'_>>) {
        (
            CatalogRef {
                namespace: &self.namespace,
                spec: &self.spec,
            },
            self.datasets
                .iter()
                .map(|e| DatasetRef {
                    name: &e.name,
                    spec: e.spec(),
                    distributions: &e.distributions,
                })
                .collect(),
        )
    }

    /// SHA-256 of the catalogue's content (hex, first 32 characters). The same content gives
    /// the same digest wherever it is computed.
    pub fn digest(&self) -> String {
        // Streamed into the hash: at 2,100 datasets the JSON would be megabytes held at once.
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, self);
        let d = hasher.finalize();
        d[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Datasets per page.
    pub fn page_size(&self) -> usize {
        usize::try_from(self.spec.page_size).unwrap_or(100).max(1)
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        Page::count(self.datasets.len(), self.page_size())
    }

    /// Page `number` (1-based), or `None` past the last page.
    pub fn page(&self, number: usize) -> Option<Triples> {
        if number == 0 || number > self.pages() {
            return None;
        }
        let (cat, ds) = self.refs();
        Some(graph::render(
            cat,
            &ds,
            Some(Page {
                number,
                size: self.page_size(),
            }),
        ))
    }

    /// Number of triples served across all pages, counted a page at a time so that memory
    /// stays that of one page.
    pub fn triples_served(&self) -> usize {
        (1..=self.pages())
            .map(|n| self.page(n).map(|t| t.len()).unwrap_or(0))
            .sum()
    }

    /// The whole catalogue in one graph.
    pub fn all(&self) -> Triples {
        let (cat, ds) = self.refs();
        graph::render(cat, &ds, None)
    }

    /// One dataset's resource, or `None` when the catalogue does not include it.
    pub fn dataset(&self, name: &str) -> Option<Triples> {
        let (cat, ds) = self.refs();
        let d = ds.iter().find(|d| d.name == name)?;
        Some(graph::render_dataset(cat, *d))
    }

    /// The variable list as CSV.
    pub fn variables_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let (cat, ds) = self.refs();
        variables::csv(cat, &ds)
    }
}

/// The catalogue `name` (or the only one) of an environment directory, rendered offline: each
/// dataset's distributions are derived from the environment's own hubs and nodes, as the
/// operator would. Fails naming every dataset whose location does not resolve.
pub fn offline(
    resources: &crate::manifest::Resources,
    name: Option<&str>,
) -> anyhow::Result<Catalogue> {
    use anyhow::Context as _;
    let svc = match name {
        Some(n) => resources
            .catalogs
            .iter()
            .find(|c| c.name_any() == n)
            .with_context(|| format!("no CatalogService named {n}"))?,
        None => match resources.catalogs.as_slice() {
            [only] => only,
            [] => anyhow::bail!("the directory has no CatalogService"),
            _ => {
                anyhow::bail!("the directory has several CatalogServices; name one with --catalog")
            }
        },
    };
    let namespace = svc.namespace().unwrap_or_else(|| "default".into());
    let selector = selector(&svc.spec)?;
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for d in &resources.datasets {
        if d.namespace().unwrap_or_else(|| "default".into()) != namespace
            || !selects(selector.as_ref(), d.labels())
        {
            continue;
        }
        let l = &d.spec.location;
        let holder = if let Some(h) = &l.data_hub {
            resources
                .hubs
                .iter()
                .find(|x| x.name_any() == h.name)
                .map(locate::Holder::Hub)
        } else if let Some(n) = &l.regional_node {
            resources
                .nodes
                .iter()
                .find(|x| x.name_any() == n.name)
                .map(locate::Holder::Node)
        } else {
            None
        };
        match locate::distributions(l, holder) {
            Ok(distributions) => entries.push(Entry::new(Arc::new(d.clone()), distributions)),
            Err(e) => errors.push(format!("Dataset {}: {e}", d.name_any())),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(Catalogue::new(
        namespace,
        svc.spec.clone(),
        entries,
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::format::{Format, serialize};
    use super::*;

    fn local() -> Catalogue {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments/local");
        let resources = crate::manifest::load(&dir).expect("environments/local loads");
        offline(&resources, None).expect("its catalogue renders")
    }

    #[test]
    fn the_same_input_gives_the_same_triples_and_digest() {
        let (a, b) = (local(), local());
        assert_eq!(a.digest(), b.digest());
        let nt = |c: &Catalogue| serialize(&c.all(), Format::NTriples).expect("serialises");
        assert_eq!(nt(&a), nt(&b), "blank node labels are derived, not random");
        let mut changed = a.clone();
        changed.datasets[0].spec_mut().title.en.push('!');
        assert_ne!(changed.digest(), a.digest());
        // Streamed, the digest is that of the catalogue's JSON, as statuses already record it.
        let whole = Sha256::digest(serde_json::to_vec(&a).expect("serialises"));
        let hex: String = whole[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a.digest(), hex);
    }

    #[test]
    fn pages_split_the_datasets_and_link_to_each_other() {
        let c = local();
        assert_eq!((c.datasets.len(), c.page_size(), c.pages()), (20, 10, 2));
        let members = |n: usize| {
            c.page(n)
                .expect("page")
                .as_slice()
                .iter()
                .filter(|t| t.predicate.as_str() == "http://www.w3.org/ns/dcat#dataset")
                .count()
        };
        assert_eq!((members(1), members(2)), (10, 10));
        assert!(c.page(0).is_none() && c.page(3).is_none());
        let first = serialize(&c.page(1).expect("page"), Format::NTriples).expect("nt");
        let text = String::from_utf8(first).expect("utf-8");
        assert!(text.contains("<http://www.w3.org/ns/hydra/core#next> <https://katalog.vardhub.example.se/catalog?page=2>"));
        assert!(!text.contains("hydra/core#previous"));
    }

    #[test]
    fn a_dataset_resource_holds_its_distribution_and_nothing_of_the_others() {
        let c = local();
        let one = serialize(
            &c.dataset("hip-fracture-product").expect("present"),
            Format::Turtle,
        )
        .expect("turtle");
        let text = String::from_utf8(one).expect("utf-8");
        assert!(text.contains("s3://vardhub-hub-national-products/hip-fracture/"));
        assert!(!text.contains("waiting-times-product>"));
        assert!(c.dataset("no-such").is_none());
        let csv = String::from_utf8(c.variables_csv().expect("csv")).expect("utf-8");
        assert!(csv.starts_with(&variables::HEADER.join(",")));
    }

    #[test]
    fn an_exposed_product_names_the_hubs_api_and_sftp_server_as_its_access_services() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments/local");
        let mut resources = crate::manifest::load(&dir).expect("environments/local loads");
        for hub in &mut resources.hubs {
            hub.spec.exposure.api = true;
            hub.spec.exposure.sftp = true;
        }
        let c = offline(&resources, None).expect("its catalogue renders");
        let one = serialize(
            &c.dataset("hip-fracture-product").expect("present"),
            Format::NTriples,
        )
        .expect("n-triples");
        let text = String::from_utf8(one).expect("utf-8");
        assert!(
            text.contains("<http://www.w3.org/ns/dcat#accessService>"),
            "{text}"
        );
        assert!(
            text.contains("<http://www.w3.org/ns/dcat#DataService>"),
            "{text}"
        );
        assert!(
            text.contains(
                "<http://www.w3.org/ns/dcat#endpointURL> <https://exposure-api.hub-national.svc/v1/>"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "<https://exposure-api.hub-national.svc/v1/products/hip-fracture/objects>"
            )
        );
        assert!(
            text.contains(
                "<http://www.w3.org/ns/dcat#endpointURL> <sftp://exposure-sftp.hub-national.svc/>"
            ),
            "{text}"
        );
        assert!(text.contains("<sftp://exposure-sftp.hub-national.svc/hip-fracture/>"));
    }
}
