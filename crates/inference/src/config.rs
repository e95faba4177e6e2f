//! Engine settings: the `[model]`, `[backend]`, `[http]` and `[cache]`
//! sections of the run configuration. They live here, beside the backend
//! trait, because every engine reads them and the method only passes them on;
//! `backforth::config::Config` composes them with the other sections.

use serde::{Deserialize, Serialize};

/// The embedded model and how it runs. Applies to every stage unless the stage sets `model`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Path to a GGUF file.
    pub path: String,
    /// CPU threads for decoding (0 = all available cores).
    pub threads: usize,
    /// Sequences decoded together in one batch (continuous batching slots).
    pub batch_size: usize,
    /// Context tokens per sequence (prompt + output).
    pub context: u32,
    /// Maximum tokens submitted to one llama.cpp decode call.
    pub n_batch: u32,
    /// Run seed; per-request seeds are derived from it and the record id.
    pub seed: u64,
    /// Send prompts as plain text (message contents joined by blank lines)
    /// instead of applying a chat template: for base or fine-tuned models
    /// without a chat format (e.g. a Humpback backward model); with the HTTP
    /// backend, use together with `http.api = "completions"`.
    pub raw_prompt: bool,
    /// Keep each sequence slot's KV cache after a request ends and prefill
    /// only what the next prompt in that slot does not share with it; a
    /// longer shared prefix held by another slot (at least 32 tokens more) is
    /// copied from there (the templates put the fixed text first, so the
    /// system prompt and rubric are computed about once, not once per
    /// request). Not part of the
    /// stage key: outputs are the same either way up to float rounding.
    pub prefix_reuse: bool,
    /// LoRA adapters (GGUF, as `backforth train` writes them) applied to
    /// `model.path` on the embedded backend; at most one per model. The
    /// adapter's hash is part of the model id, so stage keys and cached
    /// responses change with it. Stages may name their own (`<stage>.lora`).
    #[serde(default)]
    pub lora: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: String::new(),
            threads: 0,
            batch_size: 4,
            context: 4096,
            n_batch: 512,
            seed: 42,
            raw_prompt: false,
            prefix_reuse: true,
            lora: Vec::new(),
        }
    }
}

/// Which runner executes the stages.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// llama.cpp in-process; `model.path` (or `<stage>.model`) is a GGUF file.
    #[default]
    Embedded,
    /// OpenAI-compatible HTTP servers (`[http]`); `model.path` (or `<stage>.model`)
    /// is the model name the server knows.
    Http,
}

/// Which OpenAI-compatible endpoint the HTTP backend calls.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HttpApi {
    /// `/chat/completions` with `messages` (the server applies the chat template).
    #[default]
    Chat,
    /// `/completions` with a plain-text `prompt` (message contents joined by blank lines).
    Completions,
}

/// How a GBNF grammar is passed to an HTTP server.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GrammarField {
    /// Not sent (outputs are still parsed strictly).
    #[default]
    None,
    /// llama.cpp server and `backforth serve`: `"grammar": "<gbnf>"`.
    LlamaCpp,
    /// vLLM ≥ 0.10.2 (the only form from v0.12 on):
    /// `"structured_outputs": {"grammar": "<gbnf>"}`. vLLM's xgrammar backend
    /// reads GBNF.
    Vllm,
    /// vLLM before v0.12: `"guided_grammar": "<gbnf>"` (removed in v0.12).
    VllmLegacy,
    /// SGLang: `"ebnf": "<gbnf>"` (its default xgrammar backend reads GBNF).
    Sglang,
}

/// The backend section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    pub kind: BackendKind,
}

/// OpenAI-compatible servers (`/v1/chat/completions`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Base URLs of one or more replicas, e.g. `http://gpu1:8000/v1`; requests are spread over the healthy ones.
    pub urls: Vec<String>,
    /// `chat` (`/chat/completions`) or `completions` (`/completions`).
    pub api: HttpApi,
    /// Name of the environment variable holding the API key (the key itself is never in config or logs).
    pub api_key_env: String,
    /// Requests in flight at once, over all replicas. Also the starting
    /// per-replica limit: a replica that answers 429 has its limit halved,
    /// one that takes more than half of `timeout_s` to answer has it cut by a
    /// quarter (once per round trip), and each quick success raises it by
    /// 1/limit again (AIMD), up to this value.
    pub concurrency: usize,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
    /// Retries after the first attempt (429, 5xx, timeouts, broken or malformed responses).
    pub max_retries: u32,
    /// Exponential backoff base and cap, milliseconds (full jitter).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Client-side request rate limit per minute (0 = none).
    pub requests_per_minute: u32,
    /// How grammars (curation) are passed to the server.
    pub grammar_field: GrammarField,
    /// Seconds an unreachable replica is left out before one probe request is
    /// sent to it (connection refused or reset, timeout, 502/503/504). Each
    /// failed probe doubles the wait, up to `cooldown_max_s`; the first answer
    /// brings the replica back for every waiting request. Failures of requests
    /// that were already in flight when the outage began count once, not once each.
    pub cooldown_s: f64,
    /// Longest wait between probes of an unreachable replica, seconds: the
    /// most idle time after a server comes back.
    pub cooldown_max_s: f64,
    /// How long requests wait while no replica is reachable before they fail,
    /// seconds. Connection failures during an outage do not use up a request's
    /// `max_retries`; this bounds them instead.
    pub max_outage_s: f64,
    /// Optional prices in USD per million prompt / completion tokens; when set,
    /// the run summary reports the cost of each stage.
    pub usd_per_million_prompt_tokens: f64,
    pub usd_per_million_completion_tokens: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            urls: vec!["http://127.0.0.1:8080/v1".into()],
            api: HttpApi::Chat,
            api_key_env: "OPENAI_API_KEY".into(),
            concurrency: 64,
            timeout_s: 600.0,
            max_retries: 8,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            requests_per_minute: 0,
            grammar_field: GrammarField::None,
            cooldown_s: 1.0,
            cooldown_max_s: 10.0,
            max_outage_s: 600.0,
            usd_per_million_prompt_tokens: 0.0,
            usd_per_million_completion_tokens: 0.0,
        }
    }
}

/// The response cache (SQLite).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    pub enabled: bool,
    /// SQLite file; empty = `<output.dir>/cache.sqlite`. Point several runs at one file to share it.
    pub path: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            path: String::new(),
        }
    }
}
