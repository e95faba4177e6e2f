//! A folder of text files as a [`DocumentSource`](super::source::DocumentSource):
//! one document per file (`input.extensions`), in sorted path order, id = the
//! path relative to the folder; HTML files go through main-content
//! extraction ([`super::html`]). Files over `max_line_bytes`, unreadable or
//! not UTF-8 are skips naming the file.

use super::io::read_capped;
use super::source::{skip, SourceItem};
use crate::document::{Document, SourceLoc};
use std::collections::VecDeque;
use std::path::PathBuf;

/// The files of one folder, being read.
pub struct TextDirSource {
    root: PathBuf,
    files: VecDeque<PathBuf>,
    max_bytes: u64,
}

impl TextDirSource {
    /// Read `files` (already listed and sorted) of the folder `root`.
    pub fn new(root: PathBuf, files: Vec<PathBuf>, max_bytes: u64) -> Self {
        TextDirSource { root, files: files.into(), max_bytes }
    }
}

fn is_html(f: &std::path::Path) -> bool {
    let name = f.to_string_lossy().to_ascii_lowercase();
    let base = super::io::strip_compression(&name);
    matches!(base.rsplit_once('.').map(|(_, e)| e), Some("html" | "htm" | "xhtml"))
}

impl Iterator for TextDirSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        let f = self.files.pop_front()?;
        let rel = f.strip_prefix(&self.root).unwrap_or(&f).to_string_lossy().to_string();
        let pstr = f.display().to_string();
        let res = read_capped(&f, self.max_bytes);
        if is_html(&f) {
            return Some(match res {
                Ok(b) => super::html::html_document(&b, rel, &f),
                Err(e) => skip("read_error", format!("{pstr}: {e}, file skipped")),
            });
        }
        Some(match res {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Document {
                    id: rel,
                    source: SourceLoc { path: pstr, line: None },
                    text,
                    metadata: serde_json::Value::Null,
                }),
                Err(e) => skip(
                    "invalid_utf8",
                    format!(
                        "{pstr}: invalid UTF-8 at byte {}, file skipped",
                        e.utf8_error().valid_up_to()
                    ),
                ),
            },
            Err(e) => skip("read_error", format!("{pstr}: {e}, file skipped")),
        })
    }
}
