//! Training examples: a chat prompt and the completion the model should
//! learn to write, with the loss on the completion tokens only.
//!
//! Builders for the three uses in self-alignment (Li et al. 2023 §2):
//! forward pairs (instruction → response: the seed model M_0 and M_1),
//! backward pairs (response → instruction: the backward model M_yx, prompted
//! exactly as the `backtranslate` stage prompts it in `finetuned` mode), and
//! a run's exported `dataset.jsonl` (chat `messages`).
//!
//! Tokenisation goes through llama.cpp's tokenizer and the GGUF's own chat
//! template ([`ChatTokenizer`] for `LlamaEngine`), so the ids trained on are
//! the ids the engine sees at inference.

use anyhow::{Context, Result};
use backforth::prompt::PromptTemplate;
use backforth::seeds::Seed;
use backforth_corpus::readers::for_each_line;
use backforth_corpus::readers::InputStats;
use backforth_inference::ChatMessage;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Humpback's system tags (Li et al. 2023 §2.3, "system prompts"): one for
/// human-written seed pairs, one for augmented web pairs, so a model trained
/// on both can be asked for either style.
pub const SEED_TAG: &str = "Answer in the style of an AI Assistant.";
/// See [`SEED_TAG`].
pub const WEB_TAG: &str = "Answer with knowledge from web search.";

/// Longest input line read for training data (seed or chat JSONL), bytes;
/// longer lines are skipped and counted.
pub const MAX_LINE_BYTES: usize = 1 << 24;

/// One training example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The prompt's messages (system and user turns; no assistant turn).
    pub messages: Vec<ChatMessage>,
    /// The text the model learns to write after the prompt.
    pub completion: String,
    /// Where it came from (`file:line`), for error messages.
    pub source: String,
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

/// Forward examples (instruction → response), with `system` as a system
/// turn when given (e.g. [`SEED_TAG`]).
pub fn forward(seeds: &[Seed], system: Option<&str>) -> Vec<Example> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut messages = Vec::new();
            if let Some(t) = system {
                messages.push(msg("system", t));
            }
            messages.push(msg("user", &s.instruction));
            Example {
                messages,
                completion: s.response.clone(),
                source: format!("seed {}", i + 1),
            }
        })
        .collect()
}

/// Backward examples (response → instruction) for the backward model M_yx,
/// rendered with the `backtranslate_finetuned` template (the built-in one,
/// or `template` when given) so training and the backtranslate stage prompt
/// alike. Errors: the template does not render.
pub fn backward(seeds: &[Seed], template: Option<&Path>) -> Result<Vec<Example>> {
    let t = match template {
        Some(p) => PromptTemplate::load(&p.to_string_lossy(), "backtranslate_finetuned")?,
        None => PromptTemplate::builtin("backtranslate_finetuned")?,
    };
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(Example {
                messages: t.render(serde_json::json!({ "text": s.response }))?,
                completion: s.instruction.clone(),
                source: format!("seed {}", i + 1),
            })
        })
        .collect()
}

/// Examples from a JSONL file (optionally compressed) of chat `messages`
/// (backforth's `dataset.jsonl`, or any file in that shape): the last
/// message must be the assistant's and becomes the completion; the others
/// are the prompt. `system` replaces (or adds) the system turn when given
/// ([`WEB_TAG`] for augmented data). Lines over `max_line_bytes`, not JSON,
/// without messages or not ending with an assistant turn are skipped and
/// counted in `stats` by reason, with file and line (the same bounded line
/// reader as seed files). Errors: the file cannot be opened.
pub fn from_messages_jsonl(
    path: &Path,
    system: Option<&str>,
    max_line_bytes: usize,
    stats: &mut InputStats,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for_each_line(
        path,
        max_line_bytes,
        stats,
        "example",
        "",
        |at, buf, stats| {
            #[derive(Deserialize)]
            struct Row {
                messages: Vec<ChatMessage>,
            }
            let mut messages = match serde_json::from_slice::<Row>(buf) {
                Ok(r) => r.messages,
                Err(e) => {
                    stats.skip(
                        "example_not_messages_json",
                        format!("{at}: not a JSON object with messages ({e}), skipped"),
                    );
                    return;
                }
            };
            let Some(last) = messages
                .pop()
                .filter(|m| m.role == "assistant" && !m.content.is_empty())
            else {
                stats.skip(
                    "example_no_assistant_turn",
                    format!("{at}: the last message is not a non-empty assistant turn, skipped"),
                );
                return;
            };
            if messages.iter().all(|m| m.role != "user") {
                stats.skip(
                    "example_no_user_turn",
                    format!("{at}: no user turn before the answer, skipped"),
                );
                return;
            }
            if let Some(t) = system {
                messages.retain(|m| m.role != "system");
                messages.insert(0, msg("system", t));
            }
            stats.documents += 1;
            out.push(Example {
                messages,
                completion: last.content,
                source: at,
            });
        },
    )
    .with_context(|| format!("opening {}", path.display()))?;
    Ok(out)
}

/// An example as token ids: `ids[..n_prompt]` is the prompt (loss-free),
/// `ids[n_prompt..]` the completion including the template's end-of-turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub n_prompt: usize,
}

/// Turns examples into ids exactly as the inference engine would.
pub trait ChatTokenizer {
    /// Encode one example. Errors: the chat template cannot be applied.
    fn encode(&self, ex: &Example) -> Result<Encoded>;
}

impl ChatTokenizer for backforth_llama::LlamaEngine {
    /// The prompt is the chat template applied with the assistant prefix (as
    /// `generate` sends it); the completion is what the template adds when the
    /// assistant turn is rendered whole, so it ends with the template's
    /// end-of-turn tokens and the model learns to stop. When a template does
    /// not render the prompt as a prefix of the whole, the completion is
    /// tokenized alone and an end-of-generation token appended.
    fn encode(&self, ex: &Example) -> Result<Encoded> {
        let prompt = self.tokenize_chat(&ex.messages)?;
        let mut all = ex.messages.clone();
        all.push(msg("assistant", &ex.completion));
        let whole = self.tokenize(&self.render_chat(&all, false)?);
        let ids: Vec<u32> = if whole.len() > prompt.len() && whole[..prompt.len()] == prompt[..] {
            whole.iter().map(|t| t.0 as u32).collect()
        } else {
            let mut v: Vec<u32> = prompt.iter().map(|t| t.0 as u32).collect();
            v.extend(
                self.tokenize_plain(&ex.completion)
                    .iter()
                    .map(|t| t.0 as u32),
            );
            v.push(self.end_of_turn().0 as u32);
            v
        };
        Ok(Encoded {
            ids,
            n_prompt: prompt.len(),
        })
    }
}
