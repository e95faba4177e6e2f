//! backforth-measure: how good is the data a run made?
//!
//! - [`judge`]: verdict parsing, both-order aggregation, win rate with a
//!   standard error, length-controlled win rate (AlpacaEval 2 style);
//! - [`eval`]: answer instructions with any backend and judge two output sets
//!   pairwise, resumably (AlpacaEval JSON and MT-bench inputs);
//! - [`mauve`]: MAUVE between two sets of embeddings (Pillutla et al. 2021);
//! - [`analyze`]: lengths, diversity, curation score and parse statistics of a run;
//! - [`report`]: one self-contained HTML page of all of it.
//!
//! Architecture invariant: measuring reads run folders and output files and
//! writes only its own files; it never edits a run's stage files or exports.
//! Embeddings come in as vectors: this crate links no model.

pub mod analyze;
pub mod distance;
pub mod eval;
pub mod judge;
pub mod mauve;
pub mod report;
