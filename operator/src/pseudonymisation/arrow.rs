//! Arrow IPC streams, the service's bulk format (pure).
//!
//! A caller sends an Arrow IPC stream (`application/vnd.apache.arrow.stream`) whose record
//! batches have a Utf8 column `identifier`; other columns are ignored. The answer is a stream
//! with one record batch per batch sent, row for row: a Utf8 column `pseudonym` (null where
//! the row was refused) and a Utf8 column `error` (the reason, null where it was served). The
//! schema's metadata carries `domain` and `keyVersion`. Pseudonyms are the same strings the
//! JSON API gives. Errors never contain a value of the stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema};

/// The media type of an Arrow IPC stream.
pub const CONTENT_TYPE: &str = "application/vnd.apache.arrow.stream";
/// The column a request's identifiers are read from.
pub const IDENTIFIER: &str = "identifier";
/// The answer's column of pseudonyms.
pub const PSEUDONYM: &str = "pseudonym";
/// The answer's column of refusal reasons.
pub const ERROR: &str = "error";

/// Why a request's stream was refused; the text names the column or the fault, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    /// Not a readable Arrow IPC stream.
    #[error("the body is not an Arrow IPC stream")]
    NotArrow,
    /// No column of the name.
    #[error("the Arrow stream has no column `identifier`")]
    NoColumn,
    /// The column has another type.
    #[error("the Arrow column `identifier` must be Utf8, not {0}")]
    NotUtf8(DataType),
}

/// The `identifier` column of each record batch of the stream `body`, in order. The columns
/// are read in place: their buffers are the body's, not copies of it.
pub fn read_identifiers(body: bytes::Bytes) -> Result<Vec<StringArray>, Malformed> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(body);
    let mut index = None;
    let mut columns = Vec::new();
    while !buffer.is_empty() {
        let batch = decoder
            .decode(&mut buffer)
            .map_err(|_| Malformed::NotArrow)?;
        if index.is_none()
            && let Some(schema) = decoder.schema()
        {
            index = Some(identifier_column(&schema)?);
        }
        if let (Some(batch), Some(index)) = (batch, index) {
            let column = batch
                .column(index)
                .as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or(Malformed::NotArrow)?;
            columns.push(column);
        }
    }
    decoder.finish().map_err(|_| Malformed::NotArrow)?;
    // A stream with no schema message is no stream.
    index.map(|_| columns).ok_or(Malformed::NotArrow)
}

/// Where a stream's schema has its Utf8 column `identifier`.
fn identifier_column(schema: &Schema) -> Result<usize, Malformed> {
    let index = schema
        .index_of(IDENTIFIER)
        .map_err(|_| Malformed::NoColumn)?;
    match schema.field(index).data_type() {
        DataType::Utf8 => Ok(index),
        other => Err(Malformed::NotUtf8(other.clone())),
    }
}

/// The schema of an answer for `domain` under key `version`.
pub fn answer_schema(domain: &str, version: u64) -> Arc<Schema> {
    let metadata = HashMap::from([
        ("domain".to_string(), domain.to_string()),
        ("keyVersion".to_string(), version.to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new(PSEUDONYM, DataType::Utf8, true),
            Field::new(ERROR, DataType::Utf8, true),
        ],
        metadata,
    ))
}

/// One answer batch: pseudonyms and errors, row for row.
pub struct Answer {
    /// The pseudonym of each row, null where refused.
    pub pseudonyms: StringArray,
    /// The reason of each refused row, null where served.
    pub errors: StringArray,
}

