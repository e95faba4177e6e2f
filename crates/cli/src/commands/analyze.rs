//! `backforth analyze`: lengths, diversity, curation/parse statistics, MiniLM embeddings, MAUVE and a 2-D map.

use crate::cli::AnalyzeArgs;
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use backforth_measure::analyze::{self, TextSet};
use backforth_measure::distance;
use backforth_measure::mauve::MauveSettings;
use backforth_measure::report::Analysis;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: AnalyzeArgs) -> Result<()> {
    let mut sets: Vec<TextSet> = Vec::new();
    let mut analysis = Analysis::default();
    if let Some(run) = &a.run {
        let data = analyze::read_run(run)?;
        sets.extend(analyze::run_sets(&data));
        analysis.run = Some(data.stats);
        analysis.run_dir = Some(run.display().to_string());
    }
    for s in &a.sets {
        let (name, rest) = s
            .split_once('=')
            .with_context(|| format!("--text-set {s}: want NAME=PATH[:FIELD]"))?;
        let (path, field) = match rest.rsplit_once(':') {
            Some((p, f)) if Path::new(p).exists() => (p, Some(f)),
            _ => (rest, None),
        };
        let (set, missing) = analyze::read_text_set(name, Path::new(path), field)?;
        if missing > 0 {
            eprintln!("--text-set {name}: {missing} items without the text field (skipped)");
        }
        sets.retain(|x| x.name != name);
        sets.push(set);
    }
    if sets.is_empty() {
        bail!("nothing to analyse: give --run DIR and/or --text-set NAME=PATH");
    }
    analysis.sets = sets.iter().map(analyze::text_stats).collect();
    let out = a.out.clone().unwrap_or_else(|| {
        a.run
            .as_ref()
            .map(|r| r.join("analysis.json"))
            .unwrap_or_else(|| PathBuf::from("analysis.json"))
    });
    if !a.no_embed {
        let dir = a.embedder.clone().unwrap_or_else(crate::provider::default_embedder);
        let emb = crate::provider::load_embedder(&dir, &a.embed_engine, 0).with_context(|| format!("loading the embedding model from {} (fetch it with scripts/fetch-assets.sh minilm, or pass --no-embed)", dir.display()))?;
        analysis.embedder = Some(emb.model_id().to_string());
        let cache_dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("embeddings");
        std::fs::create_dir_all(&cache_dir)?;
        let t0 = Instant::now();
        let mut vecs: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
        for s in &sets {
            let texts: Vec<String> = distance::sample(s.texts.len(), a.max_texts)
                .into_iter()
                .map(|i| s.texts[i].clone())
                .collect();
            vecs.push((
                s.name.clone(),
                {
                    let pb = bar(a.quiet, texts.len() as u64, &format!("embed {}", s.name.chars().take(8).collect::<String>()));
                    let v = emb.embed_cached(&s.name, &texts, a.batch, &cache_dir, |n| pb.set_position(n as u64))?;
                    pb.finish();
                    v
                },
            ));
        }
        analysis.embed_s = t0.elapsed().as_secs_f64();
        let pairs: Vec<(String, String)> = if a.mauve_pairs.is_empty() {
            distance::default_pairs(&vecs)
        } else {
            a.mauve_pairs
                .iter()
                .map(|s| {
                    s.split_once(',')
                        .map(|(x, y)| (x.trim().to_string(), y.trim().to_string()))
                        .with_context(|| format!("--mauve {s}: want P,Q"))
                })
                .collect::<Result<_>>()?
        };
        let t1 = Instant::now();
        let settings = MauveSettings {
            num_redo: a.mauve_redo,
            ..Default::default()
        };
        analysis.mauve = distance::mauve_pairs(&vecs, &pairs, &settings)?;
        analysis.mauve_s = t1.elapsed().as_secs_f64();
        analysis.map = distance::map(&vecs, a.map_points);
    }
    for s in &analysis.sets {
        eprintln!(
            "{:>12}: {} texts, {:.0} words mean (median {}), distinct-3 {:.3}, unique trigrams {}, TTR {:.3}, MATTR {:.3}",
            s.name, s.n, s.words.mean, s.words.median, s.distinct_3, s.unique_trigrams, s.ttr, s.mattr
        );
    }
    if let Some(r) = &analysis.run {
        eprintln!(
            "curation: {} scored, {} kept ({:.1}%), scores (none,1..5) {:?}",
            r.scored,
            r.kept,
            100.0 * r.share_kept,
            r.score_histogram
        );
    }
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&analysis)?)?;
    std::fs::rename(&tmp, &out)?;
    eprintln!("analysis → {}", out.display());
    Ok(())
}

