//! The backend trait every model runner implements (the embedded llama.cpp
//! engine, OpenAI-compatible HTTP servers, offline batch files), with its
//! request and response types. Stages only see this trait.

use serde::{Deserialize, Serialize};

/// Sampling parameters of one generation (recorded with every output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1].
    pub top_p: f32,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Per-request RNG seed (derived from the run seed and the record id).
    pub seed: u64,
    /// Stop strings; generation ends before the first occurrence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// One chat message (`role` is "system", "user" or "assistant").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A generation request. `tag` is the caller's handle, echoed back on completion.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub tag: u64,
    pub messages: Vec<ChatMessage>,
    pub sampling: Sampling,
    /// Optional GBNF grammar (llama.cpp syntax, root rule `root`) constraining the output.
    pub grammar: Option<String>,
    /// Treat the messages as a plain-text prompt (contents joined by blank
    /// lines, no chat template): base or fine-tuned models without a chat
    /// format, and the `/v1/completions` API. See [`GenRequest::raw_text`].
    pub raw_prompt: bool,
    /// Return the log-probabilities of this many most likely tokens at each
    /// generated position ([`GenOutput::logprobs`]); 0 = none (the default,
    /// and free). Engines report the model's distribution before the grammar
    /// and sampling chain, as the OpenAI API's `top_logprobs` does.
    pub top_logprobs: u8,
}

impl GenRequest {
    /// A chat request with no grammar, no raw prompt and no log-probabilities.
    pub fn chat(tag: u64, messages: Vec<ChatMessage>, sampling: Sampling) -> Self {
        GenRequest {
            tag,
            messages,
            sampling,
            grammar: None,
            raw_prompt: false,
            top_logprobs: 0,
        }
    }

    /// The plain-text prompt: message contents joined by blank lines.
    pub fn raw_text(&self) -> String {
        self.messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl FinishReason {
    /// "stop" / "length", the OpenAI API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A completed generation.
#[derive(Debug, Clone)]
pub struct GenOutput {
    pub text: String,
    /// Tokens of the prompt as the engine saw it (after the chat template).
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish: FinishReason,
    /// Prompt tokens the engine did not prefill: a KV-cache prefix reused
    /// from an earlier request (embedded engine; servers that report
    /// `usage.prompt_tokens_details.cached_tokens`), or all of them on a
    /// response-cache hit. At most `prompt_tokens`.
    pub cached_prompt_tokens: u32,
    /// One entry per generated token when the request asked for
    /// `top_logprobs` (and the engine or server gives them); empty otherwise.
    pub logprobs: Vec<TokenLogprobs>,
}

/// The model's distribution at one generated position: the chosen token and
/// the `top_logprobs` most likely ones (natural-log probabilities, ≤ 0, most
/// likely first). Token texts are the engine's pieces (may carry a leading
/// space, may be part of a UTF-8 character).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprobs {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// Receives each finished request as soon as it completes (in completion order,
/// not submission order). `Err(msg)` is a per-request failure (e.g. prompt longer
/// than the context); returning `Err` from the sink aborts the whole call.
pub type Sink<'a> = dyn FnMut(u64, Result<GenOutput, String>) -> anyhow::Result<()> + 'a;

/// A model runner.
///
/// `generate` pulls requests lazily from `requests` whenever it has a free
/// slot (so a backend with continuous batching keeps all slots busy and memory
/// stays bounded) and reports each completion to `sink` immediately, which lets
/// stages persist results one by one (kill-safe resume). `None` from
/// `requests` means "nothing right now": a backend asks again after a
/// completion (a streamed chain of stages has new requests once a result
/// arrives) and returns when it gets `None` with nothing in flight.
pub trait Backend {
    /// Identifier recorded in provenance and hashed into stage keys
    /// (e.g. GGUF file name + size, or a server's model name).
    fn model_id(&self) -> String;

    /// Run all requests. Errors: only fatal ones (model cannot run, sink failed).
    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        sink: &mut Sink<'_>,
    ) -> anyhow::Result<()>;
}

/// Supplies backends by model path or name; the pipeline and the evaluation
/// commands never know what runs them.
pub trait BackendProvider {
    /// A cheap, stable model id for stage keys (must not need to load the model).
    fn model_id(&mut self, model: &str) -> anyhow::Result<String>;
    /// The backend for a model path (loaded on first use, then reused).
    fn backend(&mut self, model: &str) -> anyhow::Result<&mut dyn Backend>;
    /// The sentence embedder in folder `dir` (loaded on first use, then
    /// reused), for the semantic relevance check. Errors: this provider has
    /// none (the default), or the folder does not load.
    fn embedder(&mut self, dir: &str) -> anyhow::Result<&mut dyn crate::encoder::SentenceEmbedder> {
        anyhow::bail!("{dir}: this backend provider has no sentence embedder")
    }
}
