//! The learned grounding checker: per response sentence a *support* score
//! (is this sentence backed by the document?) and for the instruction a
//! *relevance* score (is this instruction about something the document
//! covers?), each a probability from a small network over alignment
//! features ([`features`]), trained without human labels on weak labels made
//! from the corpus itself ([`weak`]; FactCC's recipe, Kryściński et al.
//! 2020, arXiv:1910.12840, with SummaC-style best-unit alignment, Laban et
//! al. 2022).
//!
//! `backforth checks train` builds a model file for a corpus ([`train`]);
//! `checks.grounding_model` points a run at it, and the export's checks then
//! fail a pair with `response_not_grounded` (a sentence under
//! `checks.min_sentence_support`) or `instruction_not_grounded` (relevance
//! under `checks.min_instruction_relevance`). The model needs the sentence
//! embedder it was trained with (`checks.embedding_model`).

pub mod features;
pub mod mlp;
pub mod model;
pub mod train;
pub mod weak;

pub use model::{
    Grounding, GroundingError, GroundingModel, SentenceSupport, TrainingReport, FORMAT,
    MAX_DOCUMENT_CHARS,
};
