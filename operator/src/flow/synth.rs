//! Synthetic source data in a region's own model, generated deterministically from a seed.
//!
//! The population is numbered `0..patients`. Person `i` lives in region `i mod n` of the `n`
//! regions asked for; one in a hundred also has a referral in the next region, so the same
//! person appears in two regions. Everything about person `i` comes from ChaCha8 stream `i`
//! of the seed, so a region's data does not depend on how many regions are generated
//! alongside it, and the same seed gives the same bytes on every machine.
//!
//! Content, for the year 2025:
//! - use case D (hip fracture): a quarter of people aged 65 or more have an admission with
//!   ICD-10-SE S72.0, S72.1 or S72.2; most are operated (KVÅ NFB29, NFB49, NFJ49, NFJ59)
//!   within hours, some after 36 hours, some not at all; some die within 30 days;
//! - use case B (waiting times): four in ten people have a referral to a specialty and a
//!   first outpatient visit some days later;
//! - defects, as real extracts have them, at `defects_per_mille`: a discharge before its
//!   admission, a malformed diagnosis code, a visit before its referral, an identity number
//!   with a wrong check digit. The hub's standardisation step quarantines them.
//!
//! ## Identity numbers, and why they cannot be taken for a real person's
//! Every person has a personal identity number (three in a hundred a coordination number,
//! day of birth + 60) that is valid in format and check digit, as the pipeline must see real
//! ones. Digits alone cannot tell a valid number from a real one, so the rule that keeps them
//! recognisably synthetic is this:
//! - person `i`'s number is `encode(perm(i))`, where `perm` is an affine bijection of the
//!   whole number space (birth dates 1930-01-01 to 2005-12-31 times birth numbers 001–999)
//!   fixed by the seed: no two people share a number, and anyone holding the seed can say
//!   whether a given number belongs to the synthetic population ([`Population::index_of`]);
//! - every file the generator writes says so in its name (`synthetic-…`) and metadata, and
//!   the environments' `Dataset`s call the data synthetic;
//! - none of it is ever derived from a register: there is no input but the seed.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::pseudonymisation::identifier::luhn_check_digit;

/// The year the synthetic events happen in.
pub const YEAR: i32 = 2025;
/// Hip fracture diagnoses (ICD-10-SE): femoral neck, pertrochanteric, subtrochanteric.
pub const HIP_FRACTURE_ICD: [&str; 3] = ["S72.0", "S72.1", "S72.2"];
/// Hip fracture operations (KVÅ, chapter NF: hip and thigh).
pub const HIP_FRACTURE_KVA: [&str; 4] = ["NFB29", "NFB49", "NFJ49", "NFJ59"];
/// Specialties referred to.
pub const SPECIALTIES: [&str; 5] = ["ortopedi", "kardiologi", "ogon", "hud", "psykiatri"];

/// Kind of care of a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vardform {
    /// Inpatient care.
    Slutenvard,
    /// Outpatient care.
    Oppenvard,
}

/// `patient.csv`: one row per person known to the region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// `YYYYMMDD-NNNC`.
    pub personnummer: String,
    /// `M` or `K`.
    pub kon: String,
    /// Date of death, if any.
    pub avliden: Option<NaiveDate>,
}

/// `vardkontakt.csv`: admissions and outpatient visits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kontakt {
    /// The region's contact number.
    pub kontakt_id: u64,
    /// The patient.
    pub personnummer: String,
    /// Inpatient or outpatient.
    pub vardform: Vardform,
    /// Start.
    pub inskrivning: NaiveDateTime,
    /// End.
    pub utskrivning: NaiveDateTime,
    /// Main diagnosis (ICD-10-SE), inpatient care only.
    pub huvuddiagnos: Option<String>,
    /// Date of the referral that this first visit answers.
    pub remissdatum: Option<NaiveDate>,
    /// Specialty referred to.
    pub specialitet: Option<String>,
}

/// `atgard.csv`: procedures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Atgard {
    /// The contact.
    pub kontakt_id: u64,
    /// KVÅ code.
    pub kva: String,
    /// When.
    pub tidpunkt: NaiveDateTime,
}

