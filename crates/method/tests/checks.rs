//! Precision and recall of the relevance and grounding checks on a labelled
//! set built from real documents: the 300 news stories of gensim's
//! `lee_background.cor` and the Python-FAQ seed pairs (both fetched by
//! `scripts/fetch-assets.sh corpus seeds`).
//!
//! Every document gives one item, its class chosen round-robin so the set is
//! balanced between good and bad pairs:
//! - **faithful** (good): an instruction naming words of the story's first
//!   sentence, answered by an extract of the story (first sentences, every
//!   third dropped, a framing sentence in front);
//! - **injected** (bad): the faithful answer with a sentence of another story
//!   inserted in the middle;
//! - **swapped** (bad): the faithful answer of another story;
//! - **other_instruction** (bad): another story's instruction over this answer;
//! - **seed_topic** (bad): a Python-FAQ seed question over this answer (the
//!   failure seen in the demo: the backward model copies its few-shot topic);
//! - **non_instruction** (bad): a question to the reader or meta text
//!   (phrasings partly unlike the detector's own list).
//!
//! The extractive faithful answers are easier than an LLM's paraphrase, so
//! the false-positive rate here is a lower bound: BENCHMARKS.md says so.
//! Run with `--nocapture` to print the table.

use backforth::checks::{check, ChecksConfig, SourceIndex};
use std::path::PathBuf;

fn cache() -> PathBuf {
    match std::env::var("BACKFORTH_CACHE") {
        Ok(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/backforth"),
    }
}

fn sentences(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let cs: Vec<char> = t.chars().collect();
    for (i, c) in cs.iter().enumerate() {
        cur.push(*c);
        if matches!(c, '.' | '!' | '?') && cs.get(i + 1).is_some_and(|n| n.is_whitespace()) {
            out.push(cur.trim().to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Two longest words (≥ 5 letters) of the first sentence, as the instruction's topic.
fn instruction_for(doc: &str, variant: usize) -> String {
    let first = sentences(doc).into_iter().next().unwrap_or_default();
    let mut ws: Vec<String> = first
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| w.chars().count() >= 5)
        .map(String::from)
        .collect();
    ws.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    ws.dedup();
    let (a, b) = (
        ws.first().cloned().unwrap_or_default(),
        ws.get(1).cloned().unwrap_or_default(),
    );
    match variant % 4 {
        0 => format!("Summarise the latest news about {a} and {b}."),
        1 => format!("What happened regarding {a} and {b}?"),
        2 => format!("Write a short news report on {a}, mentioning {b}."),
        _ => format!("Explain the situation involving {b} and {a}."),
    }
}

fn faithful_answer(doc: &str) -> String {
    let s = sentences(doc);
    let kept: Vec<&String> = s
        .iter()
        .take(6)
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(_, x)| x)
        .collect();
    format!(
        "Here is what the story says. {}",
        kept.iter()
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

const NON_INSTRUCTIONS: [&str; 8] = [
    "What type of assessment are you referring to?",
    "Which specific incident do you have in mind?",
    "Could you clarify what you want to know?",
    "Here is an instruction that this text answers:",
    "Can you be more specific about the time period?",
    "What exactly did you mean by that?",
    "Sure, I can help with that.",
    "The text describes an event.",
];

#[test]
fn checks_separate_grounded_from_ungrounded_pairs() {
    let corpus = cache().join("corpus/gensim/lee_background.cor");
    let seeds = cache().join("seeds/python-faq.jsonl");
    assert!(
        corpus.exists() && seeds.exists(),
        "run `scripts/fetch-assets.sh corpus seeds` first"
    );
    let docs: Vec<String> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| sentences(l).len() >= 4)
        .map(String::from)
        .collect();
    let seed_qs: Vec<String> = std::fs::read_to_string(&seeds)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["instruction"].as_str().map(String::from))
        .collect();
    assert!(docs.len() >= 200, "{} documents", docs.len());
    let cfg = ChecksConfig::default();
    let classes = [
        "faithful",
        "injected",
        "faithful",
        "swapped",
        "faithful",
        "other_instruction",
        "faithful",
        "seed_topic",
        "faithful",
        "non_instruction",
    ];
    // (class, flagged) per item
    let mut results: Vec<(&str, bool)> = Vec::new();
    let mut misses: Vec<String> = Vec::new();
    let n = docs.len();
    for (i, doc) in docs.iter().enumerate() {
        let other = &docs[(i + n / 2) % n];
        let class = classes[i % classes.len()];
        let instr_i = instruction_for(doc, i);
        let (instr, resp) = match class {
            "faithful" => (instr_i.clone(), faithful_answer(doc)),
            "injected" => {
                let mut s = sentences(&faithful_answer(doc));
                let os = sentences(other);
                let mid = s.len() / 2;
                s.insert(mid, os[os.len() / 2].clone());
                (instr_i.clone(), s.join(" "))
            }
            "swapped" => (instr_i.clone(), faithful_answer(other)),
            "other_instruction" => (instruction_for(other, i), faithful_answer(doc)),
            "seed_topic" => (seed_qs[i % seed_qs.len()].clone(), faithful_answer(doc)),
            _ => (
                NON_INSTRUCTIONS[(i / classes.len()) % NON_INSTRUCTIONS.len()].to_string(),
                faithful_answer(doc),
            ),
        };
        let r = check(&cfg, &instr, Some(&resp), &SourceIndex::new(doc));
        let flagged = !r.passed();
        if flagged == (class == "faithful") && misses.len() < 12 {
            misses.push(format!("{class}: {instr:?} → {:?}", r));
        }
        results.push((class, flagged));
    }
    let bad = |c: &str| c != "faithful";
    let tp = results.iter().filter(|(c, f)| bad(c) && *f).count() as f64;
    let fp = results.iter().filter(|(c, f)| !bad(c) && *f).count() as f64;
    let fnn = results.iter().filter(|(c, f)| bad(c) && !*f).count() as f64;
    let precision = tp / (tp + fp).max(1.0);
    let recall = tp / (tp + fnn).max(1.0);
    println!(
        "labelled set: {} items from {} real news stories",
        results.len(),
        n
    );
    println!("| class | items | flagged |\n|---|---|---|");
    for c in [
        "faithful",
        "injected",
        "swapped",
        "other_instruction",
        "seed_topic",
        "non_instruction",
    ] {
        let it: Vec<_> = results.iter().filter(|(k, _)| *k == c).collect();
        println!(
            "| {c} | {} | {:.1}% |",
            it.len(),
            100.0 * it.iter().filter(|(_, f)| *f).count() as f64 / it.len().max(1) as f64
        );
    }
    println!("precision {precision:.3}  recall {recall:.3}");
    for m in &misses {
        println!("miss: {m}");
    }
    // floors just under what this set measured (BENCHMARKS.md): a regression fails
    assert!(precision >= 0.9, "precision {precision:.3}");
    assert!(recall >= 0.8, "recall {recall:.3}");
}
