//! Backends by model name, each behind the shared response cache: the
//! embedded llama.cpp engine or OpenAI-compatible servers, as `backend.kind`
//! says. The only place that knows which engine runs a stage.

use anyhow::{Context, Result};
use backforth::config::{BackendKind, Config};
use backforth_inference::BackendProvider;
use backforth_llama::{LlamaOptions, LlamaProvider};
use std::path::{Path, PathBuf};

/// Backends by model name, each behind the shared response cache.
pub struct Provider {
    cfg: Config,
    llama: LlamaProvider,
    pub backends: std::collections::HashMap<String, backforth_inference::cache::CachedBackend>,
    /// Sentence embedders by folder (the semantic relevance check), run by llama.cpp's BERT graph.
    embedders: std::collections::HashMap<String, backforth_embed::Embedder>,
}

impl Provider {
    pub fn new(cfg: &Config) -> Self {
        Provider {
            cfg: cfg.clone(),
            llama: LlamaProvider::new(LlamaOptions::from(&cfg.model)),
            backends: Default::default(),
            embedders: Default::default(),
        }
    }
}

impl BackendProvider for Provider {
    fn model_id(&mut self, model: &str) -> Result<String> {
        match self.cfg.backend.kind {
            BackendKind::Embedded => self.llama.model_id(model),
            BackendKind::Http => {
                anyhow::ensure!(
                    !model.is_empty(),
                    "no model: set model.path to the model name the server knows"
                );
                anyhow::ensure!(
                    !model.contains(backforth_inference::model_ref::LORA_SEP),
                    "{model}: LoRA adapters (model.lora / <stage>.lora) apply to the embedded backend; \
                     with a server, load the adapter there (vLLM --lora-modules NAME=PATH, llama-server --lora) and name it in model.path"
                );
                Ok(format!("http:{model}"))
            }
        }
    }

    fn backend(&mut self, model: &str) -> Result<&mut dyn backforth_inference::Backend> {
        if !self.backends.contains_key(model) {
            let inner: Box<dyn backforth_inference::Backend> = match self.cfg.backend.kind {
                BackendKind::Embedded => Box::new(backforth_llama::LlamaEngine::load_ref(
                    model,
                    LlamaOptions::from(&self.cfg.model),
                )?),
                BackendKind::Http => Box::new(backforth_http::HttpBackend::new(
                    self.cfg.http.clone(),
                    model,
                )?),
            };
            let cache = if self.cfg.cache.enabled {
                self.cfg.cache_path()
            } else {
                PathBuf::from(":memory:")
            };
            let cb = backforth_inference::cache::CachedBackend {
                inner,
                cache: backforth_inference::cache::ResponseCache::open(&cache)?,
                hits: 0,
                misses: 0,
            };
            self.backends.insert(model.to_string(), cb);
        }
        let b = self.backends.get_mut(model).expect("inserted above");
        Ok(b)
    }

    fn embedder(
        &mut self,
        dir: &str,
    ) -> Result<&mut dyn backforth_inference::encoder::SentenceEmbedder> {
        if !self.embedders.contains_key(dir) {
            let e = load_embedder(
                std::path::Path::new(dir),
                "llama",
                self.cfg.model.threads,
            )
            .map_err(|e| anyhow::anyhow!("checks.embedding_model = {dir:?}: {e:#} (a sentence-transformers folder such as all-MiniLM-L6-v2: scripts/fetch-assets.sh minilm)"))?;
            self.embedders.insert(dir.to_string(), e);
        }
        Ok(self.embedders.get_mut(dir).expect("inserted above"))
    }
}

/// Load the sentence encoder of a model folder, run by `engine`: `candle`
/// (in process) or `llama` (llama.cpp's bert graph on
/// `<folder>.f32.gguf`, written from the folder on first use).
/// Errors: unknown engine, missing files, conversion or load failures.
pub fn load_embedder(dir: &Path, engine: &str, threads: usize) -> Result<backforth_embed::Embedder> {
    match engine {
        "candle" => backforth_embed::Embedder::load(dir),
        "llama" => {
            let gguf = dir.with_extension("f32.gguf");
            if !gguf.is_file() {
                backforth_embed::write_gguf(dir, &gguf)
                    .with_context(|| format!("writing {}", gguf.display()))?;
            }
            let enc = backforth_llama::LlamaEncoder::load(&gguf, threads)?;
            backforth_embed::Embedder::with_encoder(dir, Box::new(enc))
        }
        other => anyhow::bail!("unknown embedding engine {other:?} (candle or llama)"),
    }
}

/// The asset cache `scripts/fetch-assets.sh` fills: `$BACKFORTH_CACHE`
/// when set and non-empty, else `~/.cache/backforth`.
pub fn asset_cache() -> PathBuf {
    std::env::var("BACKFORTH_CACHE")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/backforth"))
}

/// `$BACKFORTH_CACHE/models/all-MiniLM-L6-v2` (where `fetch-assets.sh minilm` puts it).
pub fn default_embedder() -> PathBuf {
    asset_cache().join("models/all-MiniLM-L6-v2")
}
