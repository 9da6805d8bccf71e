//! `vardhub compare <dir>…`: the realisation alternatives side by side. For each: where
//! every component runs, where every copy of patient-level (pseudonymised) data lives,
//! whether identifiable data leaves a region, who holds the keys, the CPU, memory and storage
//! requested, an estimated monthly cost from an editable price table, and the compliance
//! rules' verdict. Every figure is computed from the manifests and the operator's builders.
//! Output as Markdown, or as a self-contained HTML page with a data-flow diagram (SVG).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;
use svg::Document;
use svg::node::element::{Definitions, Line, Marker, Path as SvgPath, Rectangle, Text};

use crate::api::StorageMode;
use crate::controller::storage;
use crate::markup::literal;
use crate::render::{Resources, Settings};

/// Annotation naming the price list of the hub's site.
pub const SITE_HUB: &str = "vardhub.io/site-hub";
/// Annotation naming the price list of the regions' site.
pub const SITE_REGIONS: &str = "vardhub.io/site-regions";

/// One site's prices (per month).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SitePrices {
    /// One CPU core reserved for a month.
    pub cpu_core_month: f64,
    /// One GiB of memory reserved for a month.
    pub memory_gib_month: f64,
    /// One GiB of object storage for a month.
    pub object_storage_gib_month: f64,
    /// A key service (OpenBao) run by the site.
    pub key_service_month: f64,
    /// A Kubernetes control plane.
    pub cluster_month: f64,
}

/// Volumes and run times the estimate rests on.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Assumptions {
    /// One region's data in the common model, GiB.
    pub standardised_gib_per_region: f64,
    /// One region's raw extracts kept in landing, GiB.
    pub landing_gib_per_region: f64,
    /// Purpose-specific extracts as a share of standardised data.
    pub product_share: f64,
    /// Hours each scheduled job runs in a month.
    pub job_hours_per_month: f64,
    /// Hours in a month.
    pub hours_per_month: f64,
}

/// The price table file (`environments/prices.yaml`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    /// Currency of every price.
    pub currency: String,
    /// Prices per site kind.
    pub sites: BTreeMap<String, SitePrices>,
    /// Volumes and run times.
    pub assumptions: Assumptions,
    /// Figures measured by the flow benchmark (`--measured target/bench/flow.json`), shown
    /// beside the assumptions; not part of the price table file.
    #[serde(skip)]
    pub measured: Option<Measured>,
}

/// Bytes of one storage mode in a measured run.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredMode {
    /// Kept in the regions' buckets.
    pub stored_in_regions: u64,
    /// Kept in the hub's buckets.
    pub stored_in_hub: u64,
    /// Copied from the regions to the hub.
    pub copied_to_hub: u64,
}

/// What `cargo bench -p vardhub --bench flow` measured (its `flow.json`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// Synthetic patients.
    pub patients: u64,
    /// Regions.
    pub regions: usize,
    /// The whole flow, in seconds.
    pub whole_flow_seconds: f64,
    /// Bytes in central mode.
    pub central: MeasuredMode,
    /// Bytes in federated mode.
    pub federated: MeasuredMode,
}

/// What one alternative amounts to.
#[derive(Clone, Debug, PartialEq)]
pub struct Alternative {
    /// Its name (the directory's).
    pub name: String,
    /// The hub's storage mode.
    pub storage_mode: StorageMode,
    /// Site of the hub and of the regions.
    pub sites: (String, String),
    /// The stated assumptions (annotation suffix → text).
    pub assumptions: BTreeMap<String, String>,
    /// Regions served, and regional nodes.
    pub regions: usize,
    /// Regional nodes.
    pub nodes: usize,
    /// Copies of each region's patient-level data, and where.
    pub copies: Vec<String>,
    /// Flows of identifiable data out of a region (must be none).
    pub identifiable_flows: Vec<String>,
    /// Key custodians: OpenBao namespaces.
    pub key_custodians: usize,
    /// CPU cores requested on average (jobs weighted by their run time), hub and regions.
    pub cpu: (f64, f64),
    /// Memory requested on average, GiB, hub and regions.
    pub memory_gib: (f64, f64),
    /// Object storage, GiB, hub and regions.
    pub storage_gib: (f64, f64),
    /// Estimated monthly cost, hub and regions.
    pub cost: (f64, f64),
    /// Compliance violations.
    pub violations: Vec<String>,
}

