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

use anyhow::{bail, Context, Result};
use backforth_inference::backend::{
    Backend, FinishReason, GenOutput, GenRequest, Sink, TokenLogprobs,
};
use backforth_inference::model_ref::{split_model_ref, LORA_SEP};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

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

impl LlamaEngine {
    /// Load a GGUF file. Errors: missing file, not a GGUF, unsupported architecture.
    pub fn load(path: &Path, opts: LlamaOptions) -> Result<Self> {
        let (model, id) = load_model(path, "GGUF")?;
        let template = match model.chat_template(None) {
            Ok(t) => t,
            Err(_) => {
                tracing::warn!("{} has no chat template; using ChatML", path.display());
                LlamaChatTemplate::new("chatml")?
            }
        };
        Ok(LlamaEngine {
            model,
            template,
            id,
            adapter: None,
            opts,
            ignore_eos: false,
            last_stats: EngineStats::default(),
        })
    }

    /// Load a model reference: a GGUF path, or `base.gguf+lora:adapter.gguf`
    /// with one LoRA adapter (GGUF, as `backforth train` writes it) applied
    /// at scale 1. Errors: as [`LlamaEngine::load`]; an adapter that does not
    /// fit the base model; more than one adapter (llama-cpp-2 sets one per
    /// context: merge them first).
    pub fn load_ref(model: &str, opts: LlamaOptions) -> Result<Self> {
        let (base, adapters) = split_model_ref(model);
        let mut e = Self::load(Path::new(base), opts)?;
        match adapters.as_slice() {
            [] => {}
            [a] => e.set_adapter(Path::new(a), 1.0)?,
            _ => bail!(
                "{model}: one LoRA adapter per model at a time (got {})",
                adapters.len()
            ),
        }
        e.id = model_id_for_ref(model)?;
        Ok(e)
    }

    /// Apply a LoRA adapter GGUF at `scale` to every context made from now on.
    /// Errors: the file is not an adapter for this model's architecture and shapes.
    pub fn set_adapter(&mut self, path: &Path, scale: f32) -> Result<()> {
        anyhow::ensure!(
            path.exists(),
            "LoRA adapter {} does not exist",
            path.display()
        );
        let a = self.model.lora_adapter_init(path).map_err(|e| {
            anyhow::anyhow!(
                "loading LoRA adapter {}: {e} (see the log for llama.cpp's reason)",
                path.display()
            )
        })?;
        self.adapter = Some((std::sync::Mutex::new(a), scale));
        Ok(())
    }

    /// Logits over the vocabulary at every position of `tokens` (one
    /// sequence, from position 0), with the adapter applied:
    /// `tokens.len()` rows of `vocab` f32. For parity tests against other
    /// implementations. Errors: more tokens than the context holds.
    pub fn logits(&self, tokens: &[LlamaToken]) -> Result<Vec<Vec<f32>>> {
        anyhow::ensure!(
            !tokens.is_empty() && tokens.len() <= self.opts.context as usize,
            "{} tokens for a context of {}",
            tokens.len(),
            self.opts.context
        );
        let mut ctx = self.context()?;
        let mut out = Vec::with_capacity(tokens.len());
        let n_batch = self.opts.n_batch.max(1) as usize;
        for (c, chunk) in tokens.chunks(n_batch).enumerate() {
            let mut batch = LlamaBatch::new(chunk.len(), 1);
            for (j, t) in chunk.iter().enumerate() {
                batch.add(*t, (c * n_batch + j) as i32, &[0], true)?;
            }
            ctx.decode(&mut batch)?;
            for j in 0..chunk.len() {
                out.push(ctx.get_logits_ith(j as i32).to_vec());
            }
        }
        Ok(out)
    }

    /// The chat template applied to `messages`, as text; `add_assistant`
    /// appends the assistant turn's opening (as generation does).
    /// Errors: the template cannot be applied.
    pub fn render_chat(
        &self,
        messages: &[backforth_inference::ChatMessage],
        add_assistant: bool,
    ) -> Result<String> {
        let chat: Vec<LlamaChatMessage> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<_, _>>()?;
        self.model
            .apply_chat_template(&self.template, &chat, add_assistant)
            .context("applying chat template")
    }

