//! Embedded llama.cpp backend for backforth (via the `llama-cpp-2` crate).
//!
//! One [`LlamaEngine`] holds one loaded GGUF. [`Backend::generate`] runs a
//! continuous-batching loop: up to `batch_size` sequences share each
//! `llama_decode` call; prompts are prefilled in chunks of at most `n_batch`
//! tokens alongside the generating sequences, and a finished sequence's slot
//! (and its KV-cache cells) is refilled with the next request at once.
//! With prefix reuse on, a slot keeps its KV cells after a request ends and
//! the next request in that slot prefills only what follows the prefix the
//! two prompts share (llama.cpp server's prompt cache, per slot).
//! The chat template is the one stored in the GGUF (llama.cpp's built-in
//! template matcher); a GGUF without one falls back to ChatML.
//!
//! Determinism: each request has its own sampler seeded from its own seed.
//! With `batch_size = 1` outputs are bit-identical across runs; with larger
//! batches the float reductions of a decode depend on which sequences share
//! the batch, so sampled outputs can differ slightly between schedules (a
//! property of llama.cpp's batched CPU kernels, not of the scheduler).
//!
//! Files: `lib.rs` (backend init, options, model ids, the engine and slot
//! types), `engine` (loading, templates, the scheduler: `Backend::generate`),
//! `prefix` (KV prefix reuse and copy), `sampling` (next token, pieces,
//! log-probabilities), `encoder` (`LlamaEncoder`), `provider` (`LlamaProvider`).

use anyhow::{Context, Result};
use backforth_inference::backend::TokenLogprobs;
use backforth_inference::model_ref::{split_model_ref, LORA_SEP};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::path::Path;
use std::sync::OnceLock;

static LLAMA: OnceLock<LlamaBackend> = OnceLock::new();

/// The process-wide llama.cpp backend (initialised once; logs go to `tracing`).
pub fn llama_backend() -> Result<&'static LlamaBackend> {
    if let Some(b) = LLAMA.get() {
        return Ok(b);
    }
    // llama.cpp refuses a second init: threads that race here take turns
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = LLAMA.get() {
        return Ok(b);
    }
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let b = LlamaBackend::init().context("initialising llama.cpp")?;
    Ok(LLAMA.get_or_init(|| b))
}

/// How the engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaOptions {
    /// CPU threads (0 = all available).
    pub threads: usize,
    /// Sequences decoded together (continuous-batching slots).
    pub batch_size: usize,
    /// Context tokens per sequence (prompt + output).
    pub context: u32,
    /// Maximum tokens per `llama_decode` call.
    pub n_batch: u32,
    /// Reuse the KV cache of the prompt prefix a slot's next request shares
    /// with its previous one, or with what another slot holds (copied; see
    /// `model.prefix_reuse`).
    pub prefix_reuse: bool,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        LlamaOptions {
            threads: 0,
            batch_size: 4,
            context: 4096,
            n_batch: 512,
            prefix_reuse: true,
        }
    }
}

impl From<&backforth_inference::config::ModelConfig> for LlamaOptions {
    fn from(m: &backforth_inference::config::ModelConfig) -> Self {
        LlamaOptions {
            threads: m.threads,
            batch_size: m.batch_size,
            context: m.context,
            n_batch: m.n_batch,
            prefix_reuse: m.prefix_reuse,
        }
    }
}

/// Timings of the last `generate` call, for benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    /// Prompt tokens decoded (prefilled).
    pub prompt_tokens: u64,
    /// Prompt tokens not decoded because the slot's KV cache already held them.
    pub reused_prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Seconds spent in decode calls that carried prompt tokens.
    pub prefill_s: f64,
    /// Seconds spent in decode calls that carried only generated tokens.
    pub generate_s: f64,
    /// Wall seconds of the call.
    pub wall_s: f64,
    /// Seconds from the start until no prompt tokens were pending (first wave).
    pub first_prefill_done_s: f64,
}

