//! `backforth-train`: LoRA fine-tuning on candle, for the small-model path of
//! self-alignment (Li et al. 2023 §2): the backward model M_yx (seed pairs
//! flipped, response → instruction), the seed model M_0 and the later
//! curation models M_1, M_2 (seed + curated pairs).
//!
//! Data flow: [`data`] builds examples and tokenizes them with the inference
//! engine's own tokenizer and chat template → [`trainer::train`] runs the
//! loop over [`model::Model`] (llama / qwen2 from plain ops, base weights
//! dequantized from GGUF by [`gguf`]) with [`optim::AdamW`] → the adapter is
//! written as GGUF ([`gguf::write_adapter`], loaded by the llama.cpp engine
//! as `base.gguf+lora:adapter.gguf`) and in PEFT's layout ([`peft`]).
//!
//! 7B–70B training stays with established trainers on GPUs; their PEFT
//! adapters come back through [`peft::read_peft`]; [`trl`] writes the job
//! for Hugging Face TRL there.

pub mod data;
pub mod gguf;
pub mod model;
pub mod optim;
pub mod peft;
pub mod selfalign;
pub mod trainer;
pub mod trl;

/// The candle device type (CPU here; CUDA with the `cuda` feature).
pub use candle_core::Device;
