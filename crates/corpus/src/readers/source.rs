//! The contract every corpus format implements: a streaming iterator of
//! [`SourceItem`]s over one input file. [`super::DocumentStream`] applies the
//! length rules and counts skips and ignored items in [`super::InputStats`].

use crate::document::Document;

/// Why an item from a source was not a document: a problem (counted as a
/// skip, with a message giving file and offset) or an item that is simply not
/// a document (a WARC request record, a wiki redirect; counted as ignored).
#[derive(Debug, Clone, PartialEq)]
pub enum NotDocument {
    /// Bad or unusable input. `reason` is the summary key (`warc_bad_record`, `html_no_content`, ...).
    Skip {
        reason: &'static str,
        message: String,
    },
    /// Not a document by design; `reason` is the summary key (`warc_request`, `wiki_redirect`, ...).
    Ignore { reason: &'static str },
}

/// One item from a [`DocumentSource`].
pub type SourceItem = Result<Document, NotDocument>;

/// A streaming reader over one input file. Every corpus format implements it;
/// the stream in `readers/mod.rs` applies the length rules and counts.
pub trait DocumentSource: Iterator<Item = SourceItem> {}
impl<T: Iterator<Item = SourceItem>> DocumentSource for T {}

/// A skip with its summary key and message (file and offset inside).
pub fn skip(reason: &'static str, message: String) -> SourceItem {
    Err(NotDocument::Skip { reason, message })
}
