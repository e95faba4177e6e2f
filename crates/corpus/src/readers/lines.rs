//! Line files as a [`DocumentSource`](super::source::DocumentSource): JSONL
//! (Dolma / FineWeb: one JSON object per line, `text_field` and `id_field`)
//! or one document per line (blank lines separate, not skipped), whole or a
//! byte range of the file (lines *starting* in the range belong to it; line
//! numbers count from the file's start). Lines over `max_line_bytes` and
//! lines that are not UTF-8 or not the expected JSON are skips with file and
//! line; a read error skips the rest of the file.

use super::io::{file_label, read_line_counted, Line};
use super::source::{skip, NotDocument, SourceItem};
use crate::document::{Document, SourceLoc};
use std::io::{BufReader, Read};
use std::path::PathBuf;

/// A JSONL or one-document-per-line file being read.
pub struct LineSource {
    path: PathBuf,
    reader: BufReader<Box<dyn Read>>,
    /// Lines read so far (whole-file numbering).
    line: u64,
    jsonl: bool,
    /// Byte offset of the next line's start, and the end of the range being
    /// read (lines starting at or after it belong to another part).
    pos: u64,
    end: Option<u64>,
    buf: Vec<u8>,
    max_line_bytes: usize,
    text_field: String,
    id_field: String,
    done: bool,
}

impl LineSource {
    /// Read `reader`, positioned at byte `pos` after `line` lines of `path`,
    /// up to the line starting at or after `end` (`None`: to the end);
    /// `fields`: JSONL's (text field, id field), `None` for one document per line.
    pub fn new(
        path: PathBuf,
        reader: BufReader<Box<dyn Read>>,
        (line, pos, end): (u64, u64, Option<u64>),
        fields: Option<(&str, &str)>,
        max_line_bytes: usize,
    ) -> Self {
        LineSource {
            path,
            reader,
            line,
            jsonl: fields.is_some(),
            pos,
            end,
            buf: Vec::new(),
            max_line_bytes,
            text_field: fields.map(|f| f.0.to_string()).unwrap_or_default(),
            id_field: fields.map(|f| f.1.to_string()).unwrap_or_default(),
            done: false,
        }
    }
}

impl Iterator for LineSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        loop {
            if self.done || self.end.is_some_and(|e| self.pos >= e) {
                return None;
            }
            let pstr = self.path.display().to_string();
            self.line += 1;
            let l = self.line;
            let read = read_line_counted(&mut self.reader, &mut self.buf, self.max_line_bytes);
            let read = read.map(|(line, n)| {
                self.pos += n;
                line
            });
            match read {
                Ok(Line::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(Line::TooLong(n)) => {
                    return Some(skip(
                        "line_too_long",
                        format!(
                            "{pstr}:{l}: line of {n} bytes is over max_line_bytes={}, skipped",
                            self.max_line_bytes
                        ),
                    ))
                }
                // blank lines separate documents in `lines` format; not a skip
                Ok(Line::Full) if !self.jsonl && self.buf.iter().all(|b| b.is_ascii_whitespace()) => {}
                Ok(Line::Full) => {
                    let doc = if self.jsonl {
                        super::jsonl::parse_jsonl(&self.buf, &pstr, l, &self.text_field, &self.id_field)
                    } else {
                        match std::str::from_utf8(&self.buf) {
                            Ok(t) => Ok(Document {
                                id: format!("{}:{l}", file_label(&self.path)),
                                source: SourceLoc { path: pstr.clone(), line: Some(l) },
                                text: t.to_string(),
                                metadata: serde_json::Value::Null,
                            }),
                            Err(e) => Err((
                                "invalid_utf8",
                                format!(
                                    "{pstr}:{l}: invalid UTF-8 at byte {} of the line, line skipped",
                                    e.valid_up_to()
                                ),
                            )),
                        }
                    };
                    return Some(doc.map_err(|(reason, message)| NotDocument::Skip { reason, message }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(skip(
                        "read_error",
                        format!("{pstr}:{l}: read error ({e}); rest of the file skipped"),
                    ));
                }
            }
        }
    }
}
