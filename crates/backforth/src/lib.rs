//! backforth: instruction back-and-forth translation.
//!
//! Turns raw documents into instruction-tuning data following Li et al.
//! (2023, "Self-Alignment with Instruction Backtranslation", arXiv:2308.06259)
//! and Nguyen et al. (2024, "Better Alignment with Instruction Back-and-Forth
//! Translation", arXiv:2408.04614): backtranslate each document into the
//! instruction it answers, curate the pairs with a 1–5 score, rewrite the kept
//! documents into assistant responses grounded in them. See ARCHITECTURE.md.

pub mod analyze;
pub mod backend;
pub mod cache;
pub mod config;
pub mod decontam;
pub mod eval;
pub mod dedup;
pub mod filter;
pub mod hash;
pub mod judge;
pub mod mauve;
pub mod parse;
pub mod pipeline;
pub mod prepare;
pub mod prompt;
pub mod reader;
pub mod record;
pub mod report;
pub mod segment;
pub mod sources;
pub mod stage;
pub mod store;

pub use backend::{Backend, ChatMessage, FinishReason, GenOutput, GenRequest};
pub use config::{Config, Stage};
pub use record::Record;
