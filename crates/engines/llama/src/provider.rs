//! `LlamaProvider`: each GGUF (with its adapters) loaded once per process, by model reference.

use crate::*;
use anyhow::{bail, Result};
use backforth_inference::backend::Backend;
use std::collections::HashMap;

/// Loads engines by path on first use and keeps them for the run (so stages
/// sharing a model share one loaded copy).
pub struct LlamaProvider {
    opts: LlamaOptions,
    engines: HashMap<String, LlamaEngine>,
}

impl LlamaProvider {
    /// A provider whose engines all use `opts`.
    pub fn new(opts: LlamaOptions) -> Self {
        LlamaProvider {
            opts,
            engines: HashMap::new(),
        }
    }
}

impl backforth_inference::BackendProvider for LlamaProvider {
    fn model_id(&mut self, model: &str) -> Result<String> {
        if model.is_empty() {
            bail!("no model: set model.path (or pass --model) to a GGUF file");
        }
        model_id_for_ref(model)
    }

    fn backend(&mut self, model: &str) -> Result<&mut dyn Backend> {
        if !self.engines.contains_key(model) {
            let e = LlamaEngine::load_ref(model, self.opts.clone())?;
            self.engines.insert(model.to_string(), e);
        }
        Ok(self.engines.get_mut(model).expect("inserted above"))
    }
}