fn cpu_cores(q: &Quantity) -> f64 {
    let s = q.0.as_str();
    match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap_or(0.0) / 1000.0,
        None => s.parse().unwrap_or(0.0),
    }
}

fn gib(q: &Quantity) -> f64 {
    let s = q.0.as_str();
    let units = [
        ("Ki", 1.0 / 1024.0 / 1024.0),
        ("Mi", 1.0 / 1024.0),
        ("Gi", 1.0),
        ("Ti", 1024.0),
    ];
    for (suffix, factor) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(0.0) * factor;
        }
    }
    s.parse::<f64>().unwrap_or(0.0) / 1024.0 / 1024.0 / 1024.0
}

/// CPU and memory requested by a rendered workload, averaged over the month: Deployments
/// all the time times replicas, CronJobs for their run time.
fn requests(object: &serde_json::Value, a: &Assumptions) -> (f64, f64) {
    let (pod, weight) = match object["kind"].as_str() {
        Some("Deployment") => (
            &object["spec"]["template"]["spec"],
            object["spec"]["replicas"].as_f64().unwrap_or(1.0),
        ),
        Some("CronJob") => (
            &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            a.job_hours_per_month / a.hours_per_month,
        ),
        _ => return (0.0, 0.0),
    };
    let mut cpu = 0.0;
    let mut memory = 0.0;
    for c in pod["containers"].as_array().into_iter().flatten() {
        let req = &c["resources"]["requests"];
        if let Ok(q) = serde_json::from_value::<Quantity>(req["cpu"].clone()) {
            cpu += cpu_cores(&q);
        }
        if let Ok(q) = serde_json::from_value::<Quantity>(req["memory"].clone()) {
            memory += gib(&q);
        }
    }
    (cpu * weight, memory * weight)
}

