//! `backforth bench-grammar`: what grammar-constrained decoding costs on the
//! method's own prompts. The prompts come from a finished run folder (the
//! pairs in `stages/rewrite.jsonl`): curation and rewriting with their
//! built-in templates, and the pairwise judge with the rewrite against the
//! original text. Each task runs greedy at batch size 1, once without and once
//! with its grammar, on the same prompts; batch 1 keeps every decode call
//! either a prompt chunk or one generated token, so the seconds per
//! generated token are the decode cost alone.

use crate::cli::GrammarBenchArgs;
use anyhow::Result;
use backforth::prompt::{curate_grammar, PromptTemplate, REWRITE_GRAMMAR};
use backforth::record::{ParseStatus, Stage};
use backforth_inference::{Backend, GenRequest, Sampling};
use backforth_llama::{LlamaEngine, LlamaOptions};

/// One task's prompts, grammar and token budget.
struct Task {
    name: &'static str,
    grammar: String,
    max_tokens: u32,
    prompts: Vec<Vec<backforth_inference::ChatMessage>>,
}

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: GrammarBenchArgs) -> Result<()> {
    let path = a.run.join("stages/rewrite.jsonl");
    let mut pairs = Vec::new();
    for r in backforth::store::RecordLines::open(&path)?.flatten() {
        let Some(g) = r.generation(Stage::Rewrite.name()) else {
            continue;
        };
        if !matches!(g.parse, ParseStatus::Ok) {
            continue;
        }
        let (Some(instruction), Some(rewrite)) = (r.instruction(), g.value.as_deref()) else {
            continue;
        };
        pairs.push((instruction.to_string(), r.text.clone(), rewrite.to_string()));
        if pairs.len() == a.n {
            break;
        }
    }
    anyhow::ensure!(
        !pairs.is_empty(),
        "{}: no parsed rewrites to build prompts from",
        path.display()
    );
    let curate = PromptTemplate::builtin("curate")?;
    let rewrite = PromptTemplate::builtin("rewrite")?;
    let judge = PromptTemplate::from_source(
        "judge.j2",
        backforth_measure::eval::JUDGE_TEMPLATE.to_string(),
    )?;
    let render = |t: &PromptTemplate,
                  f: &dyn Fn(&(String, String, String)) -> serde_json::Value|
     -> Result<Vec<_>> { pairs.iter().map(|p| t.render(f(p))).collect() };
    let tasks = [
        Task {
            name: "curate",
            grammar: curate_grammar(160),
            max_tokens: 160,
            prompts: render(
                &curate,
                &|p| serde_json::json!({"instruction": p.0, "text": p.1}),
            )?,
        },
        Task {
            name: "rewrite",
            grammar: REWRITE_GRAMMAR.to_string(),
            max_tokens: a.rewrite_tokens,
            prompts: render(
                &rewrite,
                &|p| serde_json::json!({"instruction": p.0, "text": p.1}),
            )?,
        },
        Task {
            name: "judge",
            grammar: backforth_measure::eval::JUDGE_GRAMMAR.to_string(),
            max_tokens: 16,
            prompts: render(
                &judge,
                &|p| serde_json::json!({"instruction": p.0, "output_a": p.2, "output_b": p.1}),
            )?,
        },
    ];
    let opts = LlamaOptions {
        threads: a.threads,
        batch_size: 1,
        context: a.context,
        n_batch: 512,
        prefix_reuse: false,
    };
    let mut engine = LlamaEngine::load(&a.model, opts)?;
    eprintln!(
        "model {} | {} prompts per task from {} | batch 1, greedy",
        Backend::model_id(&engine),
        pairs.len(),
        path.display()
    );
    println!("| task | grammar | requests | generated tokens | decode s | ms / generated token | wall s | overhead per token |");
    println!("|---|---|--:|--:|--:|--:|--:|--:|");
    for t in &tasks {
        let mut free_ms = 0.0;
        for constrained in [false, true] {
            let mut reqs = t.prompts.iter().enumerate().map(|(i, m)| GenRequest {
                tag: i as u64,
                messages: m.clone(),
                sampling: Sampling {
                    temperature: 0.0,
                    top_p: 1.0,
                    max_tokens: t.max_tokens,
                    seed: i as u64,
                    stop: vec![],
                },
                grammar: constrained.then(|| t.grammar.clone()),
                raw_prompt: false,
                top_logprobs: 0,
            });
            let mut failed = 0;
            engine.generate(&mut reqs, &mut |_, r| {
                failed += r.is_err() as usize;
                Ok(())
            })?;
            let s = &engine.last_stats;
            anyhow::ensure!(s.completion_tokens > 0, "{}: nothing generated", t.name);
            let ms = 1000.0 * s.generate_s / s.completion_tokens as f64;
            let overhead = if constrained {
                format!("{:+.1}%", 100.0 * (ms / free_ms - 1.0))
            } else {
                "–".into()
            };
            if !constrained {
                free_ms = ms;
            }
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                t.name,
                if constrained { "on" } else { "off" },
                t.prompts.len() - failed,
                s.completion_tokens,
                s.generate_s,
                ms,
                s.wall_s,
                overhead
            );
        }
    }
    Ok(())
}
