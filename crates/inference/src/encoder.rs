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

/// A sentence embedder: text in, one L2-normalised vector per text out
/// (tokenizer, encoder body and pooling together; `backforth-embed`
/// implements it for sentence-transformers folders such as all-MiniLM-L6-v2).
/// Used by the semantic relevance check (`checks.embedding_model`).
pub trait SentenceEmbedder {
    /// Identifier for logs and summaries (model folder name, engine).
    fn embedder_id(&self) -> String;

    /// One unit-length vector per text, in input order; texts longer than
    /// the model's context are truncated by its tokenizer, so callers split
    /// long texts first. Errors: the engine failed (fatal, not bad input).
    fn embed_texts(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>>;
}