    /// Tokenize text as it continues a sequence: no BOS, special tokens parsed.
    pub fn tokenize_plain(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), false, true)
    }

    /// The token that ends an assistant turn (end-of-turn, else end-of-sequence).
    pub fn end_of_turn(&self) -> LlamaToken {
        let v = self.model.vocab();
        let eot = v.eot();
        if eot.0 >= 0 {
            eot
        } else {
            v.eos()
        }
    }

    fn threads(&self) -> i32 {
        resolve_threads(self.opts.threads)
    }

    /// Apply the model's chat template (with the assistant prefix) and tokenize.
    /// Errors: template application failure.
    pub fn tokenize_chat(
        &self,
        messages: &[backforth_inference::ChatMessage],
    ) -> Result<Vec<LlamaToken>> {
        Ok(self.tokenize(&self.render_chat(messages, true)?))
    }

    /// Tokenize text, adding BOS when the vocabulary wants one and the text does not start with it.
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let bos =
            String::from_utf8_lossy(&vocab.token_to_piece(vocab.bos(), true, None)).to_string();
        let add_bos = vocab.should_add_bos() && (bos.is_empty() || !text.starts_with(&bos));
        vocab.tokenize(text.as_bytes(), add_bos, true)
    }

    fn sampler(&self, req: &GenRequest) -> LlamaSampler {
        let s = &req.sampling;
        let mut chain = Vec::new();
        if s.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if s.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(s.top_p, 1));
            }
            chain.push(LlamaSampler::temp(s.temperature));
            chain.push(LlamaSampler::dist((s.seed ^ (s.seed >> 32)) as u32));
        }
        LlamaSampler::chain_simple(chain)
    }

    fn new_slot(&self, req: GenRequest, seq: i32) -> Result<Slot, (u64, String)> {
        let tag = req.tag;
        let prompt = if req.raw_prompt {
            self.tokenize(&req.raw_text())
        } else {
            self.tokenize_chat(&req.messages)
                .map_err(|e| (tag, format!("{e:#}")))?
        };
        let ctx = self.opts.context as usize;
        if prompt.is_empty() || prompt.len() + 1 > ctx {
            return Err((
                tag,
                format!(
                    "prompt of {} tokens does not fit the per-sequence context of {ctx} tokens",
                    prompt.len()
                ),
            ));
        }
        let sampler = if req.sampling.temperature <= 0.0 {
            None
        } else {
            Some(self.sampler(&req))
        };
        let grammar = match &req.grammar {
            Some(g) => Some(
                LlamaSampler::grammar(&self.model, g, "root")
                    .map_err(|e| (tag, format!("invalid GBNF grammar: {e}")))?,
            ),
            None => None,
        };
        Ok(Slot {
            tag,
            seq,
            prompt,
            n_prompt_done: 0,
            n_reused: 0,
            fed: Vec::new(),
            n_past: 0,
            sampler,
            grammar,
            out: Vec::new(),
            n_gen: 0,
            max_tokens: req.sampling.max_tokens,
            stop: req.sampling.stop,
            next: None,
            i_batch: None,
            top_logprobs: req.top_logprobs as usize,
            logprobs: Vec::new(),
        })
    }

    fn context(&self) -> Result<LlamaContext<'_>> {
        let n_par = self.opts.batch_size.max(1) as u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.opts.context * n_par))
            .with_n_batch(self.opts.n_batch)
            .with_n_ubatch(self.opts.n_batch)
            .with_n_seq_max(n_par)
            .with_n_threads(self.threads())
            .with_n_threads_batch(self.threads());
        let mut ctx = self
            .model
            .new_context(llama_backend()?, params)
            .context("creating llama.cpp context")?;
        if let Some((a, scale)) = &self.adapter {
            let mut a = a.lock().unwrap_or_else(|p| p.into_inner());
            ctx.lora_adapter_set(&mut a, *scale)
                .map_err(|e| anyhow::anyhow!("applying the LoRA adapter: {e}"))?;
        }
        Ok(ctx)
    }
}