/// Works out one alternative. Pure apart from the rules' evaluation.
pub fn analyse(
    name: &str,
    resources: &Resources,
    prices: &PriceTable,
) -> anyhow::Result<Alternative> {
    let settings = Settings::new(
        "https://openbao.openbao.svc:8200",
        "https://s3.eu-north-1.amazonaws.com",
    );
    let hub = resources.hubs.first();
    let annotations = hub
        .and_then(|h| h.metadata.annotations.clone())
        .unwrap_or_default();
    let site = |key: &str| {
        annotations
            .get(key)
            .cloned()
            .unwrap_or_else(|| "cloud".into())
    };
    let sites = (site(SITE_HUB), site(SITE_REGIONS));
    let assumptions = annotations
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("vardhub.io/assumption-")
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect();
    let mode = hub.map_or(StorageMode::Central, |h| h.spec.storage_mode);
    let regions: usize = resources.nodes.iter().map(|n| n.spec.regions.len()).sum();
    let a = &prices.assumptions;

    // Copies of patient-level data, from the same layout the controllers use.
    let mut copies = vec!["each node's standardised bucket (the region's own custody)".to_string()];
    if let Some(h) = hub {
        let l = storage::hub_layout(h);
        match mode {
            StorageMode::Central => {
                copies.push(format!(
                    "hub {}, a prefix per region (pseudonymised)",
                    l.landing
                ));
                copies.push(format!(
                    "hub {}, a prefix per region (pseudonymised)",
                    l.standardised
                ));
                copies.push(format!(
                    "hub {}, a prefix per product (extracts)",
                    l.products
                ));
            }
            StorageMode::Federated => {
                copies.push(format!(
                    "hub {}, a prefix per product (extracts only)",
                    l.products
                ));
            }
        }
    }
    // Identifiable data may leave a region only through a pseudonymisation service: an
    // export without one (or without a purpose) would be such a flow.
    let identifiable_flows = resources
        .nodes
        .iter()
        .filter_map(|n| {
            let e = n.spec.export.as_ref()?;
            (e.pseudonymisation.name.is_empty() || e.domain.is_empty())
                .then(|| kube::ResourceExt::name_any(n))
        })
        .collect();

    // Compute, from the rendered workloads.
    let mut hub_res = (0.0, 0.0);
    let mut region_res = (0.0, 0.0);
    for o in crate::render::render(resources, &settings)? {
        let value = serde_json::to_value(&o.object)?;
        let (cpu, mem) = requests(&value, a);
        let regional = value["metadata"]["namespace"]
            .as_str()
            .is_some_and(|ns| ns.starts_with("region-"));
        let target = if regional {
            &mut region_res
        } else {
            &mut hub_res
        };
        target.0 += cpu;
        target.1 += mem;
    }

    // Storage, from the assumptions and the mode.
    let r = regions as f64;
    let region_storage = r * (a.standardised_gib_per_region + a.landing_gib_per_region);
    let products = r * a.standardised_gib_per_region * a.product_share;
    let hub_storage = match mode {
        StorageMode::Central => {
            r * (a.landing_gib_per_region + a.standardised_gib_per_region) + products
        }
        StorageMode::Federated => products,
    };

    let price = |site: &str| prices.sites.get(site);
    let cost_of = |site: &str, cpu: f64, mem: f64, gib: f64| {
        price(site).map_or(0.0, |p| {
            cpu * p.cpu_core_month + mem * p.memory_gib_month + gib * p.object_storage_gib_month
        })
    };
    let mut hub_cost = cost_of(&sites.0, hub_res.0, hub_res.1, hub_storage);
    let mut region_cost = cost_of(&sites.1, region_res.0, region_res.1, region_storage);
    // Fixed costs: a cluster and a key service per distinct site.
    if let Some(p) = price(&sites.0) {
        hub_cost += p.cluster_month + p.key_service_month;
    }
    if sites.1 != sites.0
        && let Some(p) = price(&sites.1)
    {
        region_cost += p.cluster_month + p.key_service_month;
    }

    let violations = crate::validate::evaluate(resources, &settings, None)?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Alternative {
        name: name.into(),
        storage_mode: mode,
        sites,
        assumptions,
        regions,
        nodes: resources.nodes.len(),
        copies,
        identifiable_flows,
        key_custodians: resources.nodes.len() + resources.hubs.len(),
        cpu: (hub_res.0, region_res.0),
        memory_gib: (hub_res.1, region_res.1),
        storage_gib: (hub_storage, region_storage),
        cost: (hub_cost, region_cost),
        violations,
    })
}

fn mode_name(m: StorageMode) -> &'static str {
    match m {
        StorageMode::Central => "central",
        StorageMode::Federated => "federated",
    }
}

/// `items` from manifests, each shown as written, joined by `separator`.
fn literal_joined(items: &[String], separator: &str) -> String {
    let shown: Vec<String> = items.iter().map(|i| literal(i)).collect();
    shown.join(separator)
}