/// One region's extract in its own model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    /// `patient.csv`.
    pub patients: Vec<Patient>,
    /// `vardkontakt.csv`.
    pub kontakter: Vec<Kontakt>,
    /// `atgard.csv`.
    pub atgarder: Vec<Atgard>,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// The whole population, over all regions.
    pub patients: u64,
    /// County codes of the regions, in order.
    pub regions: Vec<String>,
    /// Defective records per thousand.
    pub defects_per_mille: u32,
}

const FIRST_BIRTH: (i32, u32, u32) = (1930, 1, 1);
const LAST_BIRTH: (i32, u32, u32) = (2005, 12, 31);

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The seed's bijection between person indices and identity numbers.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    days: u64,
    space: u64,
    a: u64,
    b: u64,
    a_inverse: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn inverse(a: u64, m: u64) -> u64 {
    // Extended Euclid over i128.
    let (mut t, mut new_t, mut r, mut new_r) = (0i128, 1i128, i128::from(m), i128::from(a));
    while new_r != 0 {
        let q = r / new_r;
        (t, new_t) = (new_t, t - q * new_t);
        (r, new_r) = (new_r, r - q * new_r);
    }
    (if t < 0 { t + i128::from(m) } else { t }) as u64
}

impl Population {
    /// The bijection of `seed`.
    pub fn new(seed: u64) -> Self {
        let first = date(FIRST_BIRTH.0, FIRST_BIRTH.1, FIRST_BIRTH.2);
        let last = date(LAST_BIRTH.0, LAST_BIRTH.1, LAST_BIRTH.2);
        let days = (last - first).num_days() as u64 + 1;
        let space = days * 999;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut a = rng.random_range(space / 3..space) | 1;
        while gcd(a, space) != 1 {
            a += 2;
        }
        let b = rng.random_range(0..space);
        Self {
            days,
            space,
            a,
            b,
            a_inverse: inverse(a, space),
        }
    }

    /// Birth date and birth number (1–999) of person `i`.
    pub fn identity(&self, i: u64) -> (NaiveDate, u32) {
        let p = ((u128::from(self.a) * u128::from(i % self.space) + u128::from(self.b))
            % u128::from(self.space)) as u64;
        let day = p % self.days;
        let serial = (p / self.days) as u32 + 1;
        let first = date(FIRST_BIRTH.0, FIRST_BIRTH.1, FIRST_BIRTH.2);
        (first + Duration::days(day as i64), serial)
    }

    /// The person a number belongs to, if it is one of this seed's.
    pub fn index_of(&self, number: &str) -> Option<u64> {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 12 || luhn_check_digit(&digits[2..11]) != digits.as_bytes()[11] - b'0' {
            return None;
        }
        let y: i32 = digits[0..4].parse().ok()?;
        let m: u32 = digits[4..6].parse().ok()?;
        let mut d: u32 = digits[6..8].parse().ok()?;
        if d > 60 {
            d -= 60;
        }
        let born = NaiveDate::from_ymd_opt(y, m, d)?;
        let serial: u64 = digits[8..11].parse().ok()?;
        let first = date(FIRST_BIRTH.0, FIRST_BIRTH.1, FIRST_BIRTH.2);
        let day = u64::try_from((born - first).num_days()).ok()?;
        if day >= self.days || serial == 0 {
            return None;
        }
        let p = (serial - 1) * self.days + day;
        let i = (u128::from(self.a_inverse) * u128::from((p + self.space - self.b) % self.space)
            % u128::from(self.space)) as u64;
        Some(i)
    }
}

/// `YYYYMMDD-NNNC` of a birth date and birth number; `coordination` adds 60 to the day.
pub fn identity_number(born: NaiveDate, serial: u32, coordination: bool) -> String {
    use chrono::Datelike as _;
    let day = born.day() + if coordination { 60 } else { 0 };
    let body = format!(
        "{:02}{:02}{:02}{serial:03}",
        born.year() % 100,
        born.month(),
        day
    );
    let check = luhn_check_digit(&body);
    format!(
        "{:04}{:02}{day:02}-{serial:03}{check}",
        born.year(),
        born.month()
    )
}

fn at(day: NaiveDate, minutes: i64) -> NaiveDateTime {
    day.and_time(NaiveTime::MIN) + Duration::minutes(minutes)
}

