//! The flow's files in S3: read, write, list, with the credential of the step that runs.
//! Every object written is tagged with the metadata the flow passes (for example
//! `synthetic=true`).

use anyhow::{Context as _, Result};
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest as _, Sha256};

/// A bucket seen through one credential.
#[derive(Clone, Debug)]
pub struct Bucket {
    /// The S3 client of the step's credential.
    pub client: aws_sdk_s3::Client,
    /// The bucket's name.
    pub name: String,
}

fn s3_error<E>(e: aws_sdk_s3::error::SdkError<E>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static + aws_sdk_s3::error::ProvideErrorMetadata,
{
    anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e))
}

/// The SHA-256 of `bytes`, in hex.
/// The media type of the flow's Parquet files.
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// The object metadata (`x-amz-meta-rows`) holding a Parquet file's row count.
pub const ROWS_METADATA: &str = "rows";

/// The number of rows of a Parquet file, from its footer. Pure.
pub fn parquet_rows(bytes: bytes::Bytes) -> Result<i64> {
    use parquet::file::reader::FileReader as _;
    let reader = parquet::file::reader::SerializedFileReader::new(bytes)?;
    Ok(reader.metadata().file_metadata().num_rows())
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Bucket {
    /// A bucket through `client`.
    pub fn new(client: aws_sdk_s3::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// The `s3://bucket/key` URL of an object.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    /// Writes one object. A Parquet file carries its row count, read from its own footer, as
    /// the object's metadata [`ROWS_METADATA`], so that a catalogue can count rows without
    /// reading the data.
    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        let bytes = bytes::Bytes::from(bytes);
        let rows = (content_type == PARQUET)
            .then(|| parquet_rows(bytes.clone()))
            .transpose()
            .with_context(|| format!("s3://{}/{key} is not a Parquet file", self.name))?;
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type(content_type)
            .set_metadata(rows.map(|n| {
                std::collections::HashMap::from([(ROWS_METADATA.to_owned(), n.to_string())])
            }))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(s3_error)
            .with_context(|| format!("writing s3://{}/{key}", self.name))?;
        Ok(())
    }

    /// Reads one object whole.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(s3_error)
            .with_context(|| format!("reading s3://{}/{key}", self.name))?;
        Ok(out
            .body
            .collect()
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.name))?
            .into_bytes()
            .to_vec())
    }

    /// The keys and sizes under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(s3_error)
                .with_context(|| format!("listing s3://{}/{prefix}", self.name))?;
            for o in page.contents() {
                out.push((
                    o.key().unwrap_or_default().to_owned(),
                    o.size().unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }
}
