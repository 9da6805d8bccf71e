//! Swedish personal identity numbers (*personnummer*), coordination numbers
//! (*samordningsnummer*) and opaque local identifiers.
//!
//! Accepted written forms of a personal identity or coordination number: `YYYYMMDDNNNC`,
//! `YYYYMMDD-NNNC`, `YYMMDDNNNC`, `YYMMDD-NNNC` and `YYMMDD+NNNC` (`+` marks a person aged 100
//! or more). Every form is normalised to twelve digits, so that the same person gets the same
//! pseudonym whatever form a source system wrote. Errors never contain the input.

use std::fmt;

/// What kind of identifier a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Personal identity number.
    Personnummer,
    /// Coordination number (day of birth + 60).
    Samordningsnummer,
    /// An opaque identifier of a local system.
    Local,
}

/// A validated identifier in its canonical form. Its `Debug` and `Display` never show the
/// value.
#[derive(Clone, PartialEq, Eq)]
pub struct Identifier {
    kind: Kind,
    canonical: String,
}

impl Identifier {
    /// The kind of identifier.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The canonical form (twelve digits for personal identity and coordination numbers).
    /// Only the pseudonymiser should read it.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The canonical form, taken out of the identifier without a copy.
    pub fn into_canonical(self) -> String {
        self.canonical
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({:?}, <redacted>)", self.kind)
    }
}

/// Why a value is not a valid identifier. Carries no part of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Empty after trimming.
    #[error("empty identifier")]
    Empty,
    /// Not one of the accepted written forms.
    #[error("not a personal identity number in an accepted form (YYYYMMDD-NNNC, YYMMDD-NNNC, …)")]
    Format,
    /// The date part is not a real date (after the coordination-number offset).
    #[error("the date part is not a valid date")]
    Date,
    /// The check digit does not match (Luhn).
    #[error("the check digit is wrong")]
    CheckDigit,
    /// A local identifier longer than 256 bytes or with control characters.
    #[error("a local identifier must be 1–256 printable characters")]
    Local,
}

/// Parses a personal identity or coordination number. `reference_year` resolves the century of
/// ten-digit forms: the most recent year not after it (minus 100 with `+`).
pub fn parse_personal(input: &str, reference_year: i32) -> Result<Identifier, Invalid> {
    let (kind, digits) = canonical_personal(input, reference_year)?;
    let canonical = digits.iter().map(|&d| char::from(d)).collect();
    Ok(Identifier { kind, canonical })
}