fn day_of_year(rng: &mut ChaCha8Rng) -> NaiveDate {
    date(YEAR, 1, 1) + Duration::days(rng.random_range(0..365))
}

struct Ids<'a> {
    next: &'a mut u64,
}

impl Ids<'_> {
    fn take(&mut self) -> u64 {
        *self.next += 1;
        *self.next
    }
}

fn rng_of(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// One region's extract: its residents and its visitors.
pub fn region(params: &Params, region: usize) -> Source {
    let n = params.regions.len().max(1) as u64;
    let population = Population::new(params.seed);
    let mut source = Source::default();
    let mut next_id = 0u64;
    let defect = |rng: &mut ChaCha8Rng| rng.random_range(0..1000) < params.defects_per_mille;
    for i in 0..params.patients {
        let home = i % n == region as u64;
        let visitor = i % 100 == 7 && (i + 1) % n == region as u64 && n > 1;
        if !home && !visitor {
            continue;
        }
        let mut rng = rng_of(params.seed, i);
        let (born, serial) = population.identity(i);
        let coordination = rng.random_range(0..100) < 3;
        let mut number = identity_number(born, serial, coordination);
        let kon = if serial % 2 == 1 { "M" } else { "K" };
        let age = YEAR - chrono::Datelike::year(&born);
        let mut ids = Ids { next: &mut next_id };
        if home {
            if defect(&mut rng) {
                // A transcription error: the check digit no longer matches.
                let last = number.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
                number.push(char::from_digit((last + 1) % 10, 10).unwrap_or('0'));
            }
            let mut avliden = None;
            if age >= 65 && rng.random_range(0..100) < 25 {
                avliden = hip_fracture(&mut rng, &mut source, &mut ids, &number, defect);
            }
            if avliden.is_none() && rng.random_range(0..1000) < 5 {
                avliden = Some(day_of_year(&mut rng));
            }
            if rng.random_range(0..100) < 40 {
                referral(&mut rng, &mut source, &mut ids, &number, defect);
            }
            source.patients.push(Patient {
                personnummer: number,
                kon: kon.into(),
                avliden,
            });
        } else {
            let mut rng = rng_of(params.seed, i | 1 << 62);
            referral(&mut rng, &mut source, &mut ids, &number, defect);
            source.patients.push(Patient {
                personnummer: number,
                kon: kon.into(),
                avliden: None,
            });
        }
    }
    source
}

fn hip_fracture(
    rng: &mut ChaCha8Rng,
    source: &mut Source,
    ids: &mut Ids<'_>,
    number: &str,
    defect: impl Fn(&mut ChaCha8Rng) -> bool,
) -> Option<NaiveDate> {
    let id = ids.take();
    let admitted = at(day_of_year(rng), rng.random_range(0..24 * 60));
    let stay = Duration::hours(rng.random_range(48..14 * 24));
    let mut discharged = admitted + stay;
    let mut diagnosis = HIP_FRACTURE_ICD[rng.random_range(0..HIP_FRACTURE_ICD.len())].to_owned();
    if defect(rng) {
        if rng.random_bool(0.5) {
            discharged = admitted - Duration::hours(5);
        } else {
            diagnosis = "S7X".into();
        }
    }
    let roll = rng.random_range(0..100);
    let delay_minutes = match roll {
        0..55 => Some(rng.random_range(60..24 * 60)),
        55..80 => Some(rng.random_range(24 * 60..36 * 60)),
        80..95 => Some(rng.random_range(36 * 60..96 * 60)),
        _ => None,
    };
    if let Some(m) = delay_minutes {
        source.atgarder.push(Atgard {
            kontakt_id: id,
            kva: HIP_FRACTURE_KVA[rng.random_range(0..HIP_FRACTURE_KVA.len())].into(),
            tidpunkt: admitted + Duration::minutes(m),
        });
    }
    source.kontakter.push(Kontakt {
        kontakt_id: id,
        personnummer: number.into(),
        vardform: Vardform::Slutenvard,
        inskrivning: admitted,
        utskrivning: discharged,
        huvuddiagnos: Some(diagnosis),
        remissdatum: None,
        specialitet: None,
    });
    let roll = rng.random_range(0..100);
    (roll < 9).then(|| admitted.date() + Duration::days(rng.random_range(1..30)))
}

fn referral(
    rng: &mut ChaCha8Rng,
    source: &mut Source,
    ids: &mut Ids<'_>,
    number: &str,
    defect: impl Fn(&mut ChaCha8Rng) -> bool,
) {
    let id = ids.take();
    let referred = day_of_year(rng);
    let wait = match rng.random_range(0..100) {
        0..60 => rng.random_range(1..60),
        60..85 => rng.random_range(60..120),
        _ => rng.random_range(120..300),
    };
    let mut visit = referred + Duration::days(wait);
    if defect(rng) {
        visit = referred - Duration::days(3);
    }
    let start = at(visit, rng.random_range(8 * 60..16 * 60));
    source.kontakter.push(Kontakt {
        kontakt_id: id,
        personnummer: number.into(),
        vardform: Vardform::Oppenvard,
        inskrivning: start,
        utskrivning: start + Duration::minutes(30),
        huvuddiagnos: None,
        remissdatum: Some(referred),
        specialitet: Some(SPECIALTIES[rng.random_range(0..SPECIALTIES.len())].into()),
    });
}

/// The extract as CSV files, keyed by file name.
pub fn to_csv(source: &Source) -> anyhow::Result<BTreeMap<&'static str, Vec<u8>>> {
    fn write<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.serialize(r)?;
        }
        Ok(w.into_inner()?)
    }
    Ok(BTreeMap::from([
        ("patient.csv", write(&source.patients)?),
        ("vardkontakt.csv", write(&source.kontakter)?),
        ("atgard.csv", write(&source.atgarder)?),
    ]))
}

