//! `backforth analyze`: lengths, diversity, curation/parse statistics, MiniLM embeddings, MAUVE and a 2-D map.

use crate::cli::AnalyzeArgs;
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use backforth_measure::analyze::{self, TextSet};
use backforth_measure::mauve::{self, MauveSettings};
use backforth_measure::report::{Analysis, MapPoint, MauvePair};
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
            .with_context(|| format!("--set {s}: want NAME=PATH[:FIELD]"))?;
        let (path, field) = match rest.rsplit_once(':') {
            Some((p, f)) if Path::new(p).exists() => (p, Some(f)),
            _ => (rest, None),
        };
        let (set, missing) = analyze::read_text_set(name, Path::new(path), field)?;
        if missing > 0 {
            eprintln!("--set {name}: {missing} items without the text field (skipped)");
        }
        sets.retain(|x| x.name != name);
        sets.push(set);
    }
    if sets.is_empty() {
        bail!("nothing to analyse: give --run DIR and/or --set NAME=PATH");
    }
    analysis.sets = sets.iter().map(analyze::text_stats).collect();
    let out = a.out.clone().unwrap_or_else(|| {
        a.run
            .as_ref()
            .map(|r| r.join("analysis.json"))
            .unwrap_or_else(|| PathBuf::from("analysis.json"))
    });
    if !a.no_embed {
        let dir = a.embedder.clone().unwrap_or_else(default_embedder);
        let emb = load_embedder(&dir, &a.embed_engine, 0).with_context(|| format!("loading the embedding model from {} (fetch it with scripts/fetch-assets.sh minilm, or pass --no-embed)", dir.display()))?;
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
            let texts: Vec<String> = sample(s.texts.len(), a.max_texts)
                .into_iter()
                .map(|i| s.texts[i].clone())
                .collect();
            vecs.push((
                s.name.clone(),
                embed_cached(&emb, &s.name, &texts, a.batch, &cache_dir, a.quiet)?,
            ));
        }
        analysis.embed_s = t0.elapsed().as_secs_f64();
        // MAUVE pairs.
        let pairs: Vec<(String, String)> = if a.mauve_pairs.is_empty() {
            let names: Vec<&String> = vecs
                .iter()
                .map(|v| &v.0)
                .filter(|n| n.as_str() != "instructions")
                .collect();
            let mut p = Vec::new();
            for i in 0..names.len() {
                for j in i + 1..names.len() {
                    p.push((names[i].clone(), names[j].clone()));
                }
            }
            p
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
        let get = |n: &str| {
            vecs.iter()
                .find(|v| v.0 == n)
                .map(|v| &v.1)
                .with_context(|| format!("--mauve: no set named {n}"))
        };
        let settings = MauveSettings {
            num_redo: a.mauve_redo,
            ..Default::default()
        };
        for (p, q) in pairs {
            let (pv, qv) = (get(&p)?, get(&q)?);
            if pv.len() < 2 || qv.len() < 2 {
                eprintln!("MAUVE {p} vs {q}: skipped (needs at least 2 texts in each set)");
                continue;
            }
            let r = mauve::mauve(pv, qv, &settings).map_err(anyhow::Error::msg)?;
            eprintln!(
                "MAUVE {p} vs {q}: {:.3} ({} vs {} texts, {} buckets, {} PCA dims)",
                r.mauve, r.n_p, r.n_q, r.num_buckets, r.pca_dims
            );
            if r.n_p.min(r.n_q) < 100 {
                eprintln!(
                    "warning: MAUVE on {} and {} texts with {} buckets is far below the thousands of texts it is meant for; it cannot tell these sets apart reliably",
                    r.n_p, r.n_q, r.num_buckets
                );
            }
            analysis.mauve.push(MauvePair { p, q, result: r });
        }
        analysis.mauve_s = t1.elapsed().as_secs_f64();
        // 2-D map: PCA of a sample of every set together.
        let mut names = Vec::new();
        let mut rows: Vec<&Vec<f32>> = Vec::new();
        for (name, v) in &vecs {
            for i in sample(v.len(), a.map_points) {
                names.push(name.clone());
                rows.push(&v[i]);
            }
        }
        if rows.len() >= 3 {
            let d = rows[0].len();
            let m = nalgebra_matrix(&rows, d);
            let proj = mauve::pca_2d(&m);
            analysis.map = names
                .into_iter()
                .enumerate()
                .map(|(i, set)| MapPoint {
                    set,
                    x: proj[(i, 0)],
                    y: proj[(i, 1)],
                })
                .collect();
        }
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

/// Load the sentence encoder of a model folder, run by `engine`: `candle`
/// (in process) or `llama` (llama.cpp's bert graph on
/// `<folder>.f32.gguf`, written from the folder on first use).
/// Errors: unknown engine, missing files, conversion or load failures.
pub fn load_embedder(
    dir: &Path,
    engine: &str,
    threads: usize,
) -> Result<backforth_embed::Embedder> {
    match engine {
        "candle" => backforth_embed::Embedder::load(dir),
        "llama" => {
            let gguf = dir.with_extension("f32.gguf");
            if !gguf.is_file() {
                backforth_embed::write_gguf(dir, &gguf)
                    .with_context(|| format!("writing {}", gguf.display()))?;
            }
            let enc = backforth_llama::LlamaEncoder::load(&gguf, threads)?;
            backforth_embed::Embedder::with_encoder(dir, Box::new(enc))
        }
        other => bail!("unknown embedding engine {other:?} (candle or llama)"),
    }
}

/// The asset cache `scripts/fetch-assets.sh` fills: `$BACKFORTH_CACHE`
/// when set and non-empty, else `~/.cache/backforth`.
pub fn asset_cache() -> PathBuf {
    std::env::var("BACKFORTH_CACHE")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/backforth")
        })
}

/// `$BACKFORTH_CACHE/models/all-MiniLM-L6-v2` (where `fetch-assets.sh minilm` puts it).
pub fn default_embedder() -> PathBuf {
    asset_cache().join("models/all-MiniLM-L6-v2")
}

/// Evenly spaced sample of at most `max` indices of `0..n` (deterministic).
fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| i * n / max).collect()
}

fn nalgebra_matrix(rows: &[&Vec<f32>], d: usize) -> backforth_measure::mauve::Matrix {
    backforth_measure::mauve::Matrix::from_fn(rows.len(), d, |i, j| rows[i][j])
}

/// Embed `texts`, reusing `<cache_dir>/<name>-<hash>.f32` when the same texts
/// were embedded by the same model before (so a killed analyze resumes per set).
fn embed_cached(
    emb: &backforth_embed::Embedder,
    name: &str,
    texts: &[String],
    batch: usize,
    cache_dir: &Path,
    quiet: bool,
) -> Result<Vec<Vec<f32>>> {
    let mut h = blake3::Hasher::new();
    h.update(emb.model_id().as_bytes());
    for t in texts {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = cache_dir.join(format!("{safe}-{}.f32", &h.finalize().to_hex()[..16]));
    let d = emb.dim();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == texts.len() * d * 4 {
            let flat: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            return Ok(flat.chunks(d).map(|c| c.to_vec()).collect());
        }
    }
    let pb = bar(
        quiet,
        texts.len() as u64,
        &format!("embed {}", name.chars().take(8).collect::<String>()),
    );
    let v = emb.embed_all(texts, batch, |n| pb.set_position(n as u64))?;
    pb.finish();
    let mut bytes = Vec::with_capacity(texts.len() * d * 4);
    for x in v.iter().flatten() {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    Ok(v)
}
