//! `backforth bench-checks`: precision and recall of the relevance and
//! grounding checks on the labelled set of [`backforth::labelled`] (or a
//! hand-labelled file of real outputs, `--labels`) — the lexical checks
//! alone, the semantic relevance check alone (`checks.embedding_model`), the
//! verify stage alone (a real model through any backend: the config's
//! `backend.kind`, the verify template and grammar the pipeline uses), and
//! the combinations a run applies. Per-item verdicts go to
//! `<out>/bench-checks.jsonl`; the response cache under `<out>` makes a
//! rerun free.

use crate::cli::ChecksBenchArgs;
use crate::progress::{bar, progress_fn};
use crate::provider::Provider;
use anyhow::{Context, Result};
use backforth::checks::{
    apply_similarity, apply_verification, check, similarities, CheckResult, SourceIndex,
};
use backforth::labelled::{build, read_labels, score, Scores};
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
    let mut items = match &a.labels {
        Some(l) => read_labels(l, &corpus)?,
        None => build(&docs, &seed_qs),
    };
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
                Some(it.response.as_str()).filter(|r| !r.is_empty()),
                &SourceIndex::new(&it.source),
            )
        })
        .collect();
    let mut provider = Provider::new(&cfg);
    // the semantic relevance check, where an embedding model is configured
    let sims: Option<Vec<f64>> = if cfg.checks.embedding_model.is_empty() {
        None
    } else {
        let emb = provider.embedder(&cfg.checks.embedding_model)?;
        let pairs: Vec<(&str, &str)> = items
            .iter()
            .map(|it| (it.instruction.as_str(), it.source.as_str()))
            .collect();
        Some(similarities(emb, &pairs)?)
    };

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
    let mut raw: Vec<Option<Result<String, String>>> = vec![None; items.len()];
    let start = std::time::Instant::now();
    let model_id = if a.no_verify {
        "none (--no-verify)".to_string()
    } else {
        let model = cfg.model_path(Stage::Verify).to_string();
        let model_id = provider.model_id(&model)?;
        let backend = provider.backend(&model)?;
        let pb = bar(a.common.quiet, items.len() as u64, "verify");
        let mut prog = progress_fn(&pb, "verify");
        let (mut done, mut tokens) = (0usize, 0u64);
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
        model_id
    };
    let wall = start.elapsed().as_secs_f64();

    let (mut f_lex, mut f_ver, mut f_both) = (Vec::new(), Vec::new(), Vec::new());
    let (mut f_sem, mut f_lex_sem) = (Vec::new(), Vec::new());
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
        if verdict.is_none() && !a.no_verify {
            unparsed += 1;
        }
        let mut with_v = lex.clone();
        if let Some(s) = &sims {
            let mut only_s = CheckResult::default();
            apply_similarity(&cfg.checks, &mut only_s, s[i]);
            apply_similarity(&cfg.checks, &mut with_v, s[i]);
            f_sem.push(!only_s.passed());
            f_lex_sem.push(!with_v.passed());
        }
        let mut only_v = CheckResult::default();
        // the verifier reads rewrites; an instruction labelled alone has none
        if let (Some(v), false) = (&verdict, it.response.is_empty()) {
            apply_verification(&cfg.checks, &mut with_v, v);
            apply_verification(&cfg.checks, &mut only_v, v);
        }
        f_lex.push(!lex.passed());
        f_ver.push(!only_v.passed());
        f_both.push(!with_v.passed());
        serde_json::to_writer(
            &mut w,
            &serde_json::json!({"class": it.class, "instruction": it.instruction, "lexical_reasons": lex.reasons, "similarity": sims.as_ref().map(|s| s[i]), "verify_raw": text, "verdict": verdict, "combined_reasons": with_v.reasons}),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut rows: Vec<(&str, Scores)> = vec![("lexical checks", score(&items, &f_lex))];
    if sims.is_some() {
        rows.push(("semantic relevance", score(&items, &f_sem)));
        rows.push(("lexical + semantic", score(&items, &f_lex_sem)));
    }
    if !a.no_verify {
        rows.push(("verify stage", score(&items, &f_ver)));
        rows.push(("combined (all)", score(&items, &f_both)));
    }
    let set = a
        .labels
        .as_ref()
        .map_or("built labelled set".to_string(), |l| {
            format!("hand labels {}", l.display())
        });
    println!("{set}: {} items ({} good) from {}; verifier {model_id}; {unparsed} verdicts did not parse; {:.0} s", items.len(), items.iter().filter(|i| !i.bad()).count(), corpus.display(), wall);
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
