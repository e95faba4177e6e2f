//! backforth-corpus: from raw files to candidate documents.
//!
//! - [`readers`]: one module per input format (Dolma/FineWeb JSONL, lines,
//!   text folders, HTML, WARC/WET, MediaWiki XML, Parquet), streamed as
//!   [`Document`]s with file-and-line provenance; bad input is skipped and
//!   counted, never fatal;
//! - [`segment`]: whole documents (Nguyen et al. 2024) or heading-scoped
//!   segments (Li et al. 2023 §2.1);
//! - [`filter`]: Humpback's segment rules, Gopher- and FineWeb-style quality rules;
//! - [`dedup`]: exact and MinHash/LSH near-duplicate removal;
//! - [`decontam`]: drop candidates that contain evaluation prompts;
//! - [`prepare`]: all of the above in one streaming pass.
//!
//! Architecture invariant: this crate knows nothing of models, prompts or
//! records; it ends where a document becomes a candidate for the method.

pub mod decontam;
pub mod dedup;
pub mod document;
pub mod filter;
pub mod prepare;
pub mod readers;
pub mod segment;

pub use document::{Document, SourceLoc};
