//! The region's export: its data in the common model with every identifier replaced by the
//! pseudonym of one purpose, ready for the hub's landing zone (central mode) or the region's
//! export prefix (federated mode).
//!
//! - `person_source_value` becomes the purpose's pseudonym, from the hub's
//!   `PseudonymisationService` ([`Pseudonymiser::Service`]) or, in a benchmark, the same
//!   derivation in process ([`Pseudonymiser::Local`]);
//! - `person_id` becomes a number derived from that pseudonym, so that the same person from
//!   two regions is one person within a purpose and unrelated across purposes;
//! - the day of birth and the region's own record numbers (`visit_source_value`) are left
//!   out; the rows' own ids get the county code as a prefix, so regions never collide;
//! - a person whose number the service refuses keeps no pseudonym and a negative id: the hub
//!   quarantines the person and everything that refers to it.

use std::collections::HashMap;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::omop::Omop;
use crate::pseudonymisation::identifier::parse_personal;
use crate::pseudonymisation::pseudonym::LocalKey;

/// Identifiers sent to the service per request.
pub const REQUEST_ROWS: usize = 20_000;

/// Where pseudonyms come from.
pub enum Pseudonymiser {
    /// The in-process derivation of the service's `local` mode, with a key of one purpose.
    Local(LocalKey),
    /// The hub's `PseudonymisationService` at this base URL (`http://host:port`).
    Service {
        /// Base URL.
        url: String,
        /// The HTTP client.
        client: reqwest::Client,
        /// The file holding the caller's ServiceAccount token for the service, read before
        /// every request so that a renewed token is used.
        token_file: std::path::PathBuf,
    },
}

#[derive(Serialize)]
struct Request<'a> {
    kind: &'static str,
    identifiers: &'a [&'a str],
}

#[derive(Deserialize)]
struct Response {
    pseudonyms: Vec<Option<String>>,
}

impl Pseudonymiser {
    /// The pseudonyms of `identifiers` in `purpose`, in order; `None` for a refused row.
    pub async fn pseudonyms(
        &self,
        purpose: &str,
        identifiers: &[&str],
    ) -> Result<Vec<Option<String>>> {
        match self {
            Pseudonymiser::Local(key) => {
                let year = chrono::Datelike::year(&chrono::Utc::now());
                Ok(identifiers
                    .iter()
                    .map(|i| {
                        parse_personal(i, year)
                            .ok()
                            .map(|id| key.pseudonym(id.canonical().as_bytes()))
                    })
                    .collect())
            }
            Pseudonymiser::Service {
                url,
                client,
                token_file,
            } => {
                let endpoint = format!(
                    "{}/v1/domains/{purpose}/pseudonyms",
                    url.trim_end_matches('/')
                );
                let mut out = Vec::with_capacity(identifiers.len());
                for chunk in identifiers.chunks(REQUEST_ROWS) {
                    let token = tokio::fs::read_to_string(token_file)
                        .await
                        .with_context(|| {
                            format!("reading the service token at {}", token_file.display())
                        })?;
                    let response = client
                        .post(&endpoint)
                        .bearer_auth(token.trim())
                        .json(&Request {
                            kind: "personnummer",
                            identifiers: chunk,
                        })
                        .send()
                        .await
                        .with_context(|| {
                            format!("calling the pseudonymisation service at {endpoint}")
                        })?;
                    let status = response.status();
                    if !status.is_success() {
                        bail!(
                            "the pseudonymisation service answered {status} for purpose {purpose}"
                        );
                    }
                    let body: Response = response
                        .json()
                        .await
                        .context("reading the pseudonymisation service's answer")?;
                    if body.pseudonyms.len() != chunk.len() {
                        bail!(
                            "the pseudonymisation service answered {} rows for {}",
                            body.pseudonyms.len(),
                            chunk.len()
                        );
                    }
                    out.extend(body.pseudonyms);
                }
                Ok(out)
            }
        }
    }
}

/// The person number of the hub derived from a pseudonym: the first 63 bits of its tag.
pub fn person_id_of(pseudonym: &str) -> Option<i64> {
    let tag = pseudonym.rsplit(':').next()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(tag).ok()?;
    let first: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(first) >> 1) as i64 | 1)
}

/// Offsets a region's own row id by its county code.
pub fn global_id(county: u32, id: i64) -> i64 {
    i64::from(county) * 1_000_000_000_000 + id
}

/// `omop` as the hub receives it, given the pseudonyms of its persons in order. Pure.
pub fn pseudonymise(omop: &Omop, county: u32, pseudonyms: &[Option<String>]) -> Omop {
    let mut hub = omop.clone();
    let mut id_of: HashMap<i64, i64> = HashMap::with_capacity(omop.person.len());
    for (person, pseudonym) in hub.person.iter_mut().zip(pseudonyms) {
        let new_id = pseudonym
            .as_deref()
            .and_then(person_id_of)
            .unwrap_or(-global_id(county, person.person_id));
        id_of.insert(person.person_id, new_id);
        person.person_id = new_id;
        person.person_source_value = pseudonym.clone();
        person.day_of_birth = None;
    }
    let person = |id: i64| {
        id_of
            .get(&id)
            .copied()
            .unwrap_or(-global_id(county, id.abs()))
    };
    for v in &mut hub.visit_occurrence {
        v.person_id = person(v.person_id);
        v.visit_occurrence_id = global_id(county, v.visit_occurrence_id);
        v.visit_source_value = None;
    }
    for c in &mut hub.condition_occurrence {
        c.person_id = person(c.person_id);
        c.condition_occurrence_id = global_id(county, c.condition_occurrence_id);
        c.visit_occurrence_id = c.visit_occurrence_id.map(|v| global_id(county, v));
    }
    for p in &mut hub.procedure_occurrence {
        p.person_id = person(p.person_id);
        p.procedure_occurrence_id = global_id(county, p.procedure_occurrence_id);
        p.visit_occurrence_id = p.visit_occurrence_id.map(|v| global_id(county, v));
    }
    for d in &mut hub.death {
        d.person_id = person(d.person_id);
    }
    for o in &mut hub.observation {
        o.person_id = person(o.person_id);
        o.observation_id = global_id(county, o.observation_id);
        o.visit_occurrence_id = o.visit_occurrence_id.map(|v| global_id(county, v));
    }
    hub
}

/// Exports `omop` for `purpose`: asks for the pseudonyms, then [`pseudonymise`].
pub async fn export(
    omop: &Omop,
    county: u32,
    purpose: &str,
    pseudonymiser: &Pseudonymiser,
) -> Result<Omop> {
    let identifiers: Vec<&str> = omop
        .person
        .iter()
        .map(|p| p.person_source_value.as_deref().unwrap_or_default())
        .collect();
    let pseudonyms = pseudonymiser.pseudonyms(purpose, &identifiers).await?;
    Ok(pseudonymise(omop, county, &pseudonyms))
}
