//! Catalogue rendering at scale, printed as figures (not asserted): 10,000 datasets, made by
//! repeating the 20 datasets of `environments/local` under new names.
//!
//! Figures: building the catalogue (sort and digest), one page of 100, the whole catalogue as
//! a graph, each serialisation of it, the variable list, and peak memory.
//!
//! `cargo bench -p vardhub --bench catalog` (needs `kubectl` on the PATH only if the
//! environment's kustomization transforms, which `environments/local` does not).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use vardhub::catalog::format::{Format, serialize};
use vardhub::catalog::{Catalogue, Entry};

const DATASETS: usize = 10_000;

fn rss_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    println!(
        "{what:<44} {:>9.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    out
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let resources = vardhub::render::load(&root.join("environments/local"))?;
    let local = vardhub::catalog::offline(&resources, None)?;
    let before = rss_kib("VmRSS:");
    let entries: Vec<Entry> = (0..DATASETS)
        .map(|i| {
            // Each its own dataset, as each is in the operator's watch.
            let e = &local.datasets[i % local.datasets.len()];
            let mut d = e.dataset().clone();
            d.metadata.name = Some(format!("{}-{i:05}", e.name));
            Entry::new(Arc::new(d), e.distributions.clone())
        })
        .collect();
    let mut spec = local.spec.clone();
    spec.page_size = 100;
    println!("catalogue of {DATASETS} datasets");
    let catalogue = timed("build (sort)", || {
        Catalogue::new(local.namespace.clone(), spec, entries, Vec::new())
    });
    let digest = timed("digest (SHA-256 of the content)", || catalogue.digest());
    let page = timed("render one page of 100 datasets", || catalogue.page(50));
    println!(
        "{:<44} {:>9} triples",
        "  page size",
        page.map(|p| p.len()).unwrap_or(0)
    );
    let served = timed("render one page in Turtle (as served)", || {
        catalogue
            .page(50)
            .map(|p| serialize(&p, Format::Turtle).map(|b| b.len()))
    });
    println!(
        "{:<44} {:>9.1} KiB",
        "  output",
        served.transpose()?.unwrap_or(0) as f64 / 1024.0
    );
    let count = timed("count the triples of every page (status)", || {
        catalogue.triples_served()
    });
    println!("{:<44} {:>9} triples", "  served", count);
    println!("peak memory so far: {}", mib(rss_kib("VmHWM:")));
    let all = timed("render the whole catalogue as a graph", || catalogue.all());
    println!("{:<44} {:>9} triples", "  graph size", all.len());
    for format in Format::ALL {
        let bytes = timed(
            &format!("serialise the whole catalogue: {}", format.media_type()),
            || serialize(&all, format),
        )?;
        println!(
            "{:<44} {:>9.1} MiB",
            "  output",
            bytes.len() as f64 / 1048576.0
        );
    }
    let csv = timed("variable list (CSV)", || catalogue.variables_csv())?;
    println!(
        "{:<44} {:>9} rows",
        "  rows",
        csv.iter().filter(|b| **b == b'\n').count() - 1
    );
    println!("digest {digest}");
    println!(
        "memory: {} resident before the datasets, {} now, peak {}",
        mib(before),
        mib(rss_kib("VmRSS:")),
        mib(rss_kib("VmHWM:"))
    );
    Ok(())
}
