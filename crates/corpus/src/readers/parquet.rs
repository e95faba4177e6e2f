//! Parquet shards (FineWeb style) through the `parquet` crate: only the
//! text and id columns are read; every other column is ignored.

use super::source::{skip, SourceItem};
use crate::document::{Document, SourceLoc};
use std::path::Path;

/// Rows of a Parquet file (FineWeb-style shards): the text column and the id
/// column (names configurable; a missing id becomes `<file>:row<N>`), other
/// columns ignored. Only the two columns are read (projection); rows stream
/// one row group page at a time. Compression: snappy, zstd, gzip.
pub struct ParquetSource {
    path: String,
    rows: Option<parquet::record::reader::RowIter<'static>>,
    text_field: String,
    id_field: String,
    n: u64,
    error: Option<String>,
}

impl ParquetSource {
    /// Open `path`; an unreadable file or a missing text column is reported by the first `next()`.
    pub fn new(path: &Path, text_field: &str, id_field: &str) -> Self {
        let p = path.display().to_string();
        let mut s = ParquetSource {
            path: p.clone(),
            rows: None,
            text_field: text_field.into(),
            id_field: id_field.into(),
            n: 0,
            error: None,
        };
        match Self::open(path, text_field, id_field) {
            Ok(r) => s.rows = Some(r),
            Err(e) => s.error = Some(format!("{p}: cannot read as Parquet ({e}); file skipped")),
        }
        s
    }

    fn open(
        path: &Path,
        text_field: &str,
        id_field: &str,
    ) -> Result<parquet::record::reader::RowIter<'static>, String> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let r: Box<dyn FileReader> = if super::io::is_url(path) {
            remote::reader(path)?
        } else {
            let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
            Box::new(SerializedFileReader::new(f).map_err(|e| e.to_string())?)
        };
        let schema = r.metadata().file_metadata().schema();
        let fields: Vec<_> = schema
            .get_fields()
            .iter()
            .filter(|t| t.name() == text_field || t.name() == id_field)
            .cloned()
            .collect();
        if !fields.iter().any(|t| t.name() == text_field) {
            return Err(format!("no column `{text_field}`"));
        }
        let proj = parquet::schema::types::Type::group_type_builder(schema.name())
            .with_fields(fields)
            .build()
            .map_err(|e| e.to_string())?;
        parquet::record::reader::RowIter::from_file_into(r)
            .project(Some(proj))
            .map_err(|e| e.to_string())
    }
}

/// Parquet over object storage: the footer and column chunks are fetched
/// by ranged GETs (`parquet`'s `ChunkReader` over a store location), so
/// only the projected columns cross the network.
#[cfg(feature = "object-store")]
mod remote {
    use backforth_objstore::{Location, ObjectReader};
    use parquet::errors::ParquetError;
    use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
    use std::path::Path;

    struct Chunks {
        loc: Location,
        len: u64,
    }

    impl Length for Chunks {
        fn len(&self) -> u64 {
            self.len
        }
    }

    impl ChunkReader for Chunks {
        type T = ObjectReader;
        fn get_read(&self, start: u64) -> parquet::errors::Result<ObjectReader> {
            self.loc
                .reader(start)
                .map_err(|e| ParquetError::External(e.into()))
        }
        fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
            self.loc
                .get_range(start, start + length as u64)
                .map_err(|e| ParquetError::External(e.into()))
        }
    }

    pub fn reader(path: &Path) -> Result<Box<dyn FileReader>, String> {
        let loc = Location::parse(&path.to_string_lossy()).map_err(|e| format!("{e:#}"))?;
        let len = loc
            .head()
            .map_err(|e| format!("{e:#}"))?
            .ok_or_else(|| "no such object".to_string())?;
        let r = SerializedFileReader::new(Chunks { loc, len }).map_err(|e| e.to_string())?;
        Ok(Box::new(r))
    }
}

#[cfg(not(feature = "object-store"))]
mod remote {
    use parquet::file::reader::FileReader;
    use std::path::Path;

    pub fn reader(path: &Path) -> Result<Box<dyn FileReader>, String> {
        Err(format!(
            "{}: object-store URLs need backforth built with the `object-store` feature",
            path.display()
        ))
    }
}

impl Iterator for ParquetSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        use parquet::record::Field;
        if let Some(e) = self.error.take() {
            self.rows = None;
            return Some(skip("read_error", e));
        }
        let row = match self.rows.as_mut()?.next()? {
            Ok(r) => r,
            Err(e) => {
                self.rows = None;
                return Some(skip(
                    "read_error",
                    format!(
                        "{}: row {}: {e}; rest of the file skipped",
                        self.path,
                        self.n + 1
                    ),
                ));
            }
        };
        self.n += 1;
        let (mut text, mut id) = (None, None);
        let mut bad_text = None;
        for (name, f) in row.get_column_iter() {
            let v = match f {
                Field::Str(s) => Some(s.clone()),
                Field::Bytes(b) => match std::str::from_utf8(b.data()) {
                    Ok(s) => Some(s.to_string()),
                    Err(e) => {
                        bad_text = Some(format!("invalid UTF-8 at byte {}", e.valid_up_to()));
                        None
                    }
                },
                Field::Long(i) => Some(i.to_string()),
                Field::Int(i) => Some(i.to_string()),
                Field::ULong(i) => Some(i.to_string()),
                Field::Null => None,
                other => {
                    if name == &self.text_field {
                        bad_text = Some(format!("column `{name}` is not a string ({other})"));
                    }
                    None
                }
            };
            if name == &self.text_field {
                text = v;
            } else if name == &self.id_field {
                id = v;
            }
        }
        let loc = SourceLoc {
            path: self.path.clone(),
            line: Some(self.n),
        };
        Some(match text {
            Some(t) => Ok(Document {
                id: id
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("{}:row{}", self.path, self.n)),
                source: loc,
                text: t,
                metadata: serde_json::Value::Null,
            }),
            None => skip(
                "missing_text",
                format!(
                    "{}: row {}: {}, row skipped",
                    self.path,
                    self.n,
                    bad_text.unwrap_or_else(|| format!("`{}` is null", self.text_field))
                ),
            ),
        })
    }
}
