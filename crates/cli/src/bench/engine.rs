//! `backforth bench`: prompt and generated tokens/s of the embedded engine at several batch sizes.

use crate::cli::BenchArgs;
use anyhow::{Context, Result};
use backforth_inference::{Backend, ChatMessage, GenRequest, Sampling};
use backforth_llama::{LlamaEngine, LlamaOptions};
use serde::Serialize;

#[derive(Serialize)]
struct Row {
    batch: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tok_s: f64,
    gen_tok_s: f64,
    total_tok_s: f64,
    wall_s: f64,
}

/// A user message whose chat-templated prompt is as close as possible to `n` tokens.
fn message_of_len(engine: &LlamaEngine, n: usize) -> Result<(Vec<ChatMessage>, usize)> {
    let words =
        "the quick brown fox jumps over a lazy dog while seven bakers count loaves of bread";
    let mk = |k: usize| {
        let text: Vec<&str> = words.split(' ').cycle().take(k).collect();
        vec![ChatMessage {
            role: "user".into(),
            content: text.join(" "),
        }]
    };
    let (mut lo, mut hi) = (1usize, n * 2 + 8);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if engine.tokenize_chat(&mk(mid))?.len() < n {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    // the longest message not over n tokens (templates add a fixed overhead)
    let mut k = lo;
    while k > 1 && engine.tokenize_chat(&mk(k))?.len() > n {
        k -= 1;
    }
    let m = mk(k);
    let len = engine.tokenize_chat(&m)?.len();
    Ok((m, len))
}

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: BenchArgs) -> Result<()> {
    let max_b = *a.batch_sizes.iter().max().context("no batch sizes")?;
    let ctx = (a.prompt_tokens as u32 + a.gen_tokens + 16).next_multiple_of(256);
    let mut rows = Vec::new();
    let mut engine = LlamaEngine::load(
        &a.model,
        LlamaOptions {
            threads: a.threads,
            batch_size: max_b,
            context: ctx,
            n_batch: a.n_batch,
            prefix_reuse: false,
        },
    )?;
    engine.ignore_eos = true;
    let (msg, pp) = message_of_len(&engine, a.prompt_tokens)?;
    eprintln!(
        "model {} | prompt {pp} tokens | gen {} tokens | threads {}",
        Backend::model_id(&engine),
        a.gen_tokens,
        a.threads
    );
    println!("|   B |  PP |  TG | prompt tok/s | gen tok/s | total tok/s | wall s |");
    println!("|----:|----:|----:|-------------:|----------:|------------:|-------:|");
    for &b in &a.batch_sizes {
        engine.opts.batch_size = b;
        let mut reqs = (0..b as u64).map(|i| GenRequest {
            tag: i,
            messages: msg.clone(),
            sampling: Sampling {
                temperature: 0.0,
                top_p: 1.0,
                max_tokens: a.gen_tokens,
                seed: i,
                stop: vec![],
            },
            grammar: None,
            raw_prompt: false,
            top_logprobs: 0,
        });
        let mut n_done = 0;
        engine.generate(&mut reqs, &mut |_, r| {
            r.map_err(anyhow::Error::msg)?;
            n_done += 1;
            Ok(())
        })?;
        anyhow::ensure!(n_done == b, "only {n_done} of {b} sequences finished");
        let s = engine.last_stats.clone();
        let row = Row {
            batch: b,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            prompt_tok_s: s.prompt_tokens as f64 / s.prefill_s.max(1e-9),
            gen_tok_s: s.completion_tokens as f64 / s.generate_s.max(1e-9),
            total_tok_s: (s.prompt_tokens + s.completion_tokens) as f64 / s.wall_s.max(1e-9),
            wall_s: s.wall_s,
        };
        println!(
            "| {:>3} | {:>3} | {:>3} | {:>12.1} | {:>9.1} | {:>11.1} | {:>6.2} |",
            b, pp, a.gen_tokens, row.prompt_tok_s, row.gen_tok_s, row.total_tok_s, row.wall_s
        );
        rows.push(row);
    }
    if let Some(p) = a.json {
        std::fs::write(&p, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
