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

/// Where the first identity number in `bytes` starts, if any.
pub fn find_identity_number(bytes: &[u8]) -> Option<usize> {
    let n = bytes.len();
    let bounded = |end: usize| end >= n || !bytes[end].is_ascii_digit();
    for i in 0..n {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
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
}