impl Backend for LlamaEngine {
    fn model_id(&self) -> String {
        self.id.clone()
    }

    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let mut stats = EngineStats::default();
        let mut ctx = self.context()?;
        // timings start after the KV cache is allocated, as llama-batched-bench's do
        let start = Instant::now();
        let n_par = self.opts.batch_size.max(1);
        let n_batch = self.opts.n_batch.max(1) as usize;
        let n_ctx_seq = self.opts.context as i32;
        let mut batch = LlamaBatch::new(n_batch.max(n_par), n_par as i32);
        let mut slots: Vec<Option<Slot>> = (0..n_par).map(|_| None).collect();
        // tokens whose KV each idle slot still holds (prefix reuse)
        let mut kept: Vec<Vec<LlamaToken>> = vec![Vec::new(); n_par];
        let mut first_wave_done = false;
        loop {
            // refill free slots. `None` from the iterator means "nothing right
            // now": it is asked again next step, so a server can feed requests
            // into a running batch; the call ends when it has nothing and no
            // slot is busy.
            let mut drained = false;
            for i in 0..n_par {
                while slots[i].is_none() && !drained {
                    match requests.next() {
                        None => drained = true,
                        Some(req) => match self.new_slot(req, i as i32) {
                            Ok(mut s) => {
                                let reuse = if self.opts.prefix_reuse {
                                    claim_prefix(&mut ctx, i, &slots, &mut kept, &s.prompt)?
                                } else {
                                    0
                                };
                                s.start_after(reuse);
                                stats.reused_prompt_tokens += reuse as u64;
                                slots[i] = Some(s);
                            }
                            Err((tag, msg)) => sink(tag, Err(msg))?,
                        },
                    }
                }
            }
            if slots.iter().all(Option::is_none) {
                break;
            }
            // build one batch: one token per generating sequence, then prompt chunks
            batch.clear();
            let mut budget = n_batch;
            for s in slots.iter_mut().flatten() {
                s.i_batch = None;
                if let Some(t) = s.next {
                    batch.add(t, s.n_past, &[s.seq], true)?;
                    s.fed.push(t);
                    s.n_past += 1;
                    s.i_batch = Some(batch.n_tokens() - 1);
                    budget = budget.saturating_sub(1);
                }
            }
            let mut has_prompt = false;
            for s in slots.iter_mut().flatten() {
                if budget == 0 {
                    break;
                }
                if s.next.is_none() && s.n_prompt_done < s.prompt.len() {
                    let take = budget.min(s.prompt.len() - s.n_prompt_done);
                    for j in 0..take {
                        let idx = s.n_prompt_done + j;
                        let last = idx + 1 == s.prompt.len();
                        batch.add(s.prompt[idx], s.n_past, &[s.seq], last)?;
                        s.n_past += 1;
                        if last {
                            s.i_batch = Some(batch.n_tokens() - 1);
                        }
                    }
                    s.fed
                        .extend_from_slice(&s.prompt[s.n_prompt_done..s.n_prompt_done + take]);
                    s.n_prompt_done += take;
                    stats.prompt_tokens += take as u64;
                    budget -= take;
                    has_prompt = true;
                }
            }
            let t0 = Instant::now();
            ctx.decode(&mut batch)
                .map_err(|e| anyhow::anyhow!("llama_decode failed: {e}"))?;
            let dt = t0.elapsed().as_secs_f64();
            if has_prompt {
                stats.prefill_s += dt;
            } else {
                stats.generate_s += dt;
                if !first_wave_done {
                    first_wave_done = true;
                    stats.first_prefill_done_s = (t0 - start).as_secs_f64();
                }
            }
            // sample for every slot whose logits were computed
            let vocab = self.model.vocab();
            for slot in slots.iter_mut() {
                let Some(s) = slot.as_mut() else { continue };
                let Some(ib) = s.i_batch else { continue };
                let tok = pick(s, &ctx, ib);
                if s.top_logprobs > 0 {
                    let lp = top_logprobs(ctx.get_logits_ith(ib), tok, s.top_logprobs, |t| {
                        piece(&vocab, t)
                    });
                    s.logprobs.push(lp);
                }
                let mut finish = None;
                if vocab.is_eog(tok) && !self.ignore_eos {
                    finish = Some(FinishReason::Stop);
                } else {
                    s.n_gen += 1;
                    stats.completion_tokens += 1;
                    s.out
                        .extend_from_slice(&vocab.token_to_piece(tok, false, None));
                    if !s.stop.is_empty() {
                        let text = String::from_utf8_lossy(&s.out);
                        if let Some(pos) =
                            s.stop.iter().filter_map(|st| text.find(st.as_str())).min()
                        {
                            let keep = text[..pos].to_string();
                            s.out = keep.into_bytes();
                            finish = Some(FinishReason::Stop);
                        }
                    }
                    if finish.is_none() && (s.n_gen >= s.max_tokens || s.n_past + 1 >= n_ctx_seq) {
                        finish = Some(FinishReason::Length);
                    }
                }
                s.next = Some(tok);
                if let Some(f) = finish {
                    let mut s = slot.take().expect("slot present");
                    if self.opts.prefix_reuse {
                        kept[s.seq as usize] = std::mem::take(&mut s.fed);
                    } else {
                        ctx.clear_kv_cache_seq(Some(s.seq as u32), None, None)?;
                    }
                    let out = GenOutput {
                        text: String::from_utf8_lossy(&s.out).into_owned(),
                        prompt_tokens: s.prompt.len() as u32,
                        completion_tokens: s.n_gen,
                        finish: f,
                        cached_prompt_tokens: s.n_reused as u32,
                        logprobs: std::mem::take(&mut s.logprobs),
                    };
                    sink(s.tag, Ok(out))?;
                }
            }
        }
        stats.wall_s = start.elapsed().as_secs_f64();
        if !first_wave_done {
            stats.first_prefill_done_s = stats.wall_s;
        }
        drop(ctx);
        self.last_stats = stats;
        Ok(())
    }
}

