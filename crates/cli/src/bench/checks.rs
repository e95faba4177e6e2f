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
    apply_grounding, apply_grounding_error, apply_similarity, apply_verification, check,
    similarities, CheckResult, SourceIndex,
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
    let cache = crate::provider::asset_cache();
    let corpus = a
        .corpus
        .clone()
        .unwrap_or_else(|| cache.join("corpus/gensim/lee_background.cor"));
    let seeds = a
        .seed_questions
        .clone()
        .unwrap_or_else(|| cache.join("seeds/python-faq.jsonl"));
    let jsonl = corpus.extension().is_some_and(|e| e == "jsonl" || e == "ndjson");
    let docs: Vec<String> = std::fs::read_to_string(&corpus)
        .with_context(|| format!("{} (scripts/fetch-assets.sh corpus)", corpus.display()))?
        .lines()
        .map(|l| {
            if jsonl {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["text"].as_str().map(|t| t.trim().to_string()))
                    .unwrap_or_default()
            } else {
                l.trim().to_string()
            }
        })
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
        None if a.near => backforth::labelled::build_near(&docs),
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

    // the learned grounding checker, where a model is configured
    let mut learned_secs = 0.0;
    let learned: Option<Vec<std::result::Result<backforth::grounding::Grounding, String>>> =
        if cfg.checks.grounding_model.is_empty() {
            None
        } else {
            let model = backforth::grounding::GroundingModel::load(std::path::Path::new(
                &cfg.checks.grounding_model,
            ))?;
            anyhow::ensure!(
                !cfg.checks.embedding_model.is_empty(),
                "checks.grounding_model needs checks.embedding_model (trained with {})",
                model.embedder
            );
            let emb = provider.embedder(&cfg.checks.embedding_model)?;
            let t0 = std::time::Instant::now();
            let pb = bar(a.common.quiet(), items.len() as u64, "grounding");
            let mut v = Vec::with_capacity(items.len());
            for it in &items {
                let resp = Some(it.response.as_str()).filter(|r| !r.is_empty());
                v.push(match model.check(emb, &it.instruction, resp, &it.source) {
                    Ok(g) => Ok(g),
                    Err(backforth::grounding::GroundingError::Embedder(e)) => return Err(e),
                    Err(e) => Err(e.to_string()),
                });
                pb.inc(1);
            }
            pb.finish_and_clear();
            learned_secs = t0.elapsed().as_secs_f64();
            Some(v)
        };
    if let (Some(l), true) = (&learned, a.choose_thresholds) {
        choose_thresholds(&cfg.checks, &items, &lexical, l);
    }

    // the verify stage's prompts, exactly as the pipeline renders them
    let template = PromptTemplate::load(&cfg.verify.template, "verify")?;
    let grammar = cfg.verify.grammar.then(|| VERIFY_GRAMMAR.to_string());
    let reqs: Vec<GenRequest> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let messages = template.render(serde_json::json!({"text": it.source, "instruction": it.instruction, "response": it.response}))?;
            let sampling = Sampling { temperature: cfg.verify.temperature as f32, top_p: cfg.verify.top_p as f32, max_tokens: cfg.verify.max_tokens, seed: cfg.model.seed, stop: vec![] };
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
        let pb = bar(a.common.quiet(), items.len() as u64, "verify");
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
    let (mut f_learn, mut f_lex_sem_learn, mut f_all_learn) = (Vec::new(), Vec::new(), Vec::new());
    let mut f_lex_learn = Vec::new();
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
        let mut with_l = with_v.clone(); // lexical (+ semantic), before the verifier
        if let Some(l) = &learned {
            let mut only_l = CheckResult::default();
            let resp = !it.response.is_empty();
            match &l[i] {
                Ok(g) => {
                    apply_grounding(&cfg.checks, &mut only_l, g, resp);
                    apply_grounding(&cfg.checks, &mut with_l, g, resp);
                }
                Err(e) => {
                    apply_grounding_error(&mut only_l, e);
                    apply_grounding_error(&mut with_l, e);
                }
            }
            f_learn.push(!only_l.passed());
            f_lex_sem_learn.push(!with_l.passed());
            let mut lex_l = lex.clone();
            match &l[i] {
                Ok(g) => apply_grounding(&cfg.checks, &mut lex_l, g, resp),
                Err(e) => apply_grounding_error(&mut lex_l, e),
            }
            f_lex_learn.push(!lex_l.passed());
        }
        let mut only_v = CheckResult::default();
        // the verifier reads rewrites; an instruction labelled alone has none
        if let (Some(v), false) = (&verdict, it.response.is_empty()) {
            apply_verification(&cfg.checks, &mut with_v, v);
            apply_verification(&cfg.checks, &mut only_v, v);
        }
        if let (Some(_), Some(v), false) = (&learned, &verdict, it.response.is_empty()) {
            apply_verification(&cfg.checks, &mut with_l, v);
        }
        if learned.is_some() {
            f_all_learn.push(!with_l.passed());
        }
        f_lex.push(!lex.passed());
        f_ver.push(!only_v.passed());
        f_both.push(!with_v.passed());
        serde_json::to_writer(
            &mut w,
            &serde_json::json!({"class": it.class, "instruction": it.instruction, "response": it.response, "lexical_reasons": lex.reasons, "unsupported_names": lex.unsupported_names, "unsupported_identifiers": lex.unsupported_identifiers, "unsupported_numbers": lex.unsupported_numbers, "similarity": sims.as_ref().map(|s| s[i]), "grounding": learned.as_ref().map(|l| match &l[i] { Ok(g) => serde_json::json!({"relevance": g.relevance, "min_support": g.min_support(), "sentences": g.sentences}), Err(e) => serde_json::json!({"error": e}) }), "verify_raw": text, "verdict": verdict, "combined_reasons": with_v.reasons}),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut rows: Vec<(&str, Scores)> = vec![("lexical checks", score(&items, &f_lex))];
    if sims.is_some() {
        rows.push(("semantic relevance", score(&items, &f_sem)));
        rows.push(("lexical + semantic", score(&items, &f_lex_sem)));
    }
    if learned.is_some() {
        rows.push(("learned checker", score(&items, &f_learn)));
        rows.push(("lexical + learned", score(&items, &f_lex_learn)));
        rows.push(("lexical + semantic + learned", score(&items, &f_lex_sem_learn)));
    }
    if !a.no_verify {
        rows.push(("verify stage", score(&items, &f_ver)));
        rows.push(("combined (all)", score(&items, &f_both)));
        if learned.is_some() {
            rows.push(("combined (all) + learned", score(&items, &f_all_learn)));
        }
    }
    let set = a
        .labels
        .as_ref()
        .map_or(if a.near { "built near-document set".to_string() } else { "built labelled set".to_string() }, |l| {
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
    if learned.is_some() {
        println!(
            "learned checker: {} pairs in {:.1} s = {:.1} pairs/s (embedding included; thresholds: sentence support {}, instruction relevance {})",
            items.len(),
            learned_secs,
            items.len() as f64 / learned_secs.max(1e-9),
            cfg.checks.min_sentence_support,
            cfg.checks.min_instruction_relevance
        );
    }
    if !a.no_verify {
        println!(
            "verify stage: {} pairs in {:.1} s = {:.2} pairs/s",
            items.len(),
            wall,
            items.len() as f64 / wall.max(1e-9)
        );
    }
    Ok(())
}

/// Print the (sentence support, instruction relevance) thresholds that give
/// the lexical + learned detector its best F1 on these items (the semantic
/// relevance check is left out: the learned checker reads the same cosine)
/// (grid of 0.05 steps; ties go to the lower thresholds, which flag less).
/// For choosing thresholds on one labelled set and reporting on others.
fn choose_thresholds(
    base: &backforth::checks::ChecksConfig,
    items: &[backforth::labelled::LabelledItem],
    lexical: &[CheckResult],
    learned: &[std::result::Result<backforth::grounding::Grounding, String>],
) {
    let mut best: Option<(f64, f64, f64, Scores)> = None;
    for si in 1..20 {
        for ri in 1..20 {
            let cfg = backforth::checks::ChecksConfig {
                min_sentence_support: si as f64 * 0.05,
                min_instruction_relevance: ri as f64 * 0.05,
                ..base.clone()
            };
            let flagged: Vec<bool> = items
                .iter()
                .enumerate()
                .map(|(i, it)| {
                    let mut c = lexical[i].clone();
                    match &learned[i] {
                        Ok(g) => apply_grounding(&cfg, &mut c, g, !it.response.is_empty()),
                        Err(e) => apply_grounding_error(&mut c, e),
                    }
                    !c.passed()
                })
                .collect();
            let sc = score(items, &flagged);
            let f1 = 2.0 * sc.precision * sc.recall / (sc.precision + sc.recall).max(1e-9);
            if best.as_ref().is_none_or(|b| f1 > b.0 + 1e-12) {
                best = Some((f1, cfg.min_sentence_support, cfg.min_instruction_relevance, sc));
            }
        }
    }
    if let Some((f1, s, r, sc)) = best {
        println!(
            "chosen on this set (best F1 {f1:.3}: precision {:.3}, recall {:.3}): -s checks.min_sentence_support={s:.2} -s checks.min_instruction_relevance={r:.2}",
            sc.precision, sc.recall
        );
    }
}