/// [`parse_personal`] without an allocation: the kind and the canonical form as twelve ASCII
/// digits, for the service's bulk paths.
pub fn canonical_personal(input: &str, reference_year: i32) -> Result<(Kind, [u8; 12]), Invalid> {
    let whole = input.as_bytes();
    // White space around a number is rare: the input is trimmed only when an end is not a
    // digit.
    let s = match (whole.first(), whole.last()) {
        (Some(first), Some(last)) if first.is_ascii_digit() && last.is_ascii_digit() => whole,
        _ => input.trim().as_bytes(),
    };
    // The written forms by length: ten or twelve digits, or either with a separator before
    // the last four.
    let (century, separator) = match s.len() {
        0 => return Err(Invalid::Empty),
        10 => (false, None),
        12 => (true, None),
        11 => (false, Some(s[6])),
        13 => (true, Some(s[8])),
        _ => return Err(Invalid::Format),
    };
    let plus = match separator {
        None | Some(b'-') => false,
        Some(b'+') if !century => true,
        _ => return Err(Invalid::Format),
    };
    // The digits into a fixed buffer, every byte checked with no branch per digit: the date
    // part (YYYYMMDD or YYMMDD), then the last four.
    let head = if century { 8 } else { 6 };
    let mut digits = [0u8; 12];
    let mut not_digit = false;
    for (slot, &c) in digits
        .iter_mut()
        .zip(s[..head].iter().chain(&s[s.len() - 4..]))
    {
        let d = c.wrapping_sub(b'0');
        not_digit |= d > 9;
        *slot = d;
    }
    if not_digit {
        return Err(Invalid::Format);
    }
    // `rest` is where MMDDNNNC starts.
    let (year, rest) = if century {
        (
            (two_digits(&digits[..2]) * 100 + two_digits(&digits[2..4])) as i32,
            4,
        )
    } else {
        let yy = two_digits(&digits[..2]) as i32;
        let year = reference_year - (reference_year - yy).rem_euclid(100);
        (if plus { year - 100 } else { year }, 2)
    };
    let rest = &digits[rest..rest + 8];
    let (month, day) = (two_digits(&rest[..2]), two_digits(&rest[2..4]));
    let (kind, real_day) = if day > 60 {
        (Kind::Samordningsnummer, day - 60)
    } else {
        (Kind::Personnummer, day)
    };
    if !valid_date(year, month, real_day) {
        return Err(Invalid::Date);
    }
    // The check digit covers the ten-digit form YYMMDDNNN.
    let yy = year.rem_euclid(100) as u8;
    let covered = [
        yy / 10,
        yy % 10,
        rest[0],
        rest[1],
        rest[2],
        rest[3],
        rest[4],
        rest[5],
        rest[6],
    ];
    if rest[7] != luhn(covered) {
        return Err(Invalid::CheckDigit);
    }
    let year = year.clamp(0, 9999) as u16;
    let mut canonical = [b'0'; 12];
    for (slot, d) in canonical.iter_mut().zip(
        [year / 1000, year / 100 % 10, year / 10 % 10, year % 10]
            .map(|d| d as u8)
            .iter()
            .chain(rest),
    ) {
        *slot += d;
    }
    Ok((kind, canonical))
}

/// The value of two decimal digits.
fn two_digits(d: &[u8]) -> u32 {
    u32::from(d[0]) * 10 + u32::from(d[1])
}

/// Parses an opaque local identifier: 1–256 bytes, no control characters. It is used as given
/// (after trimming surrounding white space).
pub fn parse_local(input: &str) -> Result<Identifier, Invalid> {
    Ok(Identifier {
        kind: Kind::Local,
        canonical: canonical_local(input)?.to_string(),
    })
}

/// [`parse_local`] without an allocation: the canonical form borrowed from the input.
pub fn canonical_local(input: &str) -> Result<&str, Invalid> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Invalid::Empty);
    }
    if s.len() > 256 || s.chars().any(char::is_control) {
        return Err(Invalid::Local);
    }
    Ok(s)
}

