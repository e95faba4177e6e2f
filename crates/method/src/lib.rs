//! backforth: instruction back-and-forth translation.
//!
//! Turns raw documents into instruction-tuning data following Li et al.
//! (2023, "Self-Alignment with Instruction Backtranslation", arXiv:2308.06259)
//! and Nguyen et al. (2024, "Better Alignment with Instruction Back-and-Forth
//! Translation", arXiv:2408.04614): backtranslate each document into the
//! instruction it answers, curate the pairs with a 1–5 score, rewrite the kept
//! documents into assistant responses grounded in them. See ARCHITECTURE.md.
//!
//! This crate is the method: the [`record::Record`] that flows through the
//! stages, [`prompt`] templates, strict output [`parse`]rs, the [`stages`],
//! the [`pipeline`] that chains them, the [`store`] of stage files, and the
//! one [`config::Config`] that composes every section. Documents come from
//! `backforth-corpus`; models are reached only through the
//! `backforth-inference` trait.

pub mod checks;
pub mod config;
pub mod docfilter;
pub mod export;
pub mod grounding;
pub mod hash;
pub mod labelled;
pub mod pairs;
#[cfg(feature = "parquet")]
pub mod parquet_out;
pub mod parse;
pub mod pipeline;
pub mod prepare;
pub mod prompt;
pub mod record;
pub mod seeds;
pub mod stage;
pub mod stages;
pub mod store;
pub mod stream;
pub mod text;

pub use backforth_inference::{
    Backend, BackendProvider, ChatMessage, FinishReason, GenOutput, GenRequest,
};
pub use backforth_inference::encoder::SentenceEmbedder;
pub use config::Config;
pub use record::{Record, Stage};

#[cfg(test)]
mod test_embedder;
