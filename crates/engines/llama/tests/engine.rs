//! The embedded engine on a real GGUF (SmolLM2-135M): continuous batching
//! returns every request exactly once, per-request failures do not stop the
//! batch, grammars hold, batch-1 generation is reproducible, stop strings cut.

use backforth_inference::backend::{Backend, ChatMessage, FinishReason, GenRequest};
use backforth_inference::Sampling;
use backforth_llama::{LlamaEngine, LlamaOptions};
use std::collections::HashMap;
use std::path::PathBuf;

fn model() -> PathBuf {
    let p = std::env::var("BACKFORTH_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let c = std::env::var("BACKFORTH_CACHE")
                .unwrap_or_else(|_| format!("{}/.cache/backforth", std::env::var("HOME").unwrap()));
            PathBuf::from(c).join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-assets.sh test-model",
        p.display()
    );
    p
}

fn req(tag: u64, text: &str, max_tokens: u32, temperature: f32) -> GenRequest {
    GenRequest {
        tag,
        messages: vec![ChatMessage {
            role: "user".into(),
            content: text.into(),
        }],
        sampling: Sampling {
            temperature,
            top_p: 0.9,
            max_tokens,
            seed: tag,
            stop: vec![],
        },
        grammar: None,
        raw_prompt: false,
        top_logprobs: 0,
    }
}