/// Shortest extra prefix, in tokens, that makes copying another sequence's KV
/// cache worth it. A copy between sequences with their own KV streams moves
/// the whole stream buffer (llama.cpp copies only full streams): about 37 MB
/// for a 0.5B model at 3,072 tokens, ~0.5 GB for a 7B one at 4,096, against
/// a prefill of 32 tokens (a fraction of a second on a CPU for a 0.5B model,
/// seconds for a 7B one).
const COPY_MIN_GAIN: usize = 32;

/// Give sequence `seq` (its slot free) the longest prefix of `prompt` whose
/// KV cache any sequence holds: its own cells from its last request, or a
/// copy of another sequence's (a busy slot's tokens so far, or an idle
/// slot's last request) when that covers at least [`COPY_MIN_GAIN`] more
/// tokens. So a rubric, system text or few-shot block prefilled in one slot
/// serves every slot. Returns how many prompt tokens are reused.
/// Errors: llama.cpp refused to clear or copy a sequence.
fn claim_prefix(
    ctx: &mut LlamaContext<'_>,
    seq: usize,
    slots: &[Option<Slot>],
    kept: &mut [Vec<LlamaToken>],
    prompt: &[LlamaToken],
) -> Result<usize> {
    let own = reusable_prefix(&kept[seq], prompt);
    let best_other = (0..slots.len())
        .filter(|&j| j != seq)
        .map(|j| {
            let held = match &slots[j] {
                Some(busy) => &busy.fed[..],
                None => &kept[j][..],
            };
            (j, reusable_prefix(held, prompt))
        })
        .max_by_key(|&(_, n)| n);
    let held = std::mem::take(&mut kept[seq]);
    match best_other {
        Some((src, n)) if n >= own + COPY_MIN_GAIN => copy_prefix(ctx, src, seq, n),
        _ => keep_shared_prefix(ctx, seq, &held, prompt),
    }
}

/// Make sequence `dst` hold exactly the first `n` cells of sequence `src`
/// (`llama_memory_seq_cp` of the whole sequence, then the tail dropped; the
/// buffer copy itself runs at the start of the next decode). Returns `n`, or
/// 0 when the cache cannot drop part of a sequence (recurrent models).
fn copy_prefix(ctx: &mut LlamaContext<'_>, src: usize, dst: usize, n: usize) -> Result<usize> {
    ctx.clear_kv_cache_seq(Some(dst as u32), None, None)?;
    ctx.copy_kv_cache_seq(src as i32, dst as i32, None, None)?;
    keep_first(ctx, dst, n)
}

