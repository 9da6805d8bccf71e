//! Rows of a typed table to and from Arrow record batches and Parquet bytes: one piece of
//! machinery for every table of the flow. A table is declared once with [`table!`]; its
//! schema, its columns and its reader come from the field types.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

/// Rows written per record batch and row group.
const BATCH_ROWS: usize = 64 * 1024;

/// The Unix epoch as a date, the origin of Arrow's `Date32`.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// A column type: how values of a field become an Arrow array and come back.
pub trait Cell: Sized {
    /// The Arrow type.
    fn data_type() -> DataType;
    /// Whether the column may hold nulls.
    const NULLABLE: bool;
    /// An array of the values.
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// The values of an array; `name` is the column, for the error.
    fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>>;
}

fn expect_type(array: &dyn Array, want: &DataType, name: &str) -> Result<()> {
    if array.data_type() != want {
        bail!(
            "column {name}: expected {want}, found {}",
            array.data_type()
        );
    }
    Ok(())
}

fn no_nulls(array: &dyn Array, name: &str) -> Result<()> {
    if array.null_count() > 0 {
        bail!(
            "column {name}: {} null values in a required column",
            array.null_count()
        );
    }
    Ok(())
}

macro_rules! primitive_cell {
    ($ty:ty, $arrow:ty, $builder:ty, $dt:expr, $to:expr, $from:expr) => {
        impl Cell for $ty {
            fn data_type() -> DataType {
                $dt
            }
            const NULLABLE: bool = false;
            fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let mut b = <$builder>::new();
                for v in values {
                    b.append_value($to(v));
                }
                Arc::new(b.finish().with_data_type($dt))
            }
            fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>> {
                expect_type(array, &$dt, name)?;
                no_nulls(array, name)?;
                array
                    .as_primitive::<$arrow>()
                    .values()
                    .iter()
                    .map(|v| {
                        $from(*v).with_context(|| format!("column {name}: value out of range"))
                    })
                    .collect()
            }
        }

        impl Cell for Option<$ty> {
            fn data_type() -> DataType {
                $dt
            }
            const NULLABLE: bool = true;
            fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let mut b = <$builder>::new();
                for v in values {
                    b.append_option(v.as_ref().map($to));
                }
                Arc::new(b.finish().with_data_type($dt))
            }
            fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>> {
                expect_type(array, &$dt, name)?;
                array
                    .as_primitive::<$arrow>()
                    .iter()
                    .map(|v| match v {
                        None => Ok(None),
                        Some(v) => $from(v)
                            .map(Some)
                            .with_context(|| format!("column {name}: value out of range")),
                    })
                    .collect()
            }
        }
    };
}

primitive_cell!(
    i64,
    Int64Type,
    Int64Builder,
    DataType::Int64,
    |v: &i64| *v,
    |v: i64| Some(v)
);
primitive_cell!(
    i32,
    Int32Type,
    Int32Builder,
    DataType::Int32,
    |v: &i32| *v,
    |v: i32| Some(v)
);
primitive_cell!(
    f64,
    Float64Type,
    Float64Builder,
    DataType::Float64,
    |v: &f64| *v,
    |v: f64| Some(v)
);
primitive_cell!(
    NaiveDate,
    Date32Type,
    Date32Builder,
    DataType::Date32,
    |v: &NaiveDate| (*v - epoch()).num_days() as i32,
    |v: i32| epoch().checked_add_signed(chrono::Duration::days(i64::from(v)))
);
primitive_cell!(
    NaiveDateTime,
    TimestampMicrosecondType,
    TimestampMicrosecondBuilder,
    DataType::Timestamp(TimeUnit::Microsecond, None),
    |v: &NaiveDateTime| v.and_utc().timestamp_micros(),
    |v: i64| DateTime::from_timestamp_micros(v).map(|t| t.naive_utc())
);

impl Cell for String {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    const NULLABLE: bool = false;
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let mut b = StringBuilder::new();
        for v in values {
            b.append_value(v);
        }
        Arc::new(b.finish())
    }
    fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>> {
        expect_type(array, &DataType::Utf8, name)?;
        no_nulls(array, name)?;
        Ok(array
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect())
    }
}

