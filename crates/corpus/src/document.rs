//! What every reader produces: a [`Document`] with its provenance
//! ([`SourceLoc`]). The method turns each kept document (or segment) into
//! one `backforth::record::Record`.

use serde::{Deserialize, Serialize};

/// Where a document came from: file path plus line (1-based) or byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceLoc {
    /// Input file path as given on the command line / in the config.
    pub path: String,
    /// 1-based line number for line-oriented formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

/// A document as read from the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's own id (Dolma `id`), else `<file>:<line>` or the path relative to the input folder.
    pub id: String,
    /// Where it was read.
    pub source: SourceLoc,
    /// The text, as extracted (HTML and wikitext reduced to text with Markdown headings).
    pub text: String,
    /// Every other field of the input record (Dolma `source`, `metadata`, ...), or null.
    pub metadata: serde_json::Value,
}
