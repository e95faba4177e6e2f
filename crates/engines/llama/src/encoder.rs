//! `LlamaEncoder`: llama.cpp's BERT graph as a sentence encoder body (`TokenEncoder`), batched sequences per context.

use crate::*;
use anyhow::{Context, Result};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::Path;

/// A BERT-family sentence encoder run by llama.cpp's own `bert` graph
/// (non-causal, no KV cache, mean pooling inside llama.cpp): the body behind
/// [`backforth_inference::encoder::TokenEncoder`]. Token ids come from the
/// caller's tokenizer, so they are exactly the ids sentence-transformers
/// would use; the GGUF needs only the weights and a vocabulary of the right
/// size (`backforth_embed::write_gguf` makes one from a model folder).
pub struct LlamaEncoder {
    model: LlamaModel,
    id: String,
    threads: usize,
    /// Most tokens per encode call (see [`LlamaEncoder::encode_chunks`]);
    /// 256 was fastest for all-MiniLM-L6-v2 on 2 cores (128: up to 20%
    /// slower at small batches, 512: 15–25% slower; BENCHMARKS.md).
    pub token_budget: usize,
}

/// Most sequences per llama.cpp encode call (each takes a sequence id and a
/// row of the pooling matrix); with the 256-token budget it binds only for
/// very short texts.
const ENCODE_SEQS: usize = 32;

impl LlamaEncoder {
    /// Load an encoder GGUF. `threads` = 0: all cores.
    /// Errors: missing file, not a GGUF, not an encoder llama.cpp knows.
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let (model, id) = load_model(path, "encoder GGUF")?;
        Ok(LlamaEncoder {
            model,
            id,
            threads,
            token_budget: 256,
        })
    }

    /// Encode `seqs` in chunks of at most [`ENCODE_SEQS`] sequences and
    /// `token_budget` tokens (a longer sequence goes alone). Small chunks are
    /// faster: the bert graph attends over every token of an encode call
    /// (masked per sequence), so its cost grows with the square of the
    /// chunk's tokens.
    fn encode_chunks(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        use llama_cpp_2::context::params::LlamaPoolingType;
        let budget = self.token_budget;
        let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (i, s) in seqs.iter().enumerate() {
            if i > start && (tokens + s.len() > budget || i - start == ENCODE_SEQS) {
                chunks.push(start..i);
                (start, tokens) = (i, 0);
            }
            tokens += s.len();
        }
        if start < seqs.len() {
            chunks.push(start..seqs.len());
        }
        let threads = resolve_threads(self.threads);
        let mut out = Vec::with_capacity(seqs.len());
        // one context per chunk, sized for it (see the note on n below)
        for c in chunks {
            let part = &seqs[c];
            // llama.cpp reserves the pooling graph for an equal split of the
            // ubatch over the sequences: it aborts (ggml shape assertion)
            // unless the ubatch size is a multiple of the sequence count, and
            // for a single sequence; so at least two, and n a multiple of them
            let n_seq = part.len().max(2) as u32;
            let n = (part.iter().map(Vec::len).sum::<usize>().max(1) as u32)
                .next_multiple_of(64)
                .next_multiple_of(n_seq);
            // llama.cpp pads each sequence's share of the context to a
            // multiple of 256 and, when n_ctx is not that share times the
            // sequence count, resets it and warns (once per context, so once
            // per chunk): size it as llama.cpp will, without the warning
            let per_seq = 256 * n_seq;
            let params = LlamaContextParams::default()
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::Mean)
                .with_n_ctx(NonZeroU32::new(n.next_multiple_of(per_seq)))
                .with_n_batch(n)
                .with_n_ubatch(n)
                .with_n_seq_max(n_seq)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let mut ctx = self
                .model
                .new_context(llama_backend()?, params)
                .context("creating the llama.cpp encoder context")?;
            let mut batch = LlamaBatch::new(n as usize, n_seq as i32);
            for (j, s) in part.iter().enumerate() {
                for (p, &t) in s.iter().enumerate() {
                    batch.add(LlamaToken(t as i32), p as i32, &[j as i32], true)?;
                }
            }
            ctx.encode(&mut batch)
                .map_err(|e| anyhow::anyhow!("llama_encode failed: {e}"))?;
            for j in 0..part.len() {
                out.push(
                    ctx.embeddings_seq_ith(j as i32)
                        .map_err(|e| anyhow::anyhow!("pooled embedding {j}: {e}"))?
                        .to_vec(),
                );
            }
        }
        Ok(out)
    }
}

impl backforth_inference::encoder::TokenEncoder for LlamaEncoder {
    fn encoder_id(&self) -> String {
        format!("llama.cpp:{}", self.id)
    }

    fn encode_ids(&mut self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.encode_chunks(seqs)
    }
}