impl Cell for Option<String> {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    const NULLABLE: bool = true;
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let mut b = StringBuilder::new();
        for v in values {
            b.append_option(v.as_deref());
        }
        Arc::new(b.finish())
    }
    fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>> {
        expect_type(array, &DataType::Utf8, name)?;
        Ok(array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    }
}

impl Cell for bool {
    fn data_type() -> DataType {
        DataType::Boolean
    }
    const NULLABLE: bool = false;
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let mut b = BooleanBuilder::new();
        for v in values {
            b.append_value(*v);
        }
        Arc::new(b.finish())
    }
    fn read(array: &dyn Array, name: &str) -> Result<Vec<Self>> {
        expect_type(array, &DataType::Boolean, name)?;
        no_nulls(array, name)?;
        Ok(array
            .as_boolean()
            .iter()
            .map(Option::unwrap_or_default)
            .collect())
    }
}

/// A table of typed rows (declared with [`table!`]).
pub trait Table: Sized {
    /// The table's name (the file name's stem).
    const NAME: &'static str;
    /// The Arrow schema, with the table's column names.
    fn schema() -> SchemaRef;
    /// One record batch of `rows`.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;
    /// The rows of one record batch; a missing column or a wrong type is named in the error.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;
}

/// Declares a row struct and its [`Table`] implementation.
macro_rules! table {
    (
        $(#[$meta:meta])*
        $name:ident = $table:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::flow::table::Table for $name {
            const NAME: &'static str = $table;

            fn schema() -> arrow_schema::SchemaRef {
                std::sync::Arc::new(arrow_schema::Schema::new(vec![
                    $( arrow_schema::Field::new(
                        stringify!($field),
                        <$ty as $crate::flow::table::Cell>::data_type(),
                        <$ty as $crate::flow::table::Cell>::NULLABLE,
                    ), )*
                ]))
            }

            fn to_batch(rows: &[Self]) -> anyhow::Result<arrow_array::RecordBatch> {
                Ok(arrow_array::RecordBatch::try_new(
                    Self::schema(),
                    vec![ $( <$ty as $crate::flow::table::Cell>::column(rows.iter().map(|r| &r.$field)), )* ],
                )?)
            }

            fn from_batch(batch: &arrow_array::RecordBatch) -> anyhow::Result<Vec<Self>> {
                $(
                    let column = batch.column_by_name(stringify!($field)).ok_or_else(|| {
                        anyhow::anyhow!("table {}: no column {}", $table, stringify!($field))
                    })?;
                    let mut $field = <$ty as $crate::flow::table::Cell>::read(
                        column.as_ref(),
                        stringify!($field),
                    )?
                    .into_iter();
                )*
                let mut rows = Vec::with_capacity(batch.num_rows());
                for _ in 0..batch.num_rows() {
                    rows.push(Self { $( $field: $field.next().unwrap_or_else(|| unreachable!()), )* });
                }
                Ok(rows)
            }
        }
    };
}
pub(crate) use table;

/// `rows` as a Parquet file (Snappy, 64 Ki rows per row group), with `metadata` as the
/// file's key-value metadata.
pub fn to_parquet<T: Table>(rows: &[T], metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH_ROWS))
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new((*k).to_owned(), v.clone()))
                .collect(),
        ))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, T::schema(), Some(props))?;
    for chunk in rows.chunks(BATCH_ROWS) {
        writer.write(&T::to_batch(chunk)?)?;
    }
    writer.close()?;
    Ok(out)
}

/// The rows of a Parquet file of table `T`.
pub fn from_parquet<T: Table>(bytes: Vec<u8>) -> Result<Vec<T>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .with_context(|| format!("reading a Parquet file of table {}", T::NAME))?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut rows = Vec::new();
    for batch in reader {
        rows.extend(T::from_batch(&batch?)?);
    }
    Ok(rows)
}

/// The key-value metadata of a Parquet file.
pub fn parquet_metadata(bytes: Vec<u8>) -> Result<Vec<(String, String)>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
    Ok(builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}