/// Keep the KV cells of sequence `seq` that `prompt` shares with the tokens
/// `held` there and drop the rest; returns how many prompt tokens are reused
/// (0 when nothing is held, i.e. with prefix reuse off).
/// Errors: llama.cpp refused to clear the sequence.
fn keep_shared_prefix(
    ctx: &mut LlamaContext<'_>,
    seq: usize,
    held: &[LlamaToken],
    prompt: &[LlamaToken],
) -> Result<usize> {
    if held.is_empty() {
        return Ok(0);
    }
    keep_first(ctx, seq, reusable_prefix(held, prompt))
}

/// Drop every cell of sequence `seq` from position `n` on; returns `n`. A
/// cache that cannot drop part of a sequence (recurrent models) is cleared
/// instead and 0 returned. Errors: llama.cpp refused to clear the sequence.
fn keep_first(ctx: &mut LlamaContext<'_>, seq: usize, n: usize) -> Result<usize> {
    if ctx
        .clear_kv_cache_seq(Some(seq as u32), Some(n as u32), None)
        .unwrap_or(false)
    {
        return Ok(n);
    }
    ctx.clear_kv_cache_seq(Some(seq as u32), None, None)?;
    Ok(0)
}

/// How many leading tokens of `prompt` can come from a KV cache holding
/// `held`: the common prefix, less one, since the last prompt token must be
/// decoded again for its logits.
fn reusable_prefix(held: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    let common = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    common.min(prompt.len().saturating_sub(1))
}

/// Sample the next token of a slot: propose without the grammar, keep the
/// proposal if the grammar accepts it, else sample again from the
/// grammar-constrained distribution.
fn pick(s: &mut Slot, ctx: &LlamaContext<'_>, ib: i32) -> LlamaToken {
    let proposal = match s.sampler.as_mut() {
        Some(sm) => sm.sample(ctx, ib),
        None => argmax(ctx.get_logits_ith(ib)),
    };
    let Some(g) = s.grammar.as_mut() else {
        return proposal;
    };
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(proposal, 1.0, 0.0)], false);
    one.apply_sampler(g);
    let tok = if one.data[0].logit().is_finite() {
        proposal
    } else {
        let mut all = ctx.token_data_array_ith(ib);
        all.apply_sampler(g);
        match s.sampler.as_mut() {
            Some(sm) => {
                all.apply_sampler(sm);
                all.selected_token()
                    .unwrap_or_else(|| all.sample_token_greedy())
            }
            None => all.sample_token_greedy(),
        }
    };
    g.accept(tok);
    tok
}

/// The text of one token (lossy: a piece may be part of a UTF-8 character).
fn piece(vocab: &llama_cpp_2::vocab::LlamaVocab<'_>, t: LlamaToken) -> String {
    String::from_utf8_lossy(&vocab.token_to_piece(t, false, None)).into_owned()
}

/// Log-softmax of raw `logits` (the model's distribution before grammar and
/// sampling) at the chosen token `tok` and the `k` most likely tokens.
/// One pass for the maximum, one for the normaliser, a partial sort for the
/// top k: O(vocabulary) per generated token, paid only when asked for.
fn top_logprobs(
    logits: &[f32],
    tok: LlamaToken,
    k: usize,
    text: impl Fn(LlamaToken) -> String,
) -> TokenLogprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(idx.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
    }
    idx.truncate(k);
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let lp = |i: usize| logits.get(i).map_or(f32::NEG_INFINITY, |l| l - log_z);
    TokenLogprobs {
        token: text(tok),
        logprob: lp(tok.0 as usize),
        top: idx
            .into_iter()
            .map(|i| (text(LlamaToken(i as i32)), lp(i)))
            .collect(),
    }
}

/// Index of the largest logit (ties: the lowest index, as llama.cpp's greedy sampler).
fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    LlamaToken(best as i32)
}

