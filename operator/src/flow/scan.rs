//! Finds Swedish personal identity and coordination numbers in data: the witness that no
//! identifier left a region. A match is a run of digits, bounded by non-digits, in one of the
//! written forms `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDDNNNC`, `YYMMDD-NNNC` or
//! `YYMMDD+NNNC`, with a real month, a day of 1–31 (61–91 for a coordination number) and a
//! check digit that agrees (Luhn). Parquet files are decoded and every string and integer
//! value is scanned; other objects are scanned as bytes. A finding gives the object and the
//! column or offset, never the number.

use anyhow::Result;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::pseudonymisation::identifier::luhn_check_digit;

fn plausible(ten: &[u8]) -> bool {
    let num = |a: usize| u32::from(ten[a] - b'0') * 10 + u32::from(ten[a + 1] - b'0');
    let (month, day) = (num(2), num(4));
    let day = if day > 60 { day - 60 } else { day };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let body = std::str::from_utf8(&ten[..9]).unwrap_or_default();
    luhn_check_digit(body) == ten[9] - b'0'
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

/// The shortest run of hexadecimal characters that is taken for a digest (a SHA-256 in hex
/// has 64, an MD5 32): digits inside such a run are part of a checksum, not an identifier.
const DIGEST_RUN: usize = 32;

/// Whether `bytes[start..end]` lies inside a run of at least [`DIGEST_RUN`] hexadecimal
/// characters.
fn inside_digest(bytes: &[u8], start: usize, end: usize) -> bool {
    let hex = |b: &u8| b.is_ascii_hexdigit();
    let before = bytes[..start].iter().rev().take_while(|b| hex(b)).count();
    let after = bytes[end..].iter().take_while(|b| hex(b)).count();
    before + (end - start) + after >= DIGEST_RUN
}

/// Where the first identity number in `bytes` starts, if any. Digits inside a long run of
/// hexadecimal characters (a checksum in a manifest) are not taken for one.
pub fn find_identity_number(bytes: &[u8]) -> Option<usize> {
    let n = bytes.len();
    let bounded = |end: usize| end >= n || !bytes[end].is_ascii_digit();
    for i in 0..n {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
            continue;
        }
        // A form matches only with all its digits; its last digit is at most 13 bytes on.
        let end = (i..n.min(i + 13))
            .take_while(|&j| bytes[j].is_ascii_digit() || matches!(bytes[j], b'-' | b'+'))
            .last()
            .map_or(i + 1, |j| j + 1);
        if inside_digest(bytes, i, end) {
            continue;
        }
        let rest = &bytes[i..];
        let mut ten = [0u8; 10];
        // Twelve digits, with or without a separator after the date.
        if rest.len() >= 12 && digits(&rest[..12]) && bounded(i + 12) {
            ten[..6].copy_from_slice(&rest[2..8]);
            ten[6..].copy_from_slice(&rest[8..12]);
            if plausible(&ten) {
                return Some(i);
            }
        }
        if rest.len() >= 13
            && digits(&rest[..8])
            && matches!(rest[8], b'-' | b'+')
            && digits(&rest[9..13])
            && bounded(i + 13)
        {
            ten[..6].copy_from_slice(&rest[2..8]);
            ten[6..].copy_from_slice(&rest[9..13]);
            if plausible(&ten) {
                return Some(i);
            }
        }
        if rest.len() >= 10 && digits(&rest[..10]) && bounded(i + 10) && plausible(&rest[..10]) {
            return Some(i);
        }
        if rest.len() >= 11
            && digits(&rest[..6])
            && matches!(rest[6], b'-' | b'+')
            && digits(&rest[7..11])
            && bounded(i + 11)
        {
            ten[..6].copy_from_slice(&rest[..6]);
            ten[6..].copy_from_slice(&rest[7..11]);
            if plausible(&ten) {
                return Some(i);
            }
        }
    }
    None
}

/// Whether `bytes` holds an identity number.
pub fn contains_identity_number(bytes: &[u8]) -> bool {
    find_identity_number(bytes).is_some()
}

/// Where in an object an identity number was found (never the number itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// In a Parquet column, at this row.
    Column {
        /// Column name.
        column: String,
        /// Row within the file.
        row: usize,
    },
    /// At this byte offset of a non-Parquet object.
    Offset(usize),
}

/// Scans one object (`key` tells a Parquet file by its suffix).
pub fn object(key: &str, bytes: Vec<u8>) -> Result<Option<Finding>> {
    if !key.ends_with(".parquet") {
        return Ok(find_identity_number(&bytes).map(Finding::Offset));
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
    let mut base = 0;
    for batch in reader {
        let batch = batch?;
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let hit = match column.data_type() {
                DataType::Utf8 => column
                    .as_string::<i32>()
                    .iter()
                    .position(|v| v.is_some_and(|v| contains_identity_number(v.as_bytes()))),
                DataType::Int64 => column.as_primitive::<Int64Type>().iter().position(|v| {
                    v.is_some_and(|v| contains_identity_number(v.to_string().as_bytes()))
                }),
                _ => None,
            };
            if let Some(row) = hit {
                return Ok(Some(Finding::Column {
                    column: field.name().clone(),
                    row: base + row,
                }));
            }
        }
        base += batch.num_rows();
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_written_form_and_nothing_else() {
        for form in [
            "194503071237",
            "19450307-1237",
            "4503071237",
            "450307-1237",
            "450307+1237",
            "19450367-1234",
        ] {
            let text = format!("id={form};");
            let valid = crate::pseudonymisation::identifier::parse_personal(form, 2025).is_ok();
            assert_eq!(contains_identity_number(text.as_bytes()), valid, "{form}");
        }
        assert!(contains_identity_number(b"x 19450307-1237 y"));
        // A wrong check digit, a longer number, a bad month.
        assert!(!contains_identity_number(b"19450307-1238"));
        assert!(!contains_identity_number(b"1194503071237"));
        assert!(!contains_identity_number(b"19451307-1237"));
    }

    #[test]
    fn digits_inside_a_checksum_are_no_identity_number() {
        // A SHA-256 in hex whose digits happen to form a valid number, as in a manifest.
        let digest = "3fa94503071237c9e1b0d4f6a8c2e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9";
        assert_eq!(digest.len(), 64);
        let manifest = format!("{{\"checksums\": {{\"s3://b/k\": \"{digest}\"}}}}");
        assert!(!contains_identity_number(manifest.as_bytes()));
        // The same number on its own, or beside a short word, is still found.
        assert!(contains_identity_number(b"{\"id\": \"4503071237\"}"));
        assert!(contains_identity_number(b"pnr4503071237"));
    }
}