/// Reads an extract from its CSV files, through `get(file name)`; a bad row names its file
/// and line.
pub fn from_csv(mut get: impl FnMut(&str) -> anyhow::Result<Vec<u8>>) -> anyhow::Result<Source> {
    fn read<T: for<'de> Deserialize<'de>>(name: &str, bytes: &[u8]) -> anyhow::Result<Vec<T>> {
        csv::Reader::from_reader(bytes)
            .deserialize()
            .enumerate()
            .map(|(n, r)| r.map_err(|e| anyhow::anyhow!("{name} row {}: {e}", n + 1)))
            .collect()
    }
    Ok(Source {
        patients: read("patient.csv", &get("patient.csv")?)?,
        kontakter: read("vardkontakt.csv", &get("vardkontakt.csv")?)?,
        atgarder: read("atgard.csv", &get("atgard.csv")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonymisation::identifier::{Kind, parse_personal};

    fn params() -> Params {
        Params {
            seed: 7,
            patients: 3000,
            regions: vec!["01".into(), "03".into(), "14".into()],
            defects_per_mille: 0,
        }
    }

    #[test]
    fn numbers_are_valid_unique_and_recognised_from_the_seed() {
        let population = Population::new(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000u64 {
            let (born, serial) = population.identity(i);
            for coordination in [false, true] {
                let number = identity_number(born, serial, coordination);
                let parsed = parse_personal(&number, YEAR).expect("valid");
                assert_eq!(
                    parsed.kind(),
                    if coordination {
                        Kind::Samordningsnummer
                    } else {
                        Kind::Personnummer
                    }
                );
                assert_eq!(population.index_of(&number), Some(i));
            }
            assert!(seen.insert((born, serial)), "person {i} repeats a number");
        }
        assert_eq!(Population::new(8).index_of("19450307-1234"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_extract_and_people_cross_regions() {
        let p = params();
        assert_eq!(region(&p, 1), region(&p, 1));
        let a: std::collections::HashSet<_> = region(&p, 0)
            .patients
            .into_iter()
            .map(|p| p.personnummer)
            .collect();
        let b: std::collections::HashSet<_> = region(&p, 1)
            .patients
            .into_iter()
            .map(|p| p.personnummer)
            .collect();
        assert!(a.intersection(&b).count() > 0, "no person in two regions");
    }

    #[test]
    fn csv_round_trips() {
        let source = region(&params(), 2);
        let files = to_csv(&source).expect("csv");
        let back = from_csv(|name| Ok(files[name].clone())).expect("read");
        assert_eq!(back, source);
    }
}
