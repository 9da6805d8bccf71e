//! The use case's report: the indicators of the hip fracture care flow (use case D) per
//! region, as one self-contained HTML page with its charts. Pure.
//!
//! Indicators, over admissions with a hip fracture diagnosis:
//! - the share operated within 24 hours of admission, and within 36 hours;
//! - the share who died within 30 days of admission.
//!
//! A region with fewer admissions than the suppression threshold shows no figures.

use std::collections::BTreeMap;

use serde::Serialize;
use svg::Document;
use svg::node::element::{Rectangle, Text};

use super::publish::HipFracture;

/// One region's indicators.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicators {
    /// County code.
    pub region: String,
    /// Hip fracture admissions.
    pub admissions: u64,
    /// Operated within 24 hours (count).
    pub within_24h: u64,
    /// Operated within 36 hours (count).
    pub within_36h: u64,
    /// Dead within 30 days (count).
    pub died_30d: u64,
    /// Whether the region counts fewer admissions than the threshold.
    pub suppressed: bool,
}

impl Indicators {
    /// A count as a share of admissions.
    pub fn share(&self, count: u64) -> f64 {
        if self.admissions == 0 {
            0.0
        } else {
            count as f64 / self.admissions as f64
        }
    }
}

/// The indicators of each region in `rows`.
pub fn indicators(rows: &[HipFracture], threshold: u64) -> Vec<Indicators> {
    let mut by_region: BTreeMap<&str, Indicators> = BTreeMap::new();
    for r in rows {
        let i = by_region.entry(&r.region).or_insert_with(|| Indicators {
            region: r.region.clone(),
            admissions: 0,
            within_24h: 0,
            within_36h: 0,
            died_30d: 0,
            suppressed: false,
        });
        i.admissions += 1;
        let hours = r.hours_to_surgery.unwrap_or(f64::INFINITY);
        i.within_24h += u64::from(hours <= 24.0);
        i.within_36h += u64::from(hours <= 36.0);
        i.died_30d += u64::from(r.died_within_30_days);
    }
    by_region
        .into_values()
        .map(|mut i| {
            i.suppressed = i.admissions < threshold;
            i
        })
        .collect()
}

fn chart(title: &str, values: &[(String, Option<f64>)]) -> Document {
    let (bar, gap, left, top) = (28.0, 10.0, 60.0, 30.0);
    let width = 480.0;
    let height = top + values.len() as f64 * (bar + gap) + 10.0;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, width, height))
        .set("width", width)
        .set("height", height)
        .set("role", "img")
        .set("aria-label", title)
        .add(
            Text::new(title)
                .set("x", 0)
                .set("y", 18)
                .set("font-size", 14),
        );
    for (n, (label, value)) in values.iter().enumerate() {
        let y = top + n as f64 * (bar + gap);
        doc = doc.add(
            Text::new(label.as_str())
                .set("x", 0)
                .set("y", y + bar * 0.7)
                .set("font-size", 12),
        );
        let text = match value {
            Some(v) => {
                doc = doc.add(
                    Rectangle::new()
                        .set("x", left)
                        .set("y", y)
                        .set("width", (width - left - 70.0) * v.clamp(0.0, 1.0))
                        .set("height", bar)
                        .set("fill", "#3a6ea5"),
                );
                format!("{:.1} %", v * 100.0)
            }
            None => "suppressed".to_owned(),
        };
        doc = doc.add(
            Text::new(text)
                .set("x", width - 65.0)
                .set("y", y + bar * 0.7)
                .set("font-size", 12),
        );
    }
    doc
}

/// The report as a self-contained HTML page.
pub fn html(product: &str, indicators: &[Indicators], threshold: u64) -> String {
    let mut md = format!(
        "# Hip fracture care flow: {product}\n\nAdmissions with a hip fracture diagnosis \
         (ICD-10-SE S72.0–S72.2) per region. Regions with fewer than {threshold} admissions \
         are suppressed.\n\n| Region | Admissions | Operated ≤ 24 h | Operated ≤ 36 h | \
         Died ≤ 30 days |\n|---|---:|---:|---:|---:|\n"
    );
    for i in indicators {
        if i.suppressed {
            md.push_str(&format!("| {} | < {threshold} | – | – | – |\n", i.region));
        } else {
            md.push_str(&format!(
                "| {} | {} | {:.1} % | {:.1} % | {:.1} % |\n",
                i.region,
                i.admissions,
                i.share(i.within_24h) * 100.0,
                i.share(i.within_36h) * 100.0,
                i.share(i.died_30d) * 100.0
            ));
        }
    }
    let body = crate::markup::html(&md);
    let series = |f: &dyn Fn(&Indicators) -> u64| -> Vec<(String, Option<f64>)> {
        indicators
            .iter()
            .map(|i| (i.region.clone(), (!i.suppressed).then(|| i.share(f(i)))))
            .collect()
    };
    let charts = [
        chart("Operated within 24 hours", &series(&|i| i.within_24h)),
        chart("Operated within 36 hours", &series(&|i| i.within_36h)),
        chart("Died within 30 days", &series(&|i| i.died_30d)),
    ]
    .map(|c| c.to_string())
    .join("\n");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vardhub: hip fracture report</title>\
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.3rem .5rem}}svg{{display:block;margin:1rem 0}}</style>\
</head><body>{body}{charts}</body></html>\n"
    )
}
