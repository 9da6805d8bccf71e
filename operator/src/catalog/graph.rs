//! Builds the catalogue's RDF graph from the `CatalogService` and its `Dataset`s. Pure: the
//! same input gives the same triples in the same order, with blank node labels derived from
//! the input, so a catalogue rendered offline equals the one served from the cluster.

use std::collections::HashSet;

use oxrdf::vocab::{rdf, rdfs, xsd};
use oxrdf::{BlankNode, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use sha2::{Digest, Sha256};

use super::vocab::{
    self, csvw, cv, dcat, dcatap, dct, dpv, eli, foaf, health, hydra, prov, skos, vcard,
};
use crate::api::{
    AccessRights, Agent, CatalogServiceSpec, ContactPoint, DatasetSpec, Distribution, LocalizedText,
};

/// The catalogue as the renderer sees it.
#[derive(Clone, Copy, Debug)]
pub struct CatalogRef<'a> {
    /// Namespace of the `CatalogService` (and of its datasets).
    pub namespace: &'a str,
    /// The catalogue's spec.
    pub spec: &'a CatalogServiceSpec,
}

/// One dataset as the renderer sees it.
#[derive(Clone, Copy, Debug)]
pub struct DatasetRef<'a> {
    /// `metadata.name` of the `Dataset`.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a DatasetSpec,
    /// Its distributions, as the operator resolved them.
    pub distributions: &'a [Distribution],
}

/// The part of the catalogue to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub number: usize,
    /// Datasets per page.
    pub size: usize,
}

impl Page {
    /// Number of pages for `total` datasets (at least one).
    pub fn count(total: usize, size: usize) -> usize {
        total.div_ceil(size.max(1)).max(1)
    }
}

/// Triples in insertion order without duplicates.
#[derive(Default, Debug)]
pub struct Triples {
    list: Vec<Triple>,
    seen: HashSet<Triple>,
    described: HashSet<NamedOrBlankNode>,
}

impl Triples {
    /// The triples, in order.
    pub fn as_slice(&self) -> &[Triple] {
        &self.list
    }

    /// The triples grouped by subject, subjects in the order they first appear; what the
    /// serialisers get, so that Turtle and JSON-LD describe each node in one place.
    pub fn grouped(&self) -> Vec<&Triple> {
        let mut order: Vec<&NamedOrBlankNode> = Vec::new();
        let mut groups: std::collections::HashMap<&NamedOrBlankNode, Vec<&Triple>> =
            std::collections::HashMap::new();
        for t in &self.list {
            let group = groups.entry(&t.subject).or_default();
            if group.is_empty() {
                order.push(&t.subject);
            }
            group.push(t);
        }
        order
            .into_iter()
            .flat_map(|s| groups.remove(s).unwrap_or_default())
            .collect()
    }

    /// Number of triples.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn add(&mut self, s: impl Into<NamedOrBlankNode>, p: impl Into<NamedNode>, o: impl Into<Term>) {
        let t = Triple::new(s, p, o);
        if self.seen.insert(t.clone()) {
            self.list.push(t);
        }
    }

    /// Whether `node` still needs its description (true only the first time).
    fn first(&mut self, node: impl Into<NamedOrBlankNode>) -> bool {
        self.described.insert(node.into())
    }
}

/// Ensures a trailing slash so that relative paths can be appended.
pub fn base(spec: &CatalogServiceSpec) -> String {
    let b = spec.base_uri.trim_end_matches('/');
    format!("{b}/")
}

/// IRI of the catalogue.
pub fn catalog_iri(spec: &CatalogServiceSpec) -> String {
    format!("{}catalog", base(spec))
}

/// IRI (and served URL) of a dataset.
pub fn dataset_iri(spec: &CatalogServiceSpec, name: &str) -> String {
    format!("{}datasets/{name}", base(spec))
}

fn iri(s: &str) -> NamedNode {
    NamedNode::new_unchecked(s)
}

