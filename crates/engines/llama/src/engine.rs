//! The continuous-batching scheduler: `LlamaEngine` loading, templates, tokenizing, and `Backend::generate` (slots, chunked prefill, stop strings, per-request samplers and grammars).

use crate::*;
use anyhow::{bail, Context, Result};
use backforth_inference::backend::{Backend, FinishReason, GenOutput, GenRequest, Sink};
use backforth_inference::model_ref::split_model_ref;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

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
