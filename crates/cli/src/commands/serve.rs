//! `backforth serve`: the OpenAI-compatible server of `backforth-http`
//! (`server`) over the embedded llama.cpp engine.

use crate::cli::ServeArgs;
use anyhow::Result;
use backforth_llama::{LlamaEngine, LlamaOptions};

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: ServeArgs) -> Result<()> {
    let name = a.served_name.clone().unwrap_or_else(|| {
        a.model
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let opts = LlamaOptions {
        threads: a.threads,
        batch_size: a.batch_size,
        context: a.context,
        n_batch: 512,
        ..Default::default()
    };
    let loras: Vec<String> = a.lora.iter().map(|p| p.display().to_string()).collect();
    let reference =
        backforth_inference::model_ref::model_ref(&a.model.display().to_string(), &loras);
    let mut engine = LlamaEngine::load_ref(&reference, opts)?;
    backforth_http::server::serve(&mut engine, &name, &a.listen, a.http_threads, |addr| {
        eprintln!("serving {name} on http://{addr}/v1")
    })
}