fn blank(parts: &[&str]) -> BlankNode {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    BlankNode::new_unchecked(format!("b{hex}"))
}

fn lang(text: &str, tag: &str) -> Literal {
    Literal::new_language_tagged_literal_unchecked(text, tag)
}

fn texts(out: &mut Triples, s: &NamedOrBlankNode, p: oxrdf::NamedNodeRef<'_>, t: &LocalizedText) {
    out.add(s.clone(), p, lang(&t.sv, "sv"));
    out.add(s.clone(), p, lang(&t.en, "en"));
}

fn non_negative(n: i64) -> Literal {
    Literal::new_typed_literal(n.max(0).to_string(), xsd::NON_NEGATIVE_INTEGER)
}

fn concept(out: &mut Triples, node: &NamedNode, label: &str, scheme: Option<&str>) {
    if out.first(node.clone()) {
        out.add(node.clone(), rdf::TYPE, skos::CONCEPT);
        out.add(node.clone(), skos::PREF_LABEL, lang(label, "en"));
        if let Some(scheme) = scheme {
            out.add(node.clone(), skos::IN_SCHEME, iri(scheme));
        }
    }
}

fn typed(out: &mut Triples, node: &NamedNode, class: oxrdf::NamedNodeRef<'_>) {
    if out.first(node.clone()) {
        out.add(node.clone(), rdf::TYPE, class);
    }
}

/// An organisation with its HealthDCAT-AP contact point.
fn agent(out: &mut Triples, a: &Agent) -> NamedNode {
    let node = iri(&a.uri);
    if out.first(node.clone()) {
        out.add(node.clone(), rdf::TYPE, foaf::AGENT);
        out.add(
            node.clone(),
            foaf::NAME,
            Literal::new_simple_literal(&a.name),
        );
        if let Some(kind) = &a.publisher_type {
            let t = iri(&format!("{}{kind}", vocab::PUBLISHER_TYPE));
            out.add(node.clone(), dct::TYPE, t.clone());
            concept(out, &t, kind, None);
        }
        if let Some(email) = &a.email {
            let cp = blank(&["agent-contact", &a.uri]);
            out.add(node.clone(), cv::CONTACT_POINT, cp.clone());
            out.add(cp.clone(), rdf::TYPE, cv::CONTACT_POINT_CLASS);
            out.add(cp, cv::EMAIL, Literal::new_simple_literal(email));
        }
    }
    node
}

fn legislation(out: &mut Triples, s: &NamedOrBlankNode, laws: &[String]) {
    for law in laws {
        let node = iri(law);
        out.add(s.clone(), dcatap::APPLICABLE_LEGISLATION, node.clone());
        typed(out, &node, eli::LEGAL_RESOURCE);
    }
}

fn contact(out: &mut Triples, s: &NamedOrBlankNode, c: &ContactPoint, key: &str) {
    let node = blank(&["contact", key, &c.name, &c.email]);
    out.add(s.clone(), dcat::CONTACT_POINT, node.clone());
    if out.first(node.clone()) {
        out.add(node.clone(), rdf::TYPE, vcard::KIND);
        out.add(
            node.clone(),
            vcard::FN,
            Literal::new_simple_literal(&c.name),
        );
        out.add(node, vcard::HAS_EMAIL, iri(&format!("mailto:{}", c.email)));
    }
}

/// The access-right IRI of a level.
pub fn access_right(rights: AccessRights) -> String {
    let code = match rights {
        AccessRights::Public => "PUBLIC",
        AccessRights::Restricted => "RESTRICTED",
        AccessRights::NonPublic => "NON_PUBLIC",
    };
    format!("{}{code}", vocab::ACCESS_RIGHT)
}