/// A loaded GGUF model, with at most one LoRA adapter applied.
pub struct LlamaEngine {
    model: LlamaModel,
    template: LlamaChatTemplate,
    id: String,
    /// LoRA adapter applied to every context, and its scale.
    adapter: Option<(std::sync::Mutex<LlamaLoraAdapter>, f32)>,
    /// Runtime options.
    pub opts: LlamaOptions,
    /// Benchmark knob: ignore end-of-generation tokens so every sequence runs to `max_tokens`.
    pub ignore_eos: bool,
    /// Stats of the last `generate` call.
    pub last_stats: EngineStats,
}

/// Model id used in provenance, stage keys and the response cache: the base
/// file's name and size, then for each adapter its file name and the first
/// 16 hex digits of its BLAKE3 hash (an adapter retrained in place gets a
/// new id). Errors: a file cannot be read.
pub fn model_id_for_ref(model: &str) -> Result<String> {
    let (base, adapters) = split_model_ref(model);
    let mut id = model_id_for(Path::new(base))?;
    for a in adapters {
        let bytes = std::fs::read(a).with_context(|| format!("LoRA adapter {a}"))?;
        let name = Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        id.push_str(&format!(
            "{LORA_SEP}{name}#{}",
            &blake3::hash(&bytes).to_hex()[..16]
        ));
    }
    Ok(id)
}

/// Model id used in provenance and stage keys: file name and size in bytes.
/// Errors: the file cannot be read.
pub fn model_id_for(path: &Path) -> Result<String> {
    let md = std::fs::metadata(path).with_context(|| format!("model file {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(format!("{name}#{}", md.len()))
}

struct Slot {
    tag: u64,
    seq: i32,
    prompt: Vec<LlamaToken>,
    n_prompt_done: usize,
    /// Prompt tokens taken from the KV cache instead of prefilled.
    n_reused: usize,
    /// Every token whose KV this sequence holds, in position order.
    fed: Vec<LlamaToken>,
    n_past: i32,
    /// Sampling chain without the grammar; `None` = greedy: argmax straight
    /// on the logits (no candidate array over the whole vocabulary per token).
    sampler: Option<LlamaSampler>,
    /// GBNF constraint, checked against the proposed token first and applied
    /// to the whole vocabulary only when the proposal is rejected (as
    /// llama.cpp's common sampler does): same greedy result, far less work.
    grammar: Option<LlamaSampler>,
    out: Vec<u8>,
    n_gen: u32,
    max_tokens: u32,
    stop: Vec<String>,
    next: Option<LlamaToken>,
    /// Index in the current batch whose logits belong to this slot.
    i_batch: Option<i32>,
    /// Alternatives per generated token to report (0 = none).
    top_logprobs: usize,
    logprobs: Vec<TokenLogprobs>,
}

impl Slot {
    /// Start this slot's prompt after its first `reuse` tokens, whose KV cells
    /// the sequence already holds.
    fn start_after(&mut self, reuse: usize) {
        self.n_prompt_done = reuse;
        self.n_reused = reuse;
        self.n_past = reuse as i32;
        self.fed = self.prompt[..reuse].to_vec();
    }
}

/// Load a GGUF model and its id. Errors: missing file, not a GGUF, unsupported architecture.
fn load_model(path: &Path, what: &str) -> Result<(LlamaModel, String)> {
    let backend = llama_backend()?;
    let id = model_id_for(path)?;
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
        .with_context(|| format!("loading {what} {}", path.display()))?;
    Ok((model, id))
}

/// Threads to use: `n`, or every available core when `n` is 0.
fn resolve_threads(n: usize) -> i32 {
    if n > 0 {
        n as i32
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2)
    }
}

mod encoder;
mod engine;
mod prefix;
mod provider;
mod sampling;

pub use encoder::LlamaEncoder;
use prefix::*;
pub use provider::LlamaProvider;
use sampling::*;