/// The answer stream: one record batch per answer, under `schema`.
pub fn write_answers(schema: Arc<Schema>, answers: Vec<Answer>) -> Result<Vec<u8>, ArrowError> {
    // Sized once for the whole answer, so that the stream is never copied as it grows: each
    // batch's buffers and its message header, and the schema's message before them.
    const MESSAGE: usize = 512;
    let size: usize = answers
        .iter()
        .map(|a| {
            a.pseudonyms.get_buffer_memory_size() + a.errors.get_buffer_memory_size() + MESSAGE
        })
        .sum();
    let mut writer = StreamWriter::try_new(Vec::with_capacity(size + MESSAGE), &schema)?;
    for answer in answers {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(answer.pseudonyms), Arc::new(answer.errors)],
        )?;
        writer.write(&batch)?;
    }
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;
    use arrow_ipc::reader::StreamReader;

    fn read_identifiers(bytes: Vec<u8>) -> Result<Vec<StringArray>, Malformed> {
        super::read_identifiers(bytes::Bytes::from(bytes))
    }

    fn stream(batch: &RecordBatch) -> Vec<u8> {
        let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema()).expect("writer");
        writer.write(batch).expect("write");
        writer.into_inner().expect("stream")
    }

    #[test]
    fn reads_the_identifier_column_of_every_batch_and_ignores_the_others() {
        let batch = RecordBatch::try_from_iter([
            ("row", Arc::new(Int32Array::from(vec![1, 2])) as _),
            (
                IDENTIFIER,
                Arc::new(StringArray::from(vec![Some("a"), None])) as _,
            ),
        ])
        .expect("batch");
        let columns = read_identifiers(stream(&batch)).expect("read");
        assert_eq!(columns.len(), 1);
        assert_eq!(columns[0].value(0), "a");
        assert!(columns[0].is_null(1));
    }

    #[test]
    fn reads_every_batch_of_a_stream_with_nulls() {
        let batch = |v: Vec<Option<&str>>| {
            let column = Arc::new(StringArray::from(v)) as _;
            RecordBatch::try_from_iter_with_nullable([(IDENTIFIER, column, true)]).expect("batch")
        };
        let (a, b) = (
            batch(vec![Some("a"), Some("b")]),
            batch(vec![Some("c"), None]),
        );
        let mut writer = StreamWriter::try_new(Vec::new(), &a.schema()).expect("writer");
        writer.write(&a).expect("write");
        writer.write(&b).expect("write");
        let bytes = writer.into_inner().expect("stream");
        let columns = read_identifiers(bytes).expect("read");
        assert_eq!(columns.len(), 2);
        assert!(columns[1].is_null(1));
    }

    #[test]
    fn refuses_what_is_not_a_utf8_identifier_column_by_name() {
        let other =
            RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(vec!["a"])) as _)])
                .expect("batch");
        assert_eq!(read_identifiers(stream(&other)), Err(Malformed::NoColumn));
        let numbers =
            RecordBatch::try_from_iter([(IDENTIFIER, Arc::new(Int32Array::from(vec![1])) as _)])
                .expect("batch");
        let refused = read_identifiers(stream(&numbers)).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "the Arrow column `identifier` must be Utf8, not Int32"
        );
        assert_eq!(
            read_identifiers(b"{\"kind\":1}".to_vec()),
            Err(Malformed::NotArrow)
        );
    }

    #[test]
    fn refuses_an_empty_body_and_a_stream_cut_short() {
        assert_eq!(read_identifiers(Vec::new()), Err(Malformed::NotArrow));
        let batch =
            RecordBatch::try_from_iter([(IDENTIFIER, Arc::new(StringArray::from(vec!["a"])) as _)])
                .expect("batch");
        let whole = stream(&batch);
        for cut in [8, whole.len() / 2, whole.len() - 1] {
            assert_eq!(
                read_identifiers(whole[..cut].to_vec()),
                Err(Malformed::NotArrow),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn reads_the_column_in_place_without_copying_the_body() {
        let batch = RecordBatch::try_from_iter([(
            IDENTIFIER,
            Arc::new(StringArray::from(vec!["abc"])) as _,
        )])
        .expect("batch");
        let body = bytes::Bytes::from(stream(&batch));
        let range = body.as_ptr_range();
        let columns = super::read_identifiers(body.clone()).expect("read");
        let values = columns[0].values().as_ptr();
        assert!(range.contains(&values), "the values are the body's bytes");
    }

    #[test]
    fn answers_carry_domain_and_version_and_round_trip() {
        let answer = Answer {
            pseudonyms: StringArray::from(vec![Some("vault:v2:x"), None]),
            errors: StringArray::from(vec![None, Some("the check digit is wrong")]),
        };
        let bytes = write_answers(answer_schema("research", 2), vec![answer]).expect("write");
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("reader");
        let metadata = reader.schema().metadata().clone();
        assert_eq!(metadata["domain"], "research");
        assert_eq!(metadata["keyVersion"], "2");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].num_rows(), 2);
    }
}