/// Adds one dataset with its distributions, agents, variables and the concepts it uses.
pub fn dataset(out: &mut Triples, cat: CatalogRef<'_>, ds: DatasetRef<'_>) -> NamedNode {
    // Duplicates can only arise within one dataset (the same keyword twice, say): nodes that
    // datasets share are described once through `first`. Forgetting the previous dataset's
    // triples keeps the memory of a large catalogue to the triples themselves.
    out.seen.clear();
    let spec = ds.spec;
    let node = iri(&dataset_iri(cat.spec, ds.name));
    let s: NamedOrBlankNode = node.clone().into();
    out.add(s.clone(), rdf::TYPE, dcat::DATASET);
    out.add(
        s.clone(),
        dct::IDENTIFIER,
        Literal::new_simple_literal(format!("{}/{}", cat.namespace, ds.name)),
    );
    texts(out, &s, dct::TITLE, &spec.title);
    texts(out, &s, dct::DESCRIPTION, &spec.description);
    let publisher = agent(out, &spec.publisher);
    out.add(s.clone(), dct::PUBLISHER, publisher);
    contact(out, &s, &spec.contact_point, ds.name);
    for theme in &spec.themes {
        let t = iri(&format!("{}/{}", vocab::DATA_THEME, theme.code()));
        out.add(s.clone(), dcat::THEME, t.clone());
        concept(out, &t, theme.label(), Some(vocab::DATA_THEME));
    }
    for k in &spec.keywords {
        out.add(s.clone(), dcat::KEYWORD, lang(&k.sv, "sv"));
        out.add(s.clone(), dcat::KEYWORD, lang(&k.en, "en"));
    }
    let rights = iri(&access_right(spec.access_rights));
    out.add(s.clone(), dct::ACCESS_RIGHTS, rights.clone());
    typed(out, &rights, dct::RIGHTS_STATEMENT);
    legislation(out, &s, &spec.applicable_legislation);
    let kind = iri(&format!("{}{}", vocab::DATASET_TYPE, spec.dataset_type));
    out.add(s.clone(), dct::TYPE, kind.clone());
    concept(out, &kind, &spec.dataset_type, None);
    if let Some(hdab) = &spec.health_data_access_body {
        let a = agent(out, hdab);
        out.add(s.clone(), health::HDAB, a);
    }
    for category in &spec.health_categories {
        out.add(s.clone(), health::HEALTH_CATEGORY, iri(category));
    }
    out.add(
        s.clone(),
        health::HAS_STRUCTURED_DATA,
        Literal::from(spec.has_structured_data),
    );
    let provenance = blank(&["provenance", ds.name]);
    out.add(s.clone(), dct::PROVENANCE, provenance.clone());
    out.add(provenance.clone(), rdf::TYPE, dct::PROVENANCE_STATEMENT);
    texts(out, &provenance.into(), rdfs::LABEL, &spec.provenance);
    if let Some(period) = &spec.temporal_coverage {
        let t = blank(&["temporal", ds.name]);
        out.add(s.clone(), dct::TEMPORAL, t.clone());
        out.add(t.clone(), rdf::TYPE, dct::PERIOD_OF_TIME);
        out.add(
            t.clone(),
            dcat::START_DATE,
            Literal::new_typed_literal(&period.start, xsd::DATE),
        );
        if let Some(end) = &period.end {
            out.add(
                t,
                dcat::END_DATE,
                Literal::new_typed_literal(end, xsd::DATE),
            );
        }
    }
    for county in &spec.spatial_coverage {
        let place = iri(&format!("{}{}", vocab::NUTS, county.nuts3()));
        out.add(s.clone(), dct::SPATIAL, place.clone());
        if out.first(place.clone()) {
            out.add(place.clone(), rdf::TYPE, dct::LOCATION);
            out.add(
                place,
                skos::PREF_LABEL,
                lang(&format!("Region {}", county.name()), "sv"),
            );
        }
    }
    if let Some(p) = &spec.population {
        if let Some(n) = p.records {
            out.add(s.clone(), health::NUMBER_OF_RECORDS, non_negative(n));
        }
        if let Some(n) = p.unique_individuals {
            out.add(
                s.clone(),
                health::NUMBER_OF_UNIQUE_INDIVIDUALS,
                non_negative(n),
            );
        }
        if let Some(n) = p.min_age {
            out.add(s.clone(), health::MIN_TYPICAL_AGE, non_negative(n.into()));
        }
        if let Some(n) = p.max_age {
            out.add(s.clone(), health::MAX_TYPICAL_AGE, non_negative(n.into()));
        }
    }
    if let Some(basis) = &spec.legal_basis {
        let b = blank(&["legal-basis", ds.name]);
        out.add(s.clone(), dpv::HAS_LEGAL_BASIS, b.clone());
        out.add(b.clone(), rdf::TYPE, dpv::LEGAL_BASIS);
        out.add(b, dct::DESCRIPTION, lang(basis, "sv"));
    }
    if let Some(purpose) = &spec.purpose {
        let b = blank(&["purpose", ds.name]);
        out.add(s.clone(), dpv::HAS_PURPOSE, b.clone());
        out.add(b.clone(), rdf::TYPE, dpv::PURPOSE);
        texts(out, &b.into(), dct::DESCRIPTION, purpose);
    }
    for source in &spec.derived_from {
        out.add(
            s.clone(),
            prov::WAS_DERIVED_FROM,
            iri(&dataset_iri(cat.spec, &source.name)),
        );
    }
    variables(out, &s, ds);
    for d in ds.distributions {
        let dn = iri(&format!(
            "{}/distributions/{}",
            dataset_iri(cat.spec, ds.name),
            d.name
        ));
        out.add(s.clone(), dcat::DISTRIBUTION_PROP, dn.clone());
        let dns: NamedOrBlankNode = dn.into();
        out.add(dns.clone(), rdf::TYPE, dcat::DISTRIBUTION);
        out.add(dns.clone(), dct::TITLE, lang(&d.title, "en"));
        out.add(
            dns.clone(),
            dct::DESCRIPTION,
            lang(distribution_note(d.kind), "en"),
        );
        out.add(dns.clone(), dcat::ACCESS_URL, iri(&d.access_url));
        if let Some((endpoint, title)) = access_service(d) {
            // The service that serves the distribution, as DCAT-AP describes an access service.
            let service = blank(&["service", ds.name, &d.name]);
            out.add(dns.clone(), dcat::ACCESS_SERVICE, service.clone());
            out.add(service.clone(), rdf::TYPE, dcat::DATA_SERVICE);
            out.add(service.clone(), dct::TITLE, lang(title, "en"));
            out.add(service.clone(), dcat::ENDPOINT_URL, iri(endpoint.as_str()));
            out.add(service.clone(), dcat::SERVES_DATASET, s.clone());
            out.add(service, dct::ACCESS_RIGHTS, rights.clone());
        }
        out.add(dns.clone(), dct::ACCESS_RIGHTS, rights.clone());
        legislation(out, &dns, &spec.applicable_legislation);
        run_figures(out, &dns, d);
        if let Some(license) = &spec.license {
            let l = iri(license);
            out.add(dns.clone(), dct::LICENSE, l.clone());
            typed(out, &l, dct::LICENSE_DOCUMENT);
        }
    }
    node
}