/// The report as Markdown.
pub fn markdown(alternatives: &[Alternative], prices: &PriceTable) -> String {
    let mut md = String::from("# Realisation alternatives compared\n\n");
    // Every value that comes from a manifest (names, annotations, prefixes) goes in through
    // `literal`, so that it shows as written and is never markup.
    let header: Vec<String> = alternatives.iter().map(|a| literal(&a.name)).collect();
    let _ = writeln!(md, "| | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(alternatives.len()));
    let row = |md: &mut String, label: &str, f: &dyn Fn(&Alternative) -> String| {
        let cells: Vec<String> = alternatives.iter().map(f).collect();
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    };
    let money = |v: f64| format!("{:.0} {}", v, prices.currency);
    row(&mut md, "Storage mode", &|a| {
        mode_name(a.storage_mode).into()
    });
    row(&mut md, "Hub runs at", &|a| literal(&a.sites.0));
    row(&mut md, "Regional nodes run at", &|a| literal(&a.sites.1));
    row(&mut md, "Regions / nodes", &|a| {
        format!("{} / {}", a.regions, a.nodes)
    });
    row(&mut md, "Copies of patient-level data", &|a| {
        literal_joined(&a.copies, "; ")
    });
    row(&mut md, "Identifiable data leaving a region", &|a| {
        if a.identifiable_flows.is_empty() {
            "none".into()
        } else {
            literal_joined(&a.identifiable_flows, ", ")
        }
    });
    row(&mut md, "Key custodians (OpenBao namespaces)", &|a| {
        format!("{} ({} regional, 1 hub)", a.key_custodians, a.nodes)
    });
    row(&mut md, "CPU requested (hub + regions)", &|a| {
        format!("{:.2} + {:.2} cores", a.cpu.0, a.cpu.1)
    });
    row(&mut md, "Memory requested (hub + regions)", &|a| {
        format!("{:.1} + {:.1} GiB", a.memory_gib.0, a.memory_gib.1)
    });
    row(&mut md, "Object storage (hub + regions)", &|a| {
        format!("{:.0} + {:.0} GiB", a.storage_gib.0, a.storage_gib.1)
    });
    row(&mut md, "Estimated monthly cost (hub + regions)", &|a| {
        format!("{} + {}", money(a.cost.0), money(a.cost.1))
    });
    row(&mut md, "Estimated monthly cost, total", &|a| {
        money(a.cost.0 + a.cost.1)
    });
    if let Some(m) = &prices.measured {
        row(
            &mut md,
            "Measured flow: MB in hub / regions, copied to hub",
            &|a| {
                let b = match a.storage_mode {
                    StorageMode::Central => &m.central,
                    StorageMode::Federated => &m.federated,
                };
                let mb = |v: u64| v as f64 / 1e6;
                format!(
                    "{:.1} / {:.1}, {:.1}",
                    mb(b.stored_in_hub),
                    mb(b.stored_in_regions),
                    mb(b.copied_to_hub)
                )
            },
        );
    }
    row(&mut md, "Compliance", &|a| {
        if a.violations.is_empty() {
            "compliant".into()
        } else {
            format!("{} violations", a.violations.len())
        }
    });
    md.push_str("\n## Stated assumptions\n\n");
    for a in alternatives {
        let _ = writeln!(md, "**{}**\n", literal(&a.name));
        for (k, v) in &a.assumptions {
            let _ = writeln!(md, "- {}: {}", literal(k), literal(v));
        }
        for v in &a.violations {
            let _ = writeln!(md, "- violation: {}", literal(v));
        }
        md.push('\n');
    }
    let x = &prices.assumptions;
    let _ = writeln!(
        md,
        "## Price table assumptions\n\nPrices per site are in the price table file ({}). Volumes: {} GiB standardised and {} GiB landing per region; purpose-specific extracts {:.0}% of standardised; scheduled jobs run {} of {} hours a month. CPU and memory are averaged over the month.\n",
        prices.currency,
        x.standardised_gib_per_region,
        x.landing_gib_per_region,
        x.product_share * 100.0,
        x.job_hours_per_month,
        x.hours_per_month
    );
    if let Some(m) = &prices.measured {
        let _ = writeln!(
            md,
            "## Measured\n\nThe reference flow for {} synthetic patients over {} regions ran in {:.1} s on the machine that measured it (`cargo bench -p vardhub --bench flow`). The bytes above are that run's, per storage mode, beside the price table's volume assumptions.\n",
            m.patients, m.regions, m.whole_flow_seconds
        );
    }
    md
}

fn text(x: f64, y: f64, content: &str, size: u32) -> Text {
    Text::new(content)
        .set("x", x)
        .set("y", y)
        .set("font-family", "sans-serif")
        .set("font-size", size)
        .set("text-anchor", "middle")
}

fn boxed(x: f64, y: f64, w: f64, h: f64, fill: &str) -> Rectangle {
    Rectangle::new()
        .set("x", x)
        .set("y", y)
        .set("width", w)
        .set("height", h)
        .set("rx", 8)
        .set("fill", fill)
        .set("stroke", "#333")
}

fn arrow(x1: f64, y1: f64, x2: f64, y2: f64) -> Line {
    Line::new()
        .set("x1", x1)
        .set("y1", y1)
        .set("x2", x2)
        .set("y2", y2)
        .set("stroke", "#333")
        .set("stroke-width", 2)
        .set("marker-end", "url(#arrow)")
}

/// The data flow of one alternative as an SVG diagram: regions → pseudonymisation → hub
/// zones, with where patient-level data rests.
pub fn diagram(a: &Alternative) -> Document {
    let marker = Marker::new()
        .set("id", "arrow")
        .set("markerWidth", 10)
        .set("markerHeight", 10)
        .set("refX", 9)
        .set("refY", 3)
        .set("orient", "auto")
        .add(
            SvgPath::new()
                .set("d", "M0,0 L0,6 L9,3 z")
                .set("fill", "#333"),
        );
    let central = a.storage_mode == StorageMode::Central;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, 640, 200))
        .set("width", 640)
        .set("height", 200)
        .add(Definitions::new().add(marker))
        .add(text(
            320.0,
            20.0,
            &format!("{}: {} mode", a.name, mode_name(a.storage_mode)),
            15,
        ))
        .add(boxed(10.0, 50.0, 170.0, 110.0, "#e8f1fb"))
        .add(text(
            95.0,
            80.0,
            &format!("{} regions, {} nodes", a.regions, a.nodes),
            13,
        ))
        .add(text(95.0, 100.0, &format!("at: {}", a.sites.1), 12))
        .add(text(95.0, 120.0, "identifiable data stays", 12))
        .add(text(95.0, 140.0, "region keys: own namespace", 11))
        .add(boxed(235.0, 75.0, 150.0, 60.0, "#fdf3d8"))
        .add(text(310.0, 100.0, "pseudonymisation", 13))
        .add(text(310.0, 118.0, "per purpose", 12))
        .add(arrow(180.0, 105.0, 233.0, 105.0))
        .add(boxed(440.0, 50.0, 190.0, 110.0, "#e6f4e6"))
        .add(text(535.0, 72.0, &format!("hub at: {}", a.sites.0), 13))
        .add(arrow(385.0, 105.0, 438.0, 105.0));
    let zones: &[&str] = if central {
        &[
            "landing (per region)",
            "standardised (per region)",
            "purpose-specific",
        ]
    } else {
        &[
            "purpose-specific extracts",
            "(regional data stays",
            "in the regions)",
        ]
    };
    for (i, z) in zones.iter().enumerate() {
        doc = doc.add(text(535.0, 97.0 + 20.0 * i as f64, z, 12));
    }
    doc.add(text(
        320.0,
        190.0,
        &format!(
            "{} copies of patient-level data per region; identifiable flows out: {}",
            a.copies.len(),
            a.identifiable_flows.len()
        ),
        12,
    ))
}