/// A BERT-family sentence encoder run by llama.cpp's own `bert` graph
/// (non-causal, no KV cache, mean pooling inside llama.cpp): the body behind
/// [`backforth_inference::encoder::TokenEncoder`]. Token ids come from the
/// caller's tokenizer, so they are exactly the ids sentence-transformers
/// would use; the GGUF needs only the weights and a vocabulary of the right
/// size (`backforth_embed::write_gguf` makes one from a model folder).
pub struct LlamaEncoder {
    model: LlamaModel,
    id: String,
    threads: usize,
    /// Most tokens per encode call (see [`LlamaEncoder::encode_chunks`]);
    /// 256 was fastest for all-MiniLM-L6-v2 on 2 cores (128: up to 20%
    /// slower at small batches, 512: 15–25% slower; BENCHMARKS.md).
    pub token_budget: usize,
}

/// Most sequences per llama.cpp encode call (each takes a sequence id and a
/// row of the pooling matrix); with the 256-token budget it binds only for
/// very short texts.
const ENCODE_SEQS: usize = 32;

impl LlamaEncoder {
    /// Load an encoder GGUF. `threads` = 0: all cores.
    /// Errors: missing file, not a GGUF, not an encoder llama.cpp knows.
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let (model, id) = load_model(path, "encoder GGUF")?;
        Ok(LlamaEncoder {
            model,
            id,
            threads,
            token_budget: 256,
        })
    }

    /// Encode `seqs` in chunks of at most [`ENCODE_SEQS`] sequences and
    /// `token_budget` tokens (a longer sequence goes alone). Small chunks are
    /// faster: the bert graph attends over every token of an encode call
    /// (masked per sequence), so its cost grows with the square of the
    /// chunk's tokens.
    fn encode_chunks(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        use llama_cpp_2::context::params::LlamaPoolingType;
        let budget = self.token_budget;
        let mut chunks: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (i, s) in seqs.iter().enumerate() {
            if i > start && (tokens + s.len() > budget || i - start == ENCODE_SEQS) {
                chunks.push(start..i);
                (start, tokens) = (i, 0);
            }
            tokens += s.len();
        }
        if start < seqs.len() {
            chunks.push(start..seqs.len());
        }
        let threads = resolve_threads(self.threads);
        let mut out = Vec::with_capacity(seqs.len());
        // one context per chunk, sized for it (see the note on n below)
        for c in chunks {
            let part = &seqs[c];
            // llama.cpp reserves the pooling graph for an equal split of the
            // ubatch over the sequences: it aborts (ggml shape assertion)
            // unless the ubatch size is a multiple of the sequence count, and
            // for a single sequence; so at least two, and n a multiple of them
            let n_seq = part.len().max(2) as u32;
            let n = (part.iter().map(Vec::len).sum::<usize>().max(1) as u32)
                .next_multiple_of(64)
                .next_multiple_of(n_seq);
            // llama.cpp pads each sequence's share of the context to a
            // multiple of 256 and, when n_ctx is not that share times the
            // sequence count, resets it and warns (once per context, so once
            // per chunk): size it as llama.cpp will, without the warning
            let per_seq = 256 * n_seq;
            let params = LlamaContextParams::default()
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::Mean)
                .with_n_ctx(NonZeroU32::new(n.next_multiple_of(per_seq)))
                .with_n_batch(n)
                .with_n_ubatch(n)
                .with_n_seq_max(n_seq)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let mut ctx = self
                .model
                .new_context(llama_backend()?, params)
                .context("creating the llama.cpp encoder context")?;
            let mut batch = LlamaBatch::new(n as usize, n_seq as i32);
            for (j, s) in part.iter().enumerate() {
                for (p, &t) in s.iter().enumerate() {
                    batch.add(LlamaToken(t as i32), p as i32, &[j as i32], true)?;
                }
            }
            ctx.encode(&mut batch)
                .map_err(|e| anyhow::anyhow!("llama_encode failed: {e}"))?;
            for j in 0..part.len() {
                out.push(
                    ctx.embeddings_seq_ith(j as i32)
                        .map_err(|e| anyhow::anyhow!("pooled embedding {j}: {e}"))?
                        .to_vec(),
                );
            }
        }
        Ok(out)
    }
}

impl backforth_inference::encoder::TokenEncoder for LlamaEncoder {
    fn encoder_id(&self) -> String {
        format!("llama.cpp:{}", self.id)
    }

    fn encode_ids(&mut self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.encode_chunks(seqs)
    }
}

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