/// What the operator's last look at a distribution's objects found, in DCAT-AP's terms:
/// planned availability, media type and format, size and when it was last written.
fn run_figures(out: &mut Triples, dns: &NamedOrBlankNode, d: &Distribution) {
    if let Some(a) = &d.availability {
        let node = iri(&format!("{}{a}", vocab::PLANNED_AVAILABILITY));
        out.add(dns.clone(), dcatap::AVAILABILITY, node.clone());
        concept(out, &node, &a.to_lowercase(), None);
    }
    if let Some(m) = &d.media_type {
        let node = iri(&format!("{}{m}", vocab::MEDIA_TYPES));
        out.add(dns.clone(), dcat::MEDIA_TYPE, node.clone());
        typed(out, &node, dct::MEDIA_TYPE_CLASS);
        if let Some(code) = vocab::file_type(m) {
            let node = iri(&format!("{}{code}", vocab::FILE_TYPE));
            out.add(dns.clone(), dct::FORMAT, node.clone());
            typed(out, &node, dct::MEDIA_TYPE_OR_EXTENT);
        }
    }
    if let Some(bytes) = d.byte_size {
        out.add(dns.clone(), dcat::BYTE_SIZE, non_negative(bytes));
    }
    if let Some(modified) = &d.modified {
        out.add(
            dns.clone(),
            dct::MODIFIED,
            Literal::new_typed_literal(modified.0.to_string(), xsd::DATE_TIME),
        );
    }
}