/// The report as a self-contained HTML page: the Markdown rendered, and a diagram per
/// alternative.
pub fn html(alternatives: &[Alternative], prices: &PriceTable) -> String {
    let md = markdown(alternatives, prices);
    // Nothing taken from a manifest is markup: `markdown` put it in as literal text, and
    // `markup::html` passes no raw HTML, image or script link through in any case.
    let body = crate::markup::html(&md);
    let diagrams: String = alternatives
        .iter()
        .map(|a| diagram(a).to_string())
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vardhub: realisation alternatives</title>\
<style>body{{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.3rem .5rem;vertical-align:top}}svg{{display:block;margin:1rem 0}}</style>\
</head><body>{body}<h2>Data flow</h2>{diagrams}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> PriceTable {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments/prices.yaml");
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("prices")).expect("parse")
    }

    fn local() -> Resources {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments/local");
        crate::render::load(&dir).expect("load")
    }

    #[test]
    fn measured_figures_stand_beside_the_assumptions_per_storage_mode() {
        let mut p = prices();
        p.measured = Some(
            serde_json::from_value(serde_json::json!({
                "patients": 1000000, "regions": 3, "wholeFlowSeconds": 10.5, "steps": {},
                "central": {"storedInRegions": 117000000, "storedInHub": 187300000, "copiedToHub": 92200000},
                "federated": {"storedInRegions": 209200000, "storedInHub": 2900000, "copiedToHub": 2900000},
            }))
            .expect("the bench's JSON"),
        );
        let a = analyse("local", &local(), &p).expect("analyse");
        let report = markdown(&[a], &p);
        assert!(
            report.contains(
                "| Measured flow: MB in hub / regions, copied to hub | 187.3 / 117.0, 92.2 |"
            ),
            "{report}"
        );
        assert!(report.contains("1000000 synthetic patients over 3 regions ran in 10.5 s"));
    }

    #[test]
    fn figures_are_computed_from_the_manifests() {
        let mut resources = local();
        let p = prices();
        let before = analyse("local", &resources, &p).expect("analyse");
        assert_eq!(before.regions, 7);
        assert_eq!(before.identifiable_flows, Vec::<String>::new());
        assert!(before.cpu.1 > 0.0, "the regions' jobs request CPU");
        // A pseudonymisation service with replicas: the hub's CPU follows the replica count.
        let svc = |replicas: i32| {
            let mut s = crate::api::PseudonymisationService::new(
                "pseudonymisation",
                serde_json::from_value(serde_json::json!({
                    "replicas": replicas, "domains": [{"name": "waiting-times"}]}))
                .expect("spec"),
            );
            s.metadata.namespace = Some("hub-national".into());
            s
        };
        resources.pseudonymisation = vec![svc(2)];
        let two = analyse("local", &resources, &p).expect("analyse");
        resources.pseudonymisation = vec![svc(3)];
        let three = analyse("local", &resources, &p).expect("analyse");
        assert!(three.cpu.0 > two.cpu.0 && two.cpu.0 > before.cpu.0);
        let report = markdown(&[two.clone(), three.clone()], &p);
        assert!(report.contains(&format!("{:.2} + ", two.cpu.0)));
        assert!(report.contains(&format!("{:.2} + ", three.cpu.0)));
    }

    #[test]
    fn html_escapes_what_comes_from_a_manifest() {
        let mut resources = local();
        for hub in &mut resources.hubs {
            hub.metadata.annotations.get_or_insert_default().insert(
                "vardhub.io/assumption-eu-region".into(),
                "<script>alert(1)</script><img src=x onerror=alert(2)>".into(),
            );
        }
        let a = analyse("local", &resources, &prices()).expect("analyse");
        let page = html(&[a], &prices());
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "markup from a manifest reached the page"
        );
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "shown as text"
        );
    }

    /// Markdown in a manifest's annotation (a script link, an image that would be fetched
    /// from elsewhere, emphasis, a table's cell separator) is shown as written, not rendered.
    #[test]
    fn html_shows_markdown_from_a_manifest_as_written() {
        let mut resources = local();
        let written = "[open](javascript:alert(1)) ![t](https://example.org/t.png) **loud** | cell";
        for hub in &mut resources.hubs {
            let annotations = hub.metadata.annotations.get_or_insert_default();
            annotations.insert("vardhub.io/assumption-note".into(), written.into());
            annotations.insert(SITE_HUB.into(), written.into());
        }
        let a = analyse("local", &resources, &prices()).expect("analyse");
        let page = html(&[a], &prices());
        for made in ["<a ", "<img", "<strong>loud"] {
            assert!(!page.contains(made), "{made} reached the page: {page}");
        }
        assert_eq!(
            page.matches(written).count(),
            3,
            "the annotations are shown as written: in the table, the assumptions and the diagram"
        );
        assert!(
            !page.contains("&lt;br&gt;"),
            "the copies are separated, not by markup shown as text"
        );
    }

    #[test]
    fn html_is_self_contained_with_a_diagram() {
        let a = analyse("local", &local(), &prices()).expect("analyse");
        let page = html(&[a], &prices());
        assert!(page.contains("<svg") && page.contains("<table>"));
        assert!(!page.contains("src=\"http"), "no external resources");
    }
}
