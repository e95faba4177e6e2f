//! `backforth bench-checks`: precision and recall of the relevance and
//! grounding checks on the labelled set of [`backforth::labelled`] — the
//! lexical checks alone, the verify stage alone (a real model through any
//! backend: the config's `backend.kind`, the verify template and grammar the
//! pipeline uses), and both combined as a run applies them. Per-item verdicts
//! go to `<out>/bench-checks.jsonl`; the response cache under `<out>` makes
//! a rerun free.

use crate::cli::ChecksBenchArgs;
use crate::progress::{bar, progress_fn};
use crate::provider::Provider;
use anyhow::{Context, Result};
use backforth::checks::{apply_verification, check, SourceIndex};
use backforth::labelled::{build, score, Scores};
use backforth::prompt::{PromptTemplate, VERIFY_GRAMMAR};
use backforth::record::Stage;
use backforth_inference::{BackendProvider, GenRequest, Sampling};
use std::io::Write;
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: ChecksBenchArgs) -> Result<()> {
    let cfg = a.common.config()?;
    let cache = crate::commands::analyze::asset_cache();
    let corpus = a
        .corpus
        .clone()
        .unwrap_or_else(|| cache.join("corpus/gensim/lee_background.cor"));
    let seeds = a
        .seed_questions
        .clone()
        .unwrap_or_else(|| cache.join("seeds/python-faq.jsonl"));
    let docs: Vec<String> = std::fs::read_to_string(&corpus)
        .with_context(|| format!("{} (scripts/fetch-assets.sh corpus)", corpus.display()))?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let seed_qs: Vec<String> =
        backforth::seeds::read_seeds(&seeds, cfg.input.max_line_bytes, &mut Default::default())
            .with_context(|| "scripts/fetch-assets.sh seeds")?
            .into_iter()
            .map(|s| s.instruction)
            .collect();
    let mut items = build(&docs, &seed_qs);
    if a.n > 0 {
        items.truncate(a.n);
    }
    anyhow::ensure!(
        !items.is_empty(),
        "{}: no document with 4 sentences or more",
        corpus.display()
    );
    let lexical: Vec<_> = items
        .iter()
        .map(|it| {
            check(
                &cfg.checks,
                &it.instruction,
                Some(&it.response),
                &SourceIndex::new(&it.source),
            )
        })
        .collect();

    // the verify stage's prompts, exactly as the pipeline renders them
    let template = PromptTemplate::load(&cfg.verify.template, "verify")?;
    let grammar = cfg.verify.grammar.then(|| VERIFY_GRAMMAR.to_string());
    let reqs: Vec<GenRequest> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let messages = template.render(serde_json::json!({"text": it.source, "instruction": it.instruction, "response": it.response}))?;
            let sampling = Sampling { temperature: cfg.verify.temperature, top_p: cfg.verify.top_p, max_tokens: cfg.verify.max_tokens, seed: cfg.model.seed, stop: vec![] };
            Ok(GenRequest { grammar: grammar.clone(), raw_prompt: cfg.model.raw_prompt, ..GenRequest::chat(i as u64, messages, sampling) })
        })
        .collect::<Result<_>>()?;
    let mut provider = Provider::new(&cfg);
    let model = cfg.model_path(Stage::Verify).to_string();
    let model_id = provider.model_id(&model)?;
    let backend = provider.backend(&model)?;
    let pb = bar(a.common.quiet, items.len() as u64, "verify");
    let mut prog = progress_fn(&pb, "verify");
    let mut raw: Vec<Option<Result<String, String>>> = vec![None; items.len()];
    let (mut done, mut tokens) = (0usize, 0u64);
    let start = std::time::Instant::now();
    backend.generate(&mut reqs.into_iter(), &mut |tag, res| {
        done += 1;
        if let Ok(o) = &res {
            tokens += o.completion_tokens as u64;
        }
        raw[tag as usize] = Some(res.map(|o| o.text));
        prog(done, items.len(), tokens);
        Ok(())
    })?;
    pb.finish();
    let wall = start.elapsed().as_secs_f64();

    let (mut f_lex, mut f_ver, mut f_both) = (Vec::new(), Vec::new(), Vec::new());
    let mut unparsed = 0usize;
    let out_dir = PathBuf::from(&cfg.output.dir);
    std::fs::create_dir_all(&out_dir)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out_dir.join("bench-checks.jsonl"))?);
    for (i, it) in items.iter().enumerate() {
        let lex = &lexical[i];
        let text = match &raw[i] {
            Some(Ok(t)) => t.clone(),
            Some(Err(e)) => format!("(backend error: {e})"),
            None => "(no answer)".into(),
        };
        let verdict = backforth::parse::parse_verification(&text).ok();
        if verdict.is_none() {
            unparsed += 1;
        }
        let mut with_v = lex.clone();
        let mut only_v = backforth::checks::CheckResult::default();
        if let Some(v) = &verdict {
            apply_verification(&cfg.checks, &mut with_v, v);
            apply_verification(&cfg.checks, &mut only_v, v);
        }
        f_lex.push(!lex.passed());
        f_ver.push(!only_v.passed());
        f_both.push(!with_v.passed());
        serde_json::to_writer(
            &mut w,
            &serde_json::json!({"class": it.class, "instruction": it.instruction, "lexical_reasons": lex.reasons, "verify_raw": text, "verdict": verdict, "combined_reasons": with_v.reasons}),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let rows: [(&str, Scores); 3] = [
        ("lexical checks", score(&items, &f_lex)),
        ("verify stage", score(&items, &f_ver)),
        ("combined", score(&items, &f_both)),
    ];
    println!("labelled set: {} items ({} good) from {}; verifier {model_id}; {unparsed} verdicts did not parse; {:.0} s", items.len(), items.iter().filter(|i| !i.bad()).count(), corpus.display(), wall);
    print!("| detector | precision | recall |");
    for (c, _, _) in &rows[0].1.per_class {
        print!(" {c} |");
    }
    println!(
        "\n|---|---|---|{}",
        "---|".repeat(rows[0].1.per_class.len())
    );
    for (name, s) in &rows {
        print!("| {name} | {:.3} | {:.3} |", s.precision, s.recall);
        for (_, n, share) in &s.per_class {
            print!(" {:.0}% of {n} |", 100.0 * share);
        }
        println!();
    }
    println!("(faithful column: share of good items flagged — false alarms)");
    Ok(())
}