/// The endpoint and title of the service behind an API or SFTP distribution: the API's
/// `/v1/`, the SFTP server's root.
fn access_service(d: &Distribution) -> Option<(reqwest::Url, &'static str)> {
    use crate::api::DistributionKind::*;
    let (path, title) = match d.kind {
        Api => (
            "/v1/",
            "The hub's API for data products, for holders of a data permit",
        ),
        Sftp => (
            "/",
            "The hub's SFTP server for data products, for holders of a data permit",
        ),
        S3 => return None,
    };
    let endpoint = reqwest::Url::parse(&d.access_url).ok()?.join(path).ok()?;
    Some((endpoint, title))
}

fn distribution_note(kind: crate::api::DistributionKind) -> &'static str {
    use crate::api::DistributionKind::*;
    match kind {
        S3 => {
            "An S3 bucket and prefix, reached only with credentials the operator issues for an approved use"
        }
        Api => "An HTTP API, reached only with credentials the operator issues for an approved use",
        Sftp => {
            "An SFTP endpoint, reached only with credentials the operator issues for an approved use"
        }
    }
}

/// The variables of a structured dataset as a CSVW table group, and the code systems they use.
fn variables(out: &mut Triples, s: &NamedOrBlankNode, ds: DatasetRef<'_>) {
    let spec = ds.spec;
    if spec.variables.is_empty() {
        return;
    }
    let group = blank(&["variables", ds.name]);
    let table = blank(&["table", ds.name]);
    out.add(s.clone(), health::HAS_VARIABLES, group.clone());
    out.add(group.clone(), rdf::TYPE, csvw::TABLE_GROUP);
    texts(out, &group.clone().into(), dct::TITLE, &spec.title);
    out.add(group, csvw::TABLE_PROP, table.clone());
    out.add(table.clone(), rdf::TYPE, csvw::TABLE);
    texts(out, &table.clone().into(), dct::TITLE, &spec.title);
    let mut schemes = Vec::new();
    for v in &spec.variables {
        let column = blank(&["column", ds.name, &v.name]);
        out.add(table.clone(), csvw::COLUMN_PROP, column.clone());
        let c: NamedOrBlankNode = column.into();
        out.add(c.clone(), rdf::TYPE, csvw::COLUMN);
        out.add(c.clone(), csvw::NAME, Literal::new_simple_literal(&v.name));
        texts(out, &c, csvw::TITLE, &v.title);
        texts(out, &c, dct::DESCRIPTION, &v.description);
        out.add(
            c.clone(),
            csvw::DATATYPE,
            Literal::new_simple_literal(&v.datatype),
        );
        if let Some(system) = &v.code_system {
            let scheme = blank(&["code-system", system]);
            out.add(c, dct::CONFORMS_TO, scheme.clone());
            if !schemes.contains(system) {
                schemes.push(system.clone());
                out.add(s.clone(), health::HAS_CODING_SYSTEM, scheme.clone());
            }
            if out.first(scheme.clone()) {
                out.add(scheme.clone(), rdf::TYPE, skos::CONCEPT_SCHEME);
                out.add(scheme, dct::TITLE, Literal::new_simple_literal(system));
            }
        }
    }
}

