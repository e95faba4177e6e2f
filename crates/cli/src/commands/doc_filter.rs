//! `backforth checks train-filter`: the learned document filter
//! ([`backforth::docfilter`]) fitted on LLM-rated documents, with its
//! agreement with the LLM on held-out documents and on other rated sets.

use crate::cli::TrainFilterArgs;
use anyhow::{Context, Result};
use backforth::docfilter::{agreement, read_ratings, train as fit, Agreement, Rated, TrainOptions};
use serde::Serialize;

/// Agreement on one `--eval` file, and the filter's speed there.
#[derive(Serialize)]
struct EvalReport {
    file: String,
    agreement: Agreement,
    documents_per_s: f64,
}

fn read_all(files: &[std::path::PathBuf], stage: &str) -> Result<Vec<Rated>> {
    let mut out = Vec::new();
    for f in files {
        let (docs, skipped) = read_ratings(f, stage)?;
        eprintln!(
            "{}: {} rated documents, {skipped} without a parsed rating (skipped)",
            f.display(),
            docs.len()
        );
        out.extend(docs);
    }
    Ok(out)
}

fn show(name: &str, a: &Agreement) {
    println!(
        "  {name}: {} documents ({} rated good by the LLM) | agreement {:.1}% | precision {:.3} recall {:.3} F1 {:.3} | AUC {} | keeps {:.0}%",
        a.documents,
        a.positives,
        100.0 * a.accuracy,
        a.precision,
        a.recall,
        a.f1,
        a.auc.map_or("–".into(), |x| format!("{x:.3}")),
        100.0 * a.kept_share
    );
}

/// Train, write `<out>/doc_filter.json` and `<out>/eval.json`, print agreement.
pub fn train(a: TrainFilterArgs) -> Result<()> {
    anyhow::ensure!(
        (1..=5).contains(&a.min_rating),
        "--min-rating {} is outside the rubric's 1–5",
        a.min_rating
    );
    anyhow::ensure!(
        (0.0..0.9).contains(&a.held_out),
        "--held-out {} must be in [0, 0.9)",
        a.held_out
    );
    let docs = read_all(&a.labels, &a.stage)?;
    let dir = a
        .embedding_model
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(crate::provider::default_embedder);
    let mut emb = crate::provider::load_embedder(&dir, "llama", a.threads.unwrap_or(0))
        .with_context(|| format!("embedding model {}", dir.display()))?;
    let mut opts = TrainOptions {
        min_rating: a.min_rating,
        held_out: a.held_out,
        ..Default::default()
    };
    opts.fit.seed = a.seed;
    opts.fit.hidden = a.hidden;
    opts.fit.epochs = a.epochs;
    opts.fit.l2 = a.l2;
    let model = fit(&docs, &a.stage, &mut emb, &opts)?;
    std::fs::create_dir_all(&a.out)?;
    let path = a.out.join("doc_filter.json");
    std::fs::write(&path, serde_json::to_string(&model)?)?;
    println!(
        "document filter: {} (ratings {:?}; good = rating ≥ {})",
        path.display(),
        model.ratings,
        model.min_rating
    );
    show("held out", &model.held_out);
    let mut reports = Vec::new();
    for f in &a.eval {
        let docs = read_all(std::slice::from_ref(f), &a.stage)?;
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let t0 = std::time::Instant::now();
        let p = model.score(&mut emb, &texts)?;
        let dps = docs.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let ys: Vec<bool> = docs.iter().map(|d| d.rating >= model.min_rating).collect();
        let ag = agreement(&p, &ys, 0.5);
        show(&f.display().to_string(), &ag);
        println!("    {dps:.1} documents/s (embedding included)");
        reports.push(EvalReport {
            file: f.display().to_string(),
            agreement: ag,
            documents_per_s: dps,
        });
    }
    std::fs::write(
        a.out.join("eval.json"),
        serde_json::to_string_pretty(&reports)?,
    )?;
    println!(
        "use it: --set run.prepare=true --set doc_filter.model='\"{}\"' --set doc_filter.embedding_model='\"{}\"'",
        path.display(),
        dir.display()
    );
    Ok(())
}
