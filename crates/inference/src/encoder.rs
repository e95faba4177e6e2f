//! The body of a sentence encoder behind one trait: token-id sequences in,
//! one pooled vector per sequence out. The tokenizer and the normalisation
//! stay with the caller (`backforth-embed`), so every body sees exactly the
//! same ids; the engines implement the trait (candle in `backforth-embed`,
//! llama.cpp's BERT graph in `backforth-llama`).

/// Runs an encoder over token ids.
pub trait TokenEncoder: Send {
    /// Identifier for caches and logs (e.g. GGUF name and size).
    fn encoder_id(&self) -> String;

    /// Mean-pooled, not normalised, hidden states: one vector per sequence,
    /// in input order. Each sequence already holds its special tokens
    /// ([CLS] … [SEP]) and fits the model's context.
    /// Errors: the engine failed (a fatal condition, not bad input).
    fn encode_ids(&mut self, seqs: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>>;
}