/// The catalogue's own description, listing `members` as its datasets.
pub fn catalog(out: &mut Triples, cat: CatalogRef<'_>, members: &[NamedNode]) -> NamedNode {
    let spec = cat.spec;
    let node = iri(&catalog_iri(spec));
    let s: NamedOrBlankNode = node.clone().into();
    out.add(s.clone(), rdf::TYPE, dcat::CATALOG);
    texts(out, &s, dct::TITLE, &spec.title);
    texts(out, &s, dct::DESCRIPTION, &spec.description);
    let publisher = agent(out, &spec.publisher);
    out.add(s.clone(), dct::PUBLISHER, publisher);
    legislation(out, &s, &spec.applicable_legislation);
    for code in spec.languages.iter().filter_map(|l| vocab::language(l)) {
        let l = iri(&format!("{}{code}", vocab::LANGUAGE));
        out.add(s.clone(), dct::LANGUAGE, l.clone());
        typed(out, &l, dct::LINGUISTIC_SYSTEM);
    }
    let home = iri(&base(spec));
    out.add(s.clone(), foaf::HOMEPAGE, home.clone());
    typed(out, &home, foaf::DOCUMENT);
    let country = iri(vocab::SWEDEN);
    out.add(s.clone(), dct::SPATIAL, country.clone());
    if out.first(country.clone()) {
        out.add(country.clone(), rdf::TYPE, dct::LOCATION);
        out.add(country, skos::PREF_LABEL, lang("Sverige", "sv"));
    }
    let scheme = iri(vocab::DATA_THEME);
    out.add(s.clone(), dcat::THEME_TAXONOMY, scheme.clone());
    if out.first(scheme.clone()) {
        out.add(scheme.clone(), rdf::TYPE, skos::CONCEPT_SCHEME);
        out.add(scheme, dct::TITLE, lang("Data theme", "en"));
    }
    for m in members {
        out.add(s.clone(), dcat::DATASET_PROP, m.clone());
    }
    node
}

/// One page of the catalogue: its description, the page's datasets in full, and a Hydra view
/// linking the other pages. Without `page`, the whole catalogue.
pub fn render(cat: CatalogRef<'_>, datasets: &[DatasetRef<'_>], page: Option<Page>) -> Triples {
    let mut out = Triples::default();
    let total = datasets.len();
    let chosen: &[DatasetRef<'_>] = match page {
        Some(p) => {
            let start = (p.number.saturating_sub(1))
                .saturating_mul(p.size)
                .min(total);
            let end = start.saturating_add(p.size).min(total);
            &datasets[start..end]
        }
        None => datasets,
    };
    let members: Vec<NamedNode> = chosen
        .iter()
        .map(|d| iri(&dataset_iri(cat.spec, d.name)))
        .collect();
    let catalog = catalog(&mut out, cat, &members);
    if let Some(p) = page {
        let pages = Page::count(total, p.size);
        let url = |n: usize| iri(&format!("{}?page={n}", catalog_iri(cat.spec)));
        let view = url(p.number);
        out.add(catalog.clone(), hydra::VIEW, view.clone());
        out.add(
            catalog,
            hydra::TOTAL_ITEMS,
            Literal::new_typed_literal(total.to_string(), xsd::NON_NEGATIVE_INTEGER),
        );
        out.add(view.clone(), rdf::TYPE, hydra::PARTIAL_COLLECTION_VIEW);
        out.add(view.clone(), hydra::FIRST, url(1));
        out.add(view.clone(), hydra::LAST, url(pages));
        if p.number > 1 {
            out.add(
                view.clone(),
                hydra::PREVIOUS,
                url((p.number - 1).min(pages)),
            );
        }
        if p.number < pages {
            out.add(view, hydra::NEXT, url(p.number + 1));
        }
    }
    for d in chosen {
        dataset(&mut out, cat, *d);
    }
    out
}

/// One dataset on its own (its resource URL), with the agents and concepts it uses.
pub fn render_dataset(cat: CatalogRef<'_>, ds: DatasetRef<'_>) -> Triples {
    let mut out = Triples::default();
    dataset(&mut out, cat, ds);
    out
}