fn valid_date(year: i32, month: u32, day: u32) -> bool {
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// The Luhn check digit of a string of digits (weights 2, 1, 2, … from the left, as for
/// Swedish personal identity numbers).
pub fn luhn_check_digit(digits: &str) -> u8 {
    luhn(digits.bytes().map(|b| b.wrapping_sub(b'0')))
}

/// The Luhn check digit of digit values (0–9; anything greater counts as 9), from a table of
/// the doubled digits' sums.
fn luhn(digits: impl IntoIterator<Item = u8>) -> u8 {
    /// The digit sum of twice each digit.
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let sum: u32 = digits
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let d = usize::from(d.min(9));
            if i % 2 == 0 { DOUBLED[d] } else { d as u32 }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test numbers from the Swedish Tax Agency's published test series are not used here; the
    // numbers below are made up and only satisfy the check digit.
    fn with_check(prefix9: &str) -> String {
        format!("{prefix9}{}", luhn_check_digit(prefix9))
    }

    #[test]
    fn every_written_form_gives_the_same_canonical_number() {
        let ten = with_check("811218987");
        let forms = [
            format!("19{ten}"),
            format!("19{}-{}", &ten[..6], &ten[6..]),
            ten.clone(),
            format!("{}-{}", &ten[..6], &ten[6..]),
            format!("  {ten}  "),
        ];
        for form in &forms {
            let id = parse_personal(form, 2026).expect("valid");
            assert_eq!(id.canonical(), format!("19{ten}"));
            assert_eq!(id.kind(), Kind::Personnummer);
        }
    }

    #[test]
    fn plus_sign_means_a_hundred_years_older() {
        let ten = with_check("200101123");
        let dash = parse_personal(&format!("{}-{}", &ten[..6], &ten[6..]), 2026).expect("valid");
        let plus = parse_personal(&format!("{}+{}", &ten[..6], &ten[6..]), 2026).expect("valid");
        assert_eq!(&dash.canonical()[..4], "2020");
        assert_eq!(&plus.canonical()[..4], "1920");
    }

    #[test]
    fn coordination_numbers_add_sixty_to_the_day() {
        let ten = with_check("701263234");
        let id = parse_personal(&ten, 2026).expect("valid");
        assert_eq!(id.kind(), Kind::Samordningsnummer);
    }

    #[test]
    fn wrong_check_digit_date_and_format_are_refused() {
        let ten = with_check("811218987");
        let wrong = format!("{}{}", &ten[..9], (ten.as_bytes()[9] - b'0' + 1) % 10);
        assert_eq!(parse_personal(&wrong, 2026), Err(Invalid::CheckDigit));
        assert_eq!(
            parse_personal(&with_check("811318987"), 2026),
            Err(Invalid::Date)
        );
        assert_eq!(
            parse_personal(&with_check("810230987"), 2026),
            Err(Invalid::Date)
        );
        assert_eq!(parse_personal("81121898", 2026), Err(Invalid::Format));
        assert_eq!(parse_personal("8112-18-9876", 2026), Err(Invalid::Format));
        assert_eq!(parse_personal("abc", 2026), Err(Invalid::Format));
        assert_eq!(parse_personal(" ", 2026), Err(Invalid::Empty));
    }

    #[test]
    fn a_separator_is_taken_only_before_the_last_four_digits_and_plus_only_with_ten() {
        let ten = with_check("811218987");
        let twelve = format!("19{ten}");
        for refused in [
            format!("{}-{}", &ten[..5], &ten[5..]),
            format!("{}-{}", &twelve[..7], &twelve[7..]),
            format!("{}+{}", &twelve[..8], &twelve[8..]),
            format!("{}/{}", &ten[..6], &ten[6..]),
            format!("{}-{}", &ten[..6], &ten[7..]),
            format!("{ten}0"),
            format!("{twelve}0"),
            format!("1{twelve}"),
            format!("{}--{}", &ten[..6], &ten[6..]),
        ] {
            assert_eq!(
                parse_personal(&refused, 2026),
                Err(Invalid::Format),
                "{refused}"
            );
        }
        // White space of any kind around the number is trimmed; inside it is refused.
        let spaced = format!("\u{2003}{ten}\t");
        assert!(parse_personal(&spaced, 2026).is_ok());
        let inside = format!("{} {}", &ten[..6], &ten[6..]);
        assert_eq!(parse_personal(&inside, 2026), Err(Invalid::Format));
    }

    #[test]
    fn leap_days() {
        assert!(parse_personal(&format!("20{}", with_check("000229123")), 2026).is_ok());
        assert_eq!(
            parse_personal(&format!("19{}", with_check("000229123")), 2026),
            Err(Invalid::Date)
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_value() {
        let ten = with_check("811218987");
        let id = parse_personal(&ten, 2026).expect("valid");
        assert!(!format!("{id:?}").contains(&ten[..6]));
        let err = parse_personal(&format!("{}0", &ten[..9]), 2026)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains(&ten[..6]));
    }

    /// The accepted forms read as the module's documentation states them, with strings and
    /// chrono's calendar: the reference the fast reader is compared with.
    fn reference(input: &str, year_now: i32) -> Result<(Kind, String), Invalid> {
        use chrono::NaiveDate;
        let s = input.trim();
        if s.is_empty() {
            return Err(Invalid::Empty);
        }
        let (digits, plus) = match (s.len(), s.chars().nth(s.len().saturating_sub(5))) {
            (10 | 12, _) => (s.to_string(), false),
            (11, Some(c @ ('-' | '+'))) => (s.replacen(c, "", 1), c == '+'),
            (13, Some('-')) => (s.replacen('-', "", 1), false),
            _ => return Err(Invalid::Format),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::Format);
        }
        let number = |part: &str| part.parse::<i32>().map_err(|_| Invalid::Format);
        let ten = &digits[digits.len() - 10..];
        let year = if digits.len() == 12 {
            number(&digits[..4])?
        } else {
            // The latest year ending in these two digits that is not after this year.
            let latest = (year_now - 99..=year_now)
                .rev()
                .find(|y| y.rem_euclid(100) == number(&ten[..2]).unwrap_or(-1))
                .ok_or(Invalid::Format)?;
            if plus { latest - 100 } else { latest }
        };
        let (month, day) = (number(&ten[2..4])?, number(&ten[4..6])?);
        let (kind, day) = if day > 60 {
            (Kind::Samordningsnummer, day - 60)
        } else {
            (Kind::Personnummer, day)
        };
        NaiveDate::from_ymd_opt(year, month as u32, day as u32).ok_or(Invalid::Date)?;
        // Luhn as usually written, not the module's table: each digit from the left times 2,
        // 1, 2, …, the products' digits summed, the check digit what brings the sum to a ten.
        let covered = format!("{:02}{}", year.rem_euclid(100), &ten[2..9]);
        let sum: u32 = covered
            .chars()
            .filter_map(|c| c.to_digit(10))
            .zip([2, 1].into_iter().cycle())
            .map(|(d, weight)| (d * weight).to_string())
            .flat_map(|product| {
                product
                    .chars()
                    .filter_map(|c| c.to_digit(10))
                    .collect::<Vec<_>>()
            })
            .sum();
        if (10 - sum % 10) % 10 != u32::from(ten.as_bytes()[9] - b'0') {
            return Err(Invalid::CheckDigit);
        }
        Ok((kind, format!("{year:04}{}", &ten[2..])))
    }

    #[test]
    fn the_fast_reader_agrees_with_the_reference_on_every_kind_of_input() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261207);
        let alphabet = b"0123456789-+ xA\t";
        let mut valid = 0;
        for round in 0..200_000 {
            let input = if round % 2 == 0 {
                // A well-formed number in a random form, sometimes with one byte changed.
                let nine = format!(
                    "{:02}{:02}{:02}{:03}",
                    rng.random_range(0..100),
                    rng.random_range(0..14),
                    rng.random_range(0..93),
                    rng.random_range(0..1000)
                );
                let ten = format!("{nine}{}", luhn_check_digit(&nine));
                let century = if rng.random_bool(0.5) { "19" } else { "20" };
                let mut form = match rng.random_range(0..5) {
                    0 => ten.clone(),
                    1 => format!("{}-{}", &ten[..6], &ten[6..]),
                    2 => format!("{}+{}", &ten[..6], &ten[6..]),
                    3 => format!("{century}{ten}"),
                    _ => format!("{century}{}-{}", &ten[..6], &ten[6..]),
                }
                .into_bytes();
                if rng.random_bool(0.2) {
                    let at = rng.random_range(0..form.len());
                    form[at] = alphabet[rng.random_range(0..alphabet.len())];
                }
                String::from_utf8(form).unwrap_or_default()
            } else {
                // Any short string of digits, separators, spaces and letters.
                let len = rng.random_range(0..15);
                (0..len)
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect()
            };
            let fast = canonical_personal(&input, 2026)
                .map(|(kind, c)| (kind, String::from_utf8_lossy(&c).into_owned()));
            let expected = reference(&input, 2026);
            assert_eq!(fast, expected, "input #{round} of the seeded sequence");
            valid += usize::from(expected.is_ok());
        }
        // Both outcomes were exercised, not only refusals.
        assert!(valid > 20_000, "{valid} valid inputs");
    }

    #[test]
    fn local_identifiers() {
        assert_eq!(parse_local(" abc-123 ").expect("ok").canonical(), "abc-123");
        assert_eq!(parse_local(""), Err(Invalid::Empty));
        assert_eq!(parse_local("a\u{0}b"), Err(Invalid::Local));
        assert_eq!(parse_local(&"x".repeat(257)), Err(Invalid::Local));
    }
}
