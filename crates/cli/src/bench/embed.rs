//! `backforth bench-embed`: sentence-embedding throughput and MAUVE time on real text lines.

use crate::cli::EmbedBenchArgs;
use anyhow::Result;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: EmbedBenchArgs) -> Result<()> {
    let dir = a
        .embedder
        .clone()
        .unwrap_or_else(crate::provider::default_embedder);
    let emb = crate::provider::load_embedder(&dir, &a.engine, 0)?;
    let lines: Vec<String> = std::fs::read_to_string(&a.texts)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    let need = a.n.max(2 * a.mauve_n);
    anyhow::ensure!(
        lines.len() >= need,
        "{}: {} lines, need {need}",
        a.texts.display(),
        lines.len()
    );
    let texts = &lines[..a.n];
    let tokens: usize = texts.iter().map(|t| emb.token_count(t).unwrap_or(0)).sum();
    let t0 = std::time::Instant::now();
    let v = emb.embed_all(texts, a.batch, |_| {})?;
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"what": "embed", "model": emb.model_id(), "sentences": texts.len(), "tokens": tokens, "batch": a.batch, "seconds": s,
            "sentences_per_s": texts.len() as f64 / s, "tokens_per_s": tokens as f64 / s})
    );
    let mut all = v;
    if a.mauve_n > 0 {
        let rest = &lines[a.n.min(2 * a.mauve_n)..2 * a.mauve_n];
        let t1 = std::time::Instant::now();
        if !rest.is_empty() {
            all.extend(emb.embed_all(rest, a.batch, |_| {})?);
        }
        let es = t1.elapsed().as_secs_f64();
        let (p, q) = all[..2 * a.mauve_n].split_at(a.mauve_n);
        let t2 = std::time::Instant::now();
        let r = backforth_measure::mauve::mauve(
            p,
            q,
            &backforth_measure::mauve::MauveSettings::default(),
        )
        .map_err(anyhow::Error::msg)?;
        println!(
            "{}",
            serde_json::json!({"what": "mauve", "n_p": r.n_p, "n_q": r.n_q, "buckets": r.num_buckets, "pca_dims": r.pca_dims, "mauve": r.mauve,
                "seconds": t2.elapsed().as_secs_f64(), "extra_embed_seconds": es})
        );
    }
    if let Some(path) = &a.dump {
        let mut bytes = Vec::new();
        for x in all.iter().flatten() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
