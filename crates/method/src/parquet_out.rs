//! The Parquet writing both Parquet outputs share (`prepare`'s
//! `candidates.parquet` and the exports' `<name>.parquet`): a zstd file
//! written to `<out>.tmp` and renamed when complete, UTF-8 and optional
//! integer columns written a row group at a time.

use anyhow::{Context, Result};
use parquet::data_type::{ByteArray, ByteArrayType, DataType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A Parquet file being written to `<out>.tmp`.
pub struct ParquetOut {
    pub writer: SerializedFileWriter<File>,
    tmp: PathBuf,
    out: PathBuf,
}

impl ParquetOut {
    /// Open `<out>.tmp` for `schema` (Parquet message-type text), zstd-compressed.
    /// Errors: a bad schema, I/O.
    pub fn create(out: &Path, schema: &str) -> Result<Self> {
        let schema = std::sync::Arc::new(parquet::schema::parser::parse_message_type(schema)?);
        let props = std::sync::Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build(),
        );
        let tmp = out.with_extension("parquet.tmp");
        let writer = SerializedFileWriter::new(
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
            schema,
            props,
        )?;
        Ok(ParquetOut {
            writer,
            tmp,
            out: out.to_path_buf(),
        })
    }

    /// Close the file and rename it into place. Errors: I/O.
    pub fn finish(self) -> Result<()> {
        self.writer.close()?;
        std::fs::rename(&self.tmp, &self.out)?;
        Ok(())
    }
}

/// Write the next column of `rg` as required UTF-8 values.
pub fn utf8_column<'a>(
    rg: &mut SerializedRowGroupWriter<'_, File>,
    values: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let v: Vec<ByteArray> = values.map(ByteArray::from).collect();
    let mut cw = rg.next_column()?.context("schema has fewer columns")?;
    cw.typed::<ByteArrayType>().write_batch(&v, None, None)?;
    cw.close()?;
    Ok(())
}

/// Write the next column of `rg` as optional values of type `T` (`None` = null).
pub fn optional_column<T: DataType>(
    rg: &mut SerializedRowGroupWriter<'_, File>,
    values: impl Iterator<Item = Option<T::T>>,
) -> Result<()> {
    let (mut present, mut defs) = (Vec::new(), Vec::new());
    for v in values {
        defs.push(v.is_some() as i16);
        present.extend(v);
    }
    let mut cw = rg.next_column()?.context("schema has fewer columns")?;
    cw.typed::<T>().write_batch(&present, Some(&defs), None)?;
    cw.close()?;
    Ok(())
}
