//! backforth-inference: the one place where the method meets the engines.
//!
//! - [`backend`]: the [`Backend`] trait (lazy request pull, completion-order
//!   sink), [`GenRequest`] / [`GenOutput`] / [`Sampling`], and
//!   [`BackendProvider`] (backends by model name);
//! - [`cache`]: the SQLite response cache, a [`Backend`] wrapper shared by all engines;
//! - [`encoder`]: [`encoder::TokenEncoder`], the body of a sentence encoder
//!   (token ids in, pooled vectors out) that embedding engines implement;
//! - [`config`]: the engine sections of the run configuration
//!   (`[model]`, `[backend]`, `[http]`, `[cache]`).
//!
//! Architecture invariant: this crate depends on no other backforth crate and
//! links no engine (no llama.cpp, reqwest or candle); engines depend on it,
//! never the other way round.

pub mod backend;
pub mod cache;
pub mod config;
pub mod encoder;
pub mod model_ref;
pub mod progress;

pub use backend::{
    Backend, BackendProvider, ChatMessage, FinishReason, GenOutput, GenRequest, Sampling, Sink,
    TokenLogprobs,
};