fn run(
    e: &mut LlamaEngine,
    reqs: Vec<GenRequest>,
) -> HashMap<u64, Result<backforth_inference::GenOutput, String>> {
    let mut out = HashMap::new();
    let mut it = reqs.into_iter();
    e.generate(&mut it, &mut |tag, r| {
        assert!(out.insert(tag, r).is_none(), "tag {tag} answered twice");
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn engine_behaviour() {
    let mut e = LlamaEngine::load(
        &model(),
        LlamaOptions {
            threads: 2,
            batch_size: 3,
            context: 512,
            n_batch: 64,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(e
        .model_id()
        .starts_with("SmolLM2-135M-Instruct.Q4_1.gguf#98362432"));

    // 7 requests over 3 slots (slots are refilled), one prompt too long for the context
    let mut reqs: Vec<GenRequest> = (0..6)
        .map(|i| req(i, &format!("Name a colour number {i}."), 12, 0.8))
        .collect();
    reqs.insert(3, req(99, &"long ".repeat(2000), 12, 0.8));
    let out = run(&mut e, reqs);
    assert_eq!(out.len(), 7);
    let err = out[&99].as_ref().unwrap_err();
    assert!(
        err.contains("does not fit the per-sequence context of 512"),
        "{err}"
    );
    for i in 0..6 {
        let o = out[&i].as_ref().unwrap();
        assert!(o.completion_tokens <= 12 && o.prompt_tokens > 5);
        if o.finish == FinishReason::Length {
            assert_eq!(o.completion_tokens, 12);
        }
    }
    assert!(e.last_stats.prompt_tokens > 0 && e.last_stats.completion_tokens > 0);

    // grammar: output must match exactly
    let mut g = req(1, "Rate the colour blue from 1 to 5.", 64, 1.0);
    g.grammar = Some(backforth::prompt::curate_grammar(64));
    let out = run(&mut e, vec![g]);
    let t = &out[&1].as_ref().unwrap().text;
    let p = backforth::parse::parse_score(t).unwrap_or_else(|e| panic!("{e}: {t:?}"));
    assert!((1..=5).contains(&p.score));
    assert!(t.starts_with("Reasoning: "));

    // rewrite grammar: a [RES] block and nothing else
    let mut g = req(
        3,
        "Rewrite this as a friendly answer: cats sleep a lot.",
        96,
        1.0,
    );
    g.grammar = Some(backforth::prompt::REWRITE_GRAMMAR.to_string());
    let out = run(&mut e, vec![g]);
    let o = out[&3].as_ref().unwrap();
    if o.finish == FinishReason::Stop {
        assert!(
            o.text.starts_with("[RES]") && o.text.ends_with("[/RES]"),
            "{:?}",
            o.text
        );
        backforth::parse::extract_res(&o.text, o.finish).unwrap();
    } else {
        assert!(o.text.starts_with("[RES]"), "{:?}", o.text);
    }

    // stop strings cut the output before the stop text
    let mut s = req(2, "Write three short lines about the sea.", 48, 0.0);
    s.sampling.stop = vec!["\n".into()];
    let out = run(&mut e, vec![s]);
    let o = out[&2].as_ref().unwrap();
    assert!(!o.text.contains('\n'), "{:?}", o.text);

    // reproducible at batch size 1 with the same seed; a different seed differs somewhere
    e.opts.batch_size = 1;
    let a = run(
        &mut e,
        (0..3)
            .map(|i| req(i, "Tell me a fact about cats.", 24, 1.0))
            .collect(),
    );
    let b = run(
        &mut e,
        (0..3)
            .map(|i| req(i, "Tell me a fact about cats.", 24, 1.0))
            .collect(),
    );
    for i in 0..3 {
        assert_eq!(a[&i].as_ref().unwrap().text, b[&i].as_ref().unwrap().text);
    }
    let texts: std::collections::HashSet<_> = (0..3)
        .map(|i| a[&i].as_ref().unwrap().text.clone())
        .collect();
    assert!(
        texts.len() > 1,
        "different seeds gave identical samples: {texts:?}"
    );
}

#[test]
fn prefix_reuse_prefills_less_and_gives_the_same_outputs() {
    // a long fixed system text first, the varying part last, as the templates are ordered
    let system = "You review instruction and answer pairs for a dataset that will teach an assistant. \
        Judge how well the answer works on a scale from 1 to 5, where 1 is off-topic or cut off and 5 is an ideal, \
        focused, expert answer with nothing irrelevant. Write one reasoning line, then the score line.";
    let reqs = || -> Vec<GenRequest> {
        (0..6)
            .map(|i| {
                let mut r = req(
                    i,
                    &format!("Instruction: name animal number {i}.\nAnswer: a cat."),
                    16,
                    if i % 2 == 0 { 0.0 } else { 0.9 },
                );
                r.messages.insert(
                    0,
                    ChatMessage {
                        role: "system".into(),
                        content: system.into(),
                    },
                );
                r
            })
            .collect()
    };
    for batch_size in [1, 2] {
        let opts = |prefix_reuse| LlamaOptions {
            threads: 2,
            batch_size,
            context: 512,
            n_batch: 64,
            prefix_reuse,
        };
        let mut off = LlamaEngine::load(&model(), opts(false)).unwrap();
        let a = run(&mut off, reqs());
        let prefilled_off = off.last_stats.prompt_tokens;
        assert_eq!(off.last_stats.reused_prompt_tokens, 0);
        let mut on = LlamaEngine::load(&model(), opts(true)).unwrap();
        let b = run(&mut on, reqs());
        let s = &on.last_stats;
        // every request after the first in a slot reuses the shared prefix
        assert!(
            s.reused_prompt_tokens > 40 * (6 - batch_size as u64),
            "batch {batch_size}: reused {}",
            s.reused_prompt_tokens
        );
        assert_eq!(
            s.prompt_tokens + s.reused_prompt_tokens,
            prefilled_off,
            "every prompt token is prefilled or reused"
        );
        let reported: u64 = b
            .values()
            .map(|o| o.as_ref().unwrap().cached_prompt_tokens as u64)
            .sum();
        assert_eq!(reported, s.reused_prompt_tokens);
        for i in 0..6 {
            let (x, y) = (a[&i].as_ref().unwrap(), b[&i].as_ref().unwrap());
            assert_eq!(x.prompt_tokens, y.prompt_tokens);
            if batch_size == 1 {
                assert_eq!(x.text, y.text, "request {i}: reuse changed the output");
            }
        }
    }
}

#[test]
fn a_prefix_held_by_another_slot_is_copied_not_prefilled() {
    // slot 0 holds a long system text while busy; slot 1 frees first and its
    // next request shares that text, so it copies slot 0's cells
    let system = "You review instruction and answer pairs for a dataset that will teach an assistant. \
        Judge how well the answer works on a scale from 1 to 5, where 1 is off-topic or cut off and 5 is an ideal, \
        focused, expert answer with nothing irrelevant. Write one reasoning line, then the score line.";
    let with_system = |tag, text: &str, max_tokens| {
        let mut r = req(tag, text, max_tokens, 0.0);
        r.messages.insert(
            0,
            ChatMessage {
                role: "system".into(),
                content: system.into(),
            },
        );
        r.top_logprobs = 1;
        r
    };
    let reqs = || {
        vec![
            with_system(0, "Instruction: name a cat.\nAnswer: Tom.", 24),
            req(1, "Hi", 1, 0.0),
            with_system(2, "Instruction: name a dog.\nAnswer: Rex.", 4),
        ]
    };
    let opts = |batch_size, prefix_reuse| LlamaOptions {
        threads: 2,
        batch_size,
        context: 512,
        n_batch: 64,
        prefix_reuse,
    };
    let mut on = LlamaEngine::load(&model(), opts(2, true)).unwrap();
    let got = run(&mut on, reqs());
    let copied = got[&2].as_ref().unwrap();
    assert!(
        copied.cached_prompt_tokens > 40,
        "request 2 reused only {} tokens",
        copied.cached_prompt_tokens
    );
    // the copied cells are the right ones: same first token, same probability
    // as with every token prefilled (batch 1, no reuse)
    let mut alone = LlamaEngine::load(&model(), opts(1, false)).unwrap();
    let want = run(&mut alone, reqs());
    let want = want[&2].as_ref().unwrap();
    let (a, b) = (&copied.logprobs[0], &want.logprobs[0]);
    assert_eq!(a.token, b.token);
    assert!(
        (a.logprob - b.logprob).abs() < 0.05,
        "first-token log-probability {} with the copied prefix vs {} prefilled",
        a.logprob,
        b.logprob
    );
}

#[test]
fn log_probabilities_describe_the_model_before_the_grammar() {
    let mut e = LlamaEngine::load(
        &model(),
        LlamaOptions {
            threads: 2,
            batch_size: 2,
            context: 512,
            n_batch: 64,
            ..Default::default()
        },
    )
    .unwrap();
    // greedy, unconstrained: the chosen token is the most likely one at every position
    let mut r = req(1, "Name three colours.", 8, 0.0);
    r.top_logprobs = 5;
    let plain = req(2, "Name three colours.", 8, 0.0);
    let out = run(&mut e, vec![r, plain]);
    let (o, p) = (out[&1].as_ref().unwrap(), out[&2].as_ref().unwrap());
    assert_eq!(
        o.text, p.text,
        "asking for log-probabilities changes nothing else"
    );
    assert!(p.logprobs.is_empty());
    assert_eq!(o.logprobs.len(), o.completion_tokens as usize);
    let joined: String = o.logprobs.iter().map(|t| t.token.as_str()).collect();
    assert_eq!(joined, o.text);
    for t in &o.logprobs {
        assert_eq!(t.top.len(), 5);
        assert_eq!(t.top[0].0, t.token);
        assert!((t.top[0].1 - t.logprob).abs() < 1e-6);
        assert!(t.top.windows(2).all(|w| w[0].1 >= w[1].1));
        let mass: f32 = t.top.iter().map(|(_, l)| l.exp()).sum();
        assert!(mass <= 1.0 + 1e-4 && t.logprob <= 0.0, "{t:?}");
    }
    // under the judge's grammar the verdict position carries probabilities for A and B
    let mut j = req(
        3,
        "Which is a colour, A: blue or B: chair? Answer `Preferred: A` or `Preferred: B`.",
        8,
        0.0,
    );
    j.grammar = Some("root ::= \"Preferred: \" (\"A\" | \"B\" | \"tie\")".into());
    j.top_logprobs = 20;
    let out = run(&mut e, vec![j]);
    let o = out[&3].as_ref().unwrap();
    assert!(o.text.starts_with("Preferred: "), "{:?}", o.text);
    let p = backforth_measure::judge::verdict_probs(&o.logprobs)
        .unwrap_or_else(|| panic!("no verdict probabilities in {:?}", o.logprobs));
    assert!(
        (p.a + p.b + p.tie - 1.0).abs() < 1e-9 && p.a > 0.0 && p.b > 0.0,
        "{p:?}"
    );
}
